"""Per-text latency of the learned injection model against the injection rules, in one run.

    .venv/bin/python bench/injection_model.py [--rounds 3] [--long 200]

Texts: every row of `llmops_guardrails/data/injection_prompts.jsonl` (short prompts, 20-300 characters), and
`--long` texts of about 1 KB (a prompt of the set inside filler prose, as a user message with pasted context
looks). For each text, each side is timed alone on this thread with `time.thread_time_ns` (CPU time of the
thread: what one core spends, unaffected by other processes waiting for the machine's two cores): the model
(`InjectionModel.score`: normalisation, features, weights), the rules (`InjectionDetector(model=None).detect`)
and the detector as the default policy runs it (both). Rounds alternate the sides; per text the median over
rounds is kept, then p50 and p99 over texts are reported, with wall-clock p50 for comparison.

`--prose`: long technical prose no model was trained on (this repository's `docs/` pages and their
paragraphs, the installed packages' READMEs), through the detector with the model on and off: how many fire.

`--benign-traffic N`: the realistic benign traffic of the suite's own generators, through the detector as the
default policy runs it with the model on and off: the user messages of N events of the chaos harness
(`bench/chaos.py`'s `Traffic`, seed 7: support questions, e-mail, card and token canaries; none is an attack)
and N user messages of `llmops demo` (`llmops_devtools.demo.pick_user_text`, seed 7; its injection attempts are
left out and reported apart). Prints how many fire, and which texts.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services" / "guardrails"))

from llmops_devtools import demo  # noqa: E402
from llmops_guardrails.detectors import injection_model  # noqa: E402
from llmops_guardrails.detectors.injection import InjectionDetector  # noqa: E402
from llmops_guardrails.quality import injection_rows  # noqa: E402

FILLER = ("Here is the context from our wiki page about the quarterly planning process, pasted for reference. "
          "Teams submit their estimates by the second week, finance reviews them and the leads meet to agree. ")


def chaos_user_texts(events: int, seed: int = 7) -> list[str]:
    """The user messages of `events` events of the chaos harness's load generator (all benign)."""
    spec = importlib.util.spec_from_file_location("llmops_bench_chaos", ROOT / "bench" / "chaos.py")
    assert spec and spec.loader
    chaos = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = chaos  # dataclasses look their module up
    spec.loader.exec_module(chaos)
    from datetime import UTC, datetime
    planned = chaos.Traffic(seed, "bench").next(events, datetime(2026, 12, 3, tzinfo=UTC))
    return [m["content"] for p in planned for m in p.event["input"] if m["role"] == "user"]


def demo_user_texts(n: int, seed: int = 7) -> tuple[list[str], list[str]]:
    """(benign, attacks): `n` user messages of `llmops demo`, split by the demo's own category."""
    rng = random.Random(seed)
    benign, attacks = [], []
    for _ in range(n):
        text, kind = demo.pick_user_text(rng)
        (attacks if kind == "injection" else benign).append(text)
    return benign, attacks


def benign_traffic(n: int) -> None:
    model = injection_model.load()
    chaos_texts = chaos_user_texts(n)
    demo_benign, demo_attacks = demo_user_texts(n)
    for label, texts in ((f"chaos harness, user messages of {n} events", chaos_texts),
                         (f"llmops demo, {len(demo_benign)} benign user messages of {n}", demo_benign),
                         (f"llmops demo, its {len(demo_attacks)} injection attempts (should fire)", demo_attacks)):
        print(f"\n{label} ({len(set(texts))} distinct texts)")
        for name, detector in (("rules", InjectionDetector()), ("rules + model", InjectionDetector(model=model))):
            fired = [t for t in texts if detector.detect(t)]
            print(f"  {name:14} fired on {len(fired)} of {len(texts)} ({len(fired) / max(len(texts), 1):.1%})")
            for text in sorted(set(fired))[:5]:
                print(f"    {model.score(text):.2f} {text[:100]}")


def prose_texts() -> dict[str, list[str]]:
    """Long technical prose no model was trained on: the pages under `docs/` of this repository (whole pages and
    their paragraphs of 200+ characters), and the long descriptions (METADATA bodies, the packages' READMEs) of
    the Python packages installed in this interpreter, first 3,000 characters. None of them is an attack, but
    `docs/security.md` and `docs/guardrails.md` quote attacks while describing the detector; they are kept apart."""
    import importlib.metadata
    about = {"security.md", "guardrails.md"}
    pages = sorted((ROOT / "docs").glob("*.md"))
    whole = [p.read_text(encoding="utf-8") for p in pages if p.name not in about]
    paragraphs = [para for text in whole for para in text.split("\n\n") if len(para) >= 200]
    readmes = {}
    for dist in importlib.metadata.distributions():
        body = dist.metadata.get_payload() if hasattr(dist.metadata, "get_payload") else ""  # type: ignore[attr-defined]
        name = dist.metadata["Name"] or ""
        if body and len(body) >= 1000 and not name.startswith("llmops"):
            readmes[name.lower()] = body[:3000]
    return {f"docs/*.md pages except {', '.join(sorted(about))} (whole)": whole,
            "their paragraphs of 200+ characters": paragraphs,
            "installed packages' long descriptions, first 3 KB": [readmes[k] for k in sorted(readmes)],
            f"{', '.join(sorted(about))} (whole; they quote attacks)":
                [(ROOT / "docs" / n).read_text(encoding="utf-8") for n in sorted(about)]}


def prose() -> None:
    model = injection_model.load()
    for label, texts in prose_texts().items():
        print(f"\n{label}: {len(texts)} texts, median {statistics.median(map(len, texts)):,.0f} characters")
        for name, detector in (("rules", InjectionDetector()), ("rules + model", InjectionDetector(model=model))):
            fired = [t for t in texts if any(h.score >= 0.7 for h in detector.detect(t))]
            print(f"  {name:14} fired on {len(fired)} of {len(texts)} ({len(fired) / max(len(texts), 1):.1%})")
            for text in fired[:3]:
                print(f"    {model.score(text):.2f} {' '.join(text[:90].split())}")


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
    parser.add_argument("--benign-traffic", type=int, default=0, metavar="N",
                        help="also run N events of the chaos and demo generators through the detector")
    parser.add_argument("--prose", action="store_true",
                        help="also run long technical prose (docs pages, package READMEs) through the detector")
    args = parser.parse_args()
    if args.prose:
        prose()
    if args.benign_traffic:
        benign_traffic(args.benign_traffic)
    short = [r["text"] for r in injection_rows()]
    long = []
    for i in range(args.long):
        prompt = short[(i * 7) % len(short)]
        body = FILLER * 5
        cut = (i * 97) % len(body)
        long.append(body[:cut] + prompt + " " + body[cut:])
    sets = [(f"{len(short)} prompts of the labelled set", short)]
    if long:
        sets.append((f"{len(long)} texts of ~{statistics.mean(map(len, long)) / 1000:.1f} KB", long))
    for label, texts in sets:
        print(f"\n{label}, {args.rounds} rounds; microseconds per text (thread CPU time; wall p50 beside)")
        print(f"{'side':15} {'p50':>8} {'p99':>8} {'wall p50':>9}")
        for name, (p50, p99, wall) in run(texts, args.rounds).items():
            print(f"{name:15} {p50:8.1f} {p99:8.1f} {wall:9.1f}")


if __name__ == "__main__":
    main()
