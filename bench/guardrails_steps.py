"""CPU time of each step of the guardrails engine, each timed alone (no stack needed; a minute).

    .venv/bin/python bench/guardrails_steps.py [--events 300] [--repeat 3] [--workload names|fresh|mix]

cProfile inflates small, often-called functions (its per-call cost is of the order of the call itself), so
here each step runs alone over the same texts, timed with `time.thread_time` around the whole loop, and is
reported in µs of CPU per event (`--repeat` times, the minimum). The events are `bench/guardrails_cpu.py`'s:
`names` the distinct name-dense ~1.1 KB events, `fresh` the same with every PII value new (`fresh_events`), `mix` the
pipeline bench's (whose system prompt repeats). The
default policy and settings (the name finder from the environment). Steps that mutate their input (refinement)
get a fresh copy each time, made outside the timed loop. Works on any tree with the same module layout: put its
`services/guardrails` first on `PYTHONPATH`.
"""

from __future__ import annotations

import argparse
import copy
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import guardrails_cpu  # noqa: E402
import guardrails_pipeline  # noqa: E402

import llmops_guardrails  # noqa: E402
from llmops_guardrails.engine import segments_of  # noqa: E402
from llmops_shared.contract import Interaction  # noqa: E402

FORGET: list[Callable[[], None]] = []  # `--first-sight`: what each timed repeat starts from (the engine's memories)


def forget_memories(engine: Any, policy: Any) -> None:
    """Registers the clearing of every memory the engine keeps of words and values across texts (the tagger's words
    and evidence rows, the phone numbers' scores, refinement's words, the value hashes, and every bounded
    `functools.lru_cache` of the package: a word's answer in the name rules, the last texts' folds and searches), so
    that each repeat meets its events' words and values for the first time, as the worker meets new events (`fresh`:
    every name, place and number new). The unbounded caches (`functools.cache`: the loaded lists and models) stay."""
    from llmops_guardrails.detectors.pii import refinement

    caches = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("llmops_guardrails"):
            continue
        for value in vars(module).values():
            for item in [value, *(vars(value).values() if isinstance(value, type) else ())]:
                function = getattr(item, "__func__", item)  # (a static method's function)
                info = getattr(function, "cache_info", None)
                if (info is not None and info().maxsize is not None and function not in caches
                        and (isinstance(item, staticmethod) or getattr(function, "__module__", "") == name)):
                    caches.append(function)  # (not another package's function imported here)

    def forget() -> None:
        for cache in caches:
            cache.cache_clear()
        pii = engine._scanners_for(policy).pii
        tagger = pii.tagger
        if tagger is not None:
            for words in tagger._words.values():
                words.clear()
            tagger._evidence.clear()
        for recognizer, _ in pii._rule_recognizers:
            if isinstance(getattr(recognizer, "_scores", None), dict):
                recognizer._scores.clear()
        refinement._ORG_WORDS.clear()
        refinement._NAME_TOKENS.clear()
        engine._value_hashes.clear()
    print(f"first sight: {len(caches)} bounded caches cleared before each repeat: "
          + ", ".join(sorted(getattr(c, "__qualname__", None) or "a static method" for c in caches)))
    FORGET.append(forget)


