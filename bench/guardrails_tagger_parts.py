"""CPU time of the learned tagger's parts, each timed alone (no stack needed; under a minute).

    PYTHONPATH=<tree's services/*, shared> .venv/bin/python bench/guardrails_tagger_parts.py [--workload names|mix]

The texts of 300 `bench/guardrails_cpu.py` distinct name-dense events (or 600 pipeline bench events, `mix`), their
rules found once; then `PiiDetector._tag` (the NER gate, the evidence, `word_probabilities`, `spans_of`, the results)
and its parts, each over all texts, best of 5, in µs per event (`time.thread_time`). The parts run outside
`word_probabilities`, so they do not add up to it; `classes.plain`'s stand-ins are not kept between parts here
(`detect_many` makes them once per text for the rules and the tagger), so the tokens and the gate pay the
translation of a non-ASCII text. Works on any tree since `guard12`; the numpy gather is timed when the tree has it.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", choices=("names", "mix"), default="names")
    args = parser.parse_args()
    import guardrails_cpu
    import guardrails_pipeline

    from llmops_guardrails.detectors.pii import ner_gate
    from llmops_guardrails.detectors.pii import tagger as tg
    from llmops_guardrails.detectors.pii.detector import _EXPLAINS
    from llmops_guardrails.detectors.pii.results import rule_of, source_of
    from llmops_guardrails.engine import segments_of
    from llmops_shared.contract import Interaction

    random.seed(1)
    engine, policy = guardrails_cpu.warm_engine()
    raw = guardrails_cpu.distinct_events(300) if args.workload == "names" else guardrails_pipeline.make_events(600)
    events = [Interaction.model_validate(e) for e in raw]
    texts = list(dict.fromkeys(s.text for e in events
                               for s in segments_of("input", e.input) + segments_of("output", e.output)))
    pii = engine._scanners_for(policy).pii
    assert pii is not None and pii.tagger is not None
    model = pii.tagger
    rules = [pii._rules(t) for t in texts]
    explained = [[(r.start, r.end) for r in rs if r.score >= _EXPLAINS] for rs in rules]
    evidence = [[(r.entity_type, r.start, r.end, r.score, rule_of(r) or source_of(r)) for r in rs] for rs in rules]
    tokens = [tg.tokens(t) for t in texts]
    cand = [tg.candidates(t, s, model.lex) for t, s in zip(texts, tokens, strict=True)]
    probs = [model.word_probabilities(t, e)[2] for t, e in zip(texts, evidence, strict=True)]
    n = len(events)
    gc.collect()
    gc.freeze()
    gc.disable()
    print(f"{tg.__file__}; {len(texts)} texts ({args.workload}), {sum(map(len, cand)) / len(texts):.1f} candidates "
          f"and {sum(map(len, tokens)) / len(texts):.0f} tokens a text")

    def report(name: str, fn: Callable[[], Any]) -> None:
        best = float("inf")
        for _ in range(5):
            t0 = time.thread_time()
            fn()
            best = min(best, time.thread_time() - t0)
        print(f"{name:44} {best / n * 1e6:8.1f} µs/event", flush=True)

    report("_tag", lambda: [pii._tag(t, list(r)) for t, r in zip(texts, rules, strict=True)])
    report("  NER gate (needs_ner)", lambda: [ner_gate.needs_ner(t, e) for t, e in zip(texts, explained, strict=True)])
    report("  word_probabilities",
           lambda: [model.word_probabilities(t, e) for t, e in zip(texts, evidence, strict=True)])
    report("    tokens", lambda: [tg.tokens(t) for t in texts])
    report("    candidates", lambda: [tg.candidates(t, s, model.lex) for t, s in zip(texts, tokens, strict=True)])
    rows = getattr(model, "_evidence_blocks", None) or model._evidence_rows
    report("    evidence rows", lambda: [rows(s, c, e) for s, c, e in zip(tokens, cand, evidence, strict=True)])
    report("  spans_of", lambda: [tg.spans_of(t, s, c, p, threshold=0.3, place_threshold=0.5)
                                  for t, s, c, p in zip(texts, tokens, cand, probs, strict=True)])


if __name__ == "__main__":
    main()
