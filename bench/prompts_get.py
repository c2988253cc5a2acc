"""`get_prompt` warm, on the app's thread, against two baselines measured in the same run, interleaved round by
round: a no-op Python call (a lambda returning a constant: the floor of any call) and a dict look-up of the same
answer; then the report's statistics (`llmops_prompts.report.build`, no database) at growing numbers of calls
per variant, from the data a store returns (`VariantData.of`: costs kept only up to 5,000 a side).

    .venv/bin/python bench/prompts_get.py [--calls 200000] [--sizes 2000,20000,500000]

The API's get and the report's SQL on the real stack: `bench/prompts_api.py`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from llmops_prompts.report import VariantData, build
from llmops_sdk import PromptClient

ANSWER = {"name": "greet", "type": "text", "version": 3, "template": "Hi {{ name }}", "config": {}, "labels": [],
          "experiment": None}


def per_call_ns(fns: dict[str, Callable[[], object]], calls: int, rounds: int = 7) -> dict[str, list[float]]:
    """ns per call of each function, `rounds` rounds of `calls` calls, the functions interleaved per round."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter_ns()
            for _ in range(calls):
                fn()
            samples[name].append((time.perf_counter_ns() - start) / calls)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--sizes", default="2000,20000,500000")
    args = parser.parse_args()
    client = PromptClient("http://unused.invalid", "k", fetch=lambda name, query: ANSWER)
    client.get_prompt("greet")  # warm
    table = {("greet", "label:production"): ANSWER}
    samples = per_call_ns({"no-op call (baseline)": lambda: ANSWER,
                           "dict look-up (baseline)": lambda: table.get(("greet", "label:production")),
                           "get_prompt warm": lambda: client.get_prompt("greet")}, args.calls)
    floor = statistics.median(samples["no-op call (baseline)"])
    print(f"| call | median µs | min..max µs | x no-op |  ({len(samples['get_prompt warm'])} rounds x {args.calls:,})")
    print("|---|---|---|---|")
    for name, values in samples.items():
        print(f"| {name} | {statistics.median(values) / 1000:.3f} | {min(values) / 1000:.3f}..{max(values) / 1000:.3f}"
              f" | {statistics.median(values) / floor:.1f} |")
    rng = np.random.default_rng(0)
    for n in (int(s) for s in args.sizes.split(",")):
        data = {name: VariantData.of(calls=n, units=n, errors=n // 20, findings=n // 50,
                                     costs=rng.lognormal(-7, 0.6, n), latencies=rng.lognormal(6, 0.5, n).round(),
                                     scores={"relevance": rng.beta(5, 2, n)})
                for name in ("a", "b")}
        start = time.perf_counter()
        build([("a", 1), ("b", 1)], data, holdout=0.0, rng=np.random.default_rng(1), resamples=2_000)
        print(f"report.build, {n:,} calls per variant, 2,000 resamples: {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