def timed(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        for forget in FORGET:
            forget()
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workload", choices=("names", "fresh", "mix"), default="names")
    parser.add_argument("--first-sight", action="store_true",
                        help="every repeat of every step starts without the engine's memories of words and values")
    args = parser.parse_args()
    engine, policy = guardrails_cpu.warm_engine()
    mix = guardrails_pipeline.make_events(args.events)
    names = guardrails_cpu.distinct_events(args.events)
    # (fresh events after the others, as before: the same `random` state, so the same events)
    raw = {"names": names, "mix": mix}.get(args.workload) or guardrails_cpu.fresh_events(args.events)
    events = [Interaction.model_validate(e) for e in raw]
    if args.first_sight:
        forget_memories(engine, policy)
    gc.collect()
    gc.freeze()
    gc.disable()  # the steps alone; the collector's share is the CPU bench's business
    print(f"llmops_guardrails from {Path(llmops_guardrails.__file__).parent}; {len(events)} events ({args.workload})")
    n = len(events)

    def report(name: str, seconds: float) -> None:
        print(f"{name:48} {seconds / n * 1e6:8.1f} µs/event", flush=True)

    def scan_all() -> None:
        engine._cache.clear()
        for i in range(0, n, 500):
            engine.scan_many(events[i:i + 500], policy)

    report("scan_many (cold cache)", timed(scan_all, args.repeat))
    # distinct texts, as the engine scans them (the system prompts of the mix once)
    texts = list(dict.fromkeys(s.text for e in events
                               for s in segments_of("input", e.input) + segments_of("output", e.output)))
    scanners = engine._scanners_for(policy)
    pii = scanners.pii
    assert pii is not None
    report("pii.detect_many", timed(lambda: pii.detect_many(texts), args.repeat))
    windows = getattr(pii, "_windows", {})  # since guard11: some run from where their precondition lets a match start
    found = getattr(pii, "_found", None)  # since guard21: the way `_rules` calls a recognizer (a fast path, or analyze)
    for recognizer, needed in pii._rule_recognizers:
        def run(r: Any = recognizer, nd: Any = needed) -> None:
            window = windows.get(id(r))
            for t in texts:
                first = nd.search(t) if nd is not None else None
                if nd is None or first:
                    start = window(t, first.start()) if window is not None and first is not None else 0
                    if found is not None:
                        found(r, t[start:] if start else t)
                    else:
                        r.analyze(t[start:] if start else t, pii.entities, None)
        report(f"  rule {type(recognizer).__name__}", timed(run, args.repeat))

    # since guard12: per-text searches the capitalised-word recognizers share (remembered for the last few texts, so in
    # the lines above each recognizer run alone pays for them again; in `_rules` the first to ask pays)
    import importlib

    for module, name in (("cues", "starts"), ("classes", "plain")):
        try:
            shared = getattr(importlib.import_module(f"llmops_guardrails.detectors.pii.{module}"), name).__wrapped__
        except (ImportError, AttributeError):
            continue
        report(f"  ... shared {module}.{name}", timed(lambda f=shared: [f(t) for t in texts], args.repeat))

    def pre() -> None:
        for _, nd in pii._rule_recognizers:
            if nd is not None:
                for t in texts:
                    nd.search(t)
    report("  ... of which preconditions", timed(pre, args.repeat))
    report("  rules (_rules)", timed(lambda: [pii._rules(t) for t in texts], args.repeat))
    rules = [pii._rules(t) for t in texts]
    if pii.tagger is not None:
        report("  tagger (_tag)", timed(lambda: [pii._tag(t, list(r)) for t, r in zip(texts, rules, strict=True)],
                                                 args.repeat))
        for t, r in zip(texts, rules, strict=True):
            pii._tag(t, r)
    from llmops_guardrails.detectors.pii import refinement

    best = float("inf")
    for _ in range(args.repeat):
        fresh = [copy.deepcopy(r) for r in rules]
        t0 = time.thread_time()
        for t, r in zip(texts, fresh, strict=True):
            refinement.refine(t, r)
        best = min(best, time.thread_time() - t0)
    report("  refine", best)
    refined = [refinement.refine(t, copy.deepcopy(r)) for t, r in zip(texts, rules, strict=True)]
    report("  resolve_overlaps", timed(lambda: [refinement.resolve_overlaps(list(r), t)
                                                for t, r in zip(texts, refined, strict=True)], args.repeat))
    report("  _finish (refine copy excluded: whole)", timed(
        lambda: [pii._finish(t, copy.copy(r)) for t, r in zip(texts, refined, strict=True)], args.repeat))
    for name in ("secrets", "injection", "terms"):
        det = getattr(scanners, name)
        if det is not None:
            def detect(d: Any = det) -> None:
                for t in texts:
                    d.detect(t)
            report(f"{name}.detect", timed(detect, args.repeat))
    # the decision: hits cached, so scan_many is segments + cache look-ups + _decide + results
    scan_all()

    def warm() -> None:
        for i in range(0, n, 500):
            engine.scan_many(events[i:i + 500], policy)
    report("scan_many, warm cache (decision and results)", timed(warm, args.repeat))
    segs = [segments_of("input", e.input) + segments_of("output", e.output) for e in events]
    hits = engine._hits_grouped(segs, [policy] * n)
    report("  _hits_grouped (cache look-ups)", timed(lambda: engine._hits_grouped(segs, [policy] * n), args.repeat))
    report("  _decide", timed(lambda: [engine._decide(s, h, policy, e.input, e.output)
                                       for s, h, e in zip(segs, hits, events, strict=True)], args.repeat))
    report("  _interaction_hits", timed(lambda: [engine._interaction_hits(s, policy) for s in segs], args.repeat))
    from llmops_guardrails.findings import value_hash

    values = [s.text[h.start:h.end] for ss, hs in zip(segs, hits, strict=True)
              for s, found in zip(ss, hs, strict=True) for h in found]
    salt = engine._salt
    report(f"  value_hash ({len(values) / n:.1f} values an event)",
           timed(lambda: [value_hash(v, salt) for v in values], args.repeat))


if __name__ == "__main__":
    main()
