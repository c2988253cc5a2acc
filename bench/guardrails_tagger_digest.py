"""The learned tagger's outputs as digests, to compare two trees bit for bit (no stack needed; under a minute).

    PYTHONPATH=<tree's services/*, shared> .venv/bin/python bench/guardrails_tagger_digest.py OUT.json [--texts T.json]

Per text: the tokens, the candidates, the spans at the detector's thresholds (0.3, places 0.5) and the label
probabilities' bytes (`probs.tobytes()`), with the rules' real evidence, hashed (sha256) into `OUT.json`; the
overall digest is printed. Texts: the PII set (as written, lower- and upper-cased) and the texts of 1,000 distinct
name-dense (`bench/guardrails_cpu.py`) and 1,000 pipeline bench events, generated once into `--texts` (default
`/tmp/guardrails_tagger_texts.json`) so that a second tree reads the same ones (the events hold random ids).
Compare two runs' files with `--compare A.json B.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def _texts(path: Path) -> list[str]:
    import guardrails_cpu
    import guardrails_pipeline

    from llmops_guardrails.engine import segments_of
    from llmops_guardrails.pii_eval import load_samples
    from llmops_shared.contract import Interaction

    texts = [s.text for s in load_samples(guardrails_cpu.DATA)]
    texts += [t.lower() for t in texts] + [t.upper() for t in texts]
    if not path.exists():
        random.seed(17)
        bench: list[str] = []
        for raw in (guardrails_cpu.distinct_events(1000), guardrails_pipeline.make_events(1000)):
            events = [Interaction.model_validate(e) for e in raw]
            bench += list(dict.fromkeys(s.text for e in events
                                        for s in segments_of("input", e.input) + segments_of("output", e.output)))
        path.write_text(json.dumps(bench), encoding="utf-8")
    return texts + json.loads(path.read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?")
    parser.add_argument("--texts", default="/tmp/guardrails_tagger_texts.json")
    parser.add_argument("--compare", nargs=2)
    args = parser.parse_args()
    if args.compare:
        a, b = (json.loads(Path(p).read_text(encoding="utf-8")) for p in args.compare)
        differ = [t for t in a if a[t] != b.get(t)] + [t for t in b if t not in a]
        print(f"{len(a)} and {len(b)} distinct texts: {len(differ)} differ")
        sys.exit(1 if differ else 0)

    import guardrails_cpu

    from llmops_guardrails.detectors.pii import tagger
    from llmops_guardrails.detectors.pii.results import rule_of, source_of

    engine, policy = guardrails_cpu.warm_engine()
    pii = engine._scanners_for(policy).pii
    assert pii is not None and pii.tagger is not None
    texts = _texts(Path(args.texts))
    whole = hashlib.sha256()
    per: dict[str, str] = {}
    candidates = spans_found = 0
    for text in texts:
        evidence = [(r.entity_type, r.start, r.end, r.score, rule_of(r) or source_of(r)) for r in pii._rules(text)]
        spans, cand, probs = pii.tagger.word_probabilities(text, evidence)
        tags = tagger.spans_of(text, spans, cand, probs, threshold=0.3, place_threshold=0.5)
        candidates += len(cand)
        spans_found += len(tags)
        blob = repr((spans, cand, [(t.label, t.start, t.end, t.probability) for t in tags])).encode() + probs.tobytes()
        whole.update(blob)
        per[text] = hashlib.sha256(blob).hexdigest()
    if args.out:
        Path(args.out).write_text(json.dumps(per), encoding="utf-8")
    print(f"{tagger.__file__}: {len(texts)} texts, {candidates} candidates, {spans_found} spans, {whole.hexdigest()}")


if __name__ == "__main__":
    main()
