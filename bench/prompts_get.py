"""`get_prompt` warm, on the app's thread, against its baseline (a dict look-up of the same answer), and the
report's statistics (`llmops_prompts.report.build`, no database) at growing numbers of calls per variant.

    .venv/bin/python bench/prompts_get.py [--calls 200000] [--sizes 2000,20000,100000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from llmops_prompts.report import VariantData, build
from llmops_sdk import PromptClient

ANSWER = {"name": "greet", "type": "text", "version": 3, "template": "Hi {{ name }}", "config": {}, "labels": [],
          "experiment": None}


def per_call_ns(fn: object, calls: int) -> float:
    samples = []
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()  # type: ignore[operator]
        samples.append((time.perf_counter_ns() - start) / calls)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--sizes", default="2000,20000,100000")
    args = parser.parse_args()
    client = PromptClient("http://unused.invalid", "k", fetch=lambda name, query: ANSWER)
    client.get_prompt("greet")  # warm
    table = {("greet", "label:production"): ANSWER}
    base = per_call_ns(lambda: table.get(("greet", "label:production")), args.calls)
    warm = per_call_ns(lambda: client.get_prompt("greet"), args.calls)
    print(f"get_prompt warm: {warm / 1000:.2f} µs per call (median of 5 x {args.calls}); dict baseline "
          f"{base / 1000:.3f} µs")
    rng = np.random.default_rng(0)
    for n in (int(s) for s in args.sizes.split(",")):
        data = {name: VariantData(n, n, rng.lognormal(-7, 0.6, n), rng.lognormal(6, 0.5, n), n // 20, n // 50,
                                  {"relevance": rng.beta(5, 2, n)}) for name in ("a", "b")}
        start = time.perf_counter()
        build([("a", 1), ("b", 1)], data, holdout=0.0, rng=np.random.default_rng(1), resamples=2_000)
        print(f"report.build, {n:,} calls per variant, 2,000 resamples: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
