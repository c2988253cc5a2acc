"""Per-text latency of the learned injection model against the injection rules, in one run.

    .venv/bin/python bench/injection_model.py [--rounds 3] [--long 200]

Texts: every row of `llmops_guardrails/data/injection_prompts.jsonl` (short prompts, 20-300 characters), and
`--long` texts of about 1 KB (a prompt of the set inside filler prose, as a user message with pasted context
looks). For each text, each side is timed alone on this thread with `time.thread_time_ns` (CPU time of the
thread: what one core spends, unaffected by other processes waiting for the machine's two cores): the model
(`InjectionModel.score`: normalisation, features, weights), the rules (`InjectionDetector(model=None).detect`)
and the detector as the default policy runs it (both). Rounds alternate the sides; per text the median over
rounds is kept, then p50 and p99 over texts are reported, with wall-clock p50 for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services" / "guardrails"))

from llmops_guardrails.detectors import injection_model  # noqa: E402
from llmops_guardrails.detectors.injection import InjectionDetector  # noqa: E402
from llmops_guardrails.quality import injection_rows  # noqa: E402

FILLER = ("Here is the context from our wiki page about the quarterly planning process, pasted for reference. "
          "Teams submit their estimates by the second week, finance reviews them and the leads meet to agree. ")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _time(fn: Callable[[str], Any], texts: list[str]) -> tuple[list[float], list[float]]:
    cpu, wall = [], []
    for text in texts:
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        fn(text)
        c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
        cpu.append((c1 - c0) / 1000)
        wall.append((w1 - w0) / 1000)
    return cpu, wall


def run(texts: list[str], rounds: int) -> dict[str, tuple[float, float, float]]:
    model = injection_model.load()
    sides: dict[str, Callable[[str], Any]] = {
        "model": model.score, "rules": InjectionDetector().detect,
        "rules + model": InjectionDetector(model=model).detect}
    for fn in sides.values():  # warm up (regex compilation, numpy's first calls)
        for text in texts[:50]:
            fn(text)
    per_side: dict[str, list[list[float]]] = {name: [] for name in sides}
    per_wall: dict[str, list[list[float]]] = {name: [] for name in sides}
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            cpu, wall = _time(sides[name], texts)
            per_side[name].append(cpu)
            per_wall[name].append(wall)
    out = {}
    for name in sides:
        cpu = [statistics.median(v) for v in zip(*per_side[name], strict=True)]
        wall = [statistics.median(v) for v in zip(*per_wall[name], strict=True)]
        out[name] = (_percentile(cpu, 0.5), _percentile(cpu, 0.99), _percentile(wall, 0.5))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--long", type=int, default=200, help="how many ~1 KB texts")
    args = parser.parse_args()
    short = [r["text"] for r in injection_rows()]
    long = []
    for i in range(args.long):
        prompt = short[(i * 7) % len(short)]
        body = FILLER * 5
        cut = (i * 97) % len(body)
        long.append(body[:cut] + prompt + " " + body[cut:])
    for label, texts in ((f"{len(short)} prompts of the labelled set", short),
                         (f"{len(long)} texts of ~{statistics.mean(map(len, long)) / 1000:.1f} KB", long)):
        print(f"\n{label}, {args.rounds} rounds; microseconds per text (thread CPU time; wall p50 beside)")
        print(f"{'side':15} {'p50':>8} {'p99':>8} {'wall p50':>9}")
        for name, (p50, p99, wall) in run(texts, args.rounds).items():
            print(f"{name:15} {p50:8.1f} {p99:8.1f} {wall:9.1f}")


if __name__ == "__main__":
    main()
