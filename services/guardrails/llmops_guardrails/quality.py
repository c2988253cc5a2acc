"""Detection quality, by a script anyone can run:

    .venv/bin/python -m llmops_guardrails.quality [--split test|dev|all] [--baseline] [--iou 0.5] [--errors N]
                                                  [--model NAME_OR_PATH] [--names tagger|spacy|tagger+spacy|off]
                                                  [--only pii|injection]

1. PII: per-entity precision, recall and F2 of the default policy's PII detector on presidio-research's
   synthetic set (`../shared/data/pii/synth_dataset_v2.json` from the repository root, or `--pii-data`),
   split by template id (`pii_eval.assign_splits`): `dev` was used for tuning, `test` is reported.
   Matching and entity handling are described in `llmops_guardrails.pii_eval`. `--baseline` also scores
   naive presidio (default `AnalyzerEngine`, same spaCy model) on the same samples. `--model` scores another
   installed spaCy pipeline (a package name or a model directory; default: `LLMOPS_GUARDRAILS_SPACY_MODEL`);
   `--names` what finds people and places beyond the rules (default: `LLMOPS_GUARDRAILS_NAME_MODEL`,
   spaCy's NER; `tagger` the learned name tagger).
2. Prompt injection: precision, recall and false-positive rate of the injection detector at the
   default policy's threshold on `data/injection_prompts.jsonl` (sources in `data/README.md`), same split.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from llmops_guardrails.detectors import injection_model
from llmops_guardrails.detectors.injection import InjectionDetector
from llmops_guardrails.detectors.pii import NerPipeline, PiiDetector
from llmops_guardrails.detectors.pii.detector import NAME_MODELS
from llmops_guardrails.findings import Detector, Hit
from llmops_guardrails.pii_eval import Report, Sample, assign_splits, evaluate, gold_counts, load_samples
from llmops_guardrails.policy import default_policy
from llmops_guardrails.settings import GuardrailsSettings

DEFAULT_PII_DATA = Path("../shared/data/pii/synth_dataset_v2.json")
RECALL_TARGETS = ("EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "PHONE_NUMBER")


def _print_report(title: str, report: Report, entities: Sequence[str], seconds: float, n: int) -> None:
    print(f"\n{title}  ({n} texts, {n / seconds:.0f} texts/s)")
    print(f"{'entity':15} {'precision':>9} {'recall':>7} {'F2':>6} {'tp':>5} {'fp':>5} {'fn':>5}")
    for e in entities:
        c = report.per_entity[e]
        print(f"{e:15} {c.precision():9.3f} {c.recall():7.3f} {c.f():6.3f} {c.tp:5} {c.fp:5} {c.fn:5}")
    o = report.overall(entities)
    print(f"{'OVERALL':15} {o.precision():9.3f} {o.recall():7.3f} {o.f():6.3f} {o.tp:5} {o.fp:5} {o.fn:5}")


def split_samples(path: Path, split: str) -> tuple[list[Sample], int]:
    """The samples of `split` (test, dev or all) and how many the file holds."""
    samples = load_samples(path)
    splits = assign_splits(samples)
    return [s for s in samples if split == "all" or splits[s.template_id] == split], len(samples)


def scored_entities(chosen: Sequence[Sample]) -> list[str]:
    """The default policy's PII entities that `chosen` holds gold spans of: what is scored."""
    return [e for e in default_policy().detectors.pii.entities if gold_counts(chosen).get(e)]


def predictor(detector: PiiDetector) -> Callable[[Sequence[str]], list[list[tuple[str, int, int]]]]:
    """`detector` as `pii_eval.evaluate` calls a prediction: each text's (entity, start, end) spans."""
    def predict(texts: Sequence[str]) -> list[list[tuple[str, int, int]]]:
        return [[(h.kind, h.start, h.end) for h in hits] for hits in detector.detect_many(texts)]

    return predict


def pii_report(chosen: Sequence[Sample], *, iou: float, model: str, keep_errors: bool = False,
               names: str | None = None) -> tuple[Report, NerPipeline]:
    """The default policy's PII detector scored on `chosen` (and the NER pipeline it ran); `names` as the
    `name_model` setting (default: the setting's value)."""
    pii = default_policy().detectors.pii
    ner = NerPipeline(model)
    detector = PiiDetector(ner, entities=pii.entities, language=pii.language, score_threshold=pii.score_threshold,
                           phone_regions=pii.phone_regions, context_enhancement=pii.context_enhancement,
                           names=names or GuardrailsSettings().name_model)

    return evaluate(chosen, predictor(detector), scored_entities(chosen), iou=iou, keep_errors=keep_errors), ner


def pii_quality(path: Path, split: str, *, baseline: bool, iou: float, errors: int, model: str,
                names: str | None = None) -> None:
    chosen, total = split_samples(path, split)
    scored = scored_entities(chosen)
    print(f"PII: {path} split={split}: {len(chosen)} of {total} samples, "
          f"{len({s.template_id for s in chosen})} templates; span match = same type and char IoU >= {iou}")
    print(f"gold spans in split: {dict(gold_counts(chosen).most_common())}")
    print(f"scored entities (the default policy's, present in the data): {scored}")

    t0 = time.perf_counter()
    names = names or GuardrailsSettings().name_model
    report, ner = pii_report(chosen, iou=iou, model=model, keep_errors=errors > 0, names=names)
    _print_report(f"guardrails PII detector (default policy, names by {names}, spaCy model {model})", report, scored,
                  time.perf_counter() - t0, len(chosen))
    print(f"texts run through the NER model (in whole or in windows): {ner.ner_calls} of {len(chosen)}; characters it "
          f"read: {ner.ner_chars} of {ner.chars} ({ner.ner_chars / max(1, ner.chars):.0%})")
    for kind, entity, value, text in report.errors[:errors]:
        print(f"  {kind} {entity:13} {value!r:30} | {text[:110]!r}")
    overall = report.overall(scored)
    print(f"targets: F2 >= 0.85 overall -> {overall.f():.3f} ({'met' if overall.f() >= 0.85 else 'MISSED'}); "
          "recall >= 0.95: " + ", ".join(
              f"{e} {report.per_entity[e].recall():.3f}{'' if report.per_entity[e].recall() >= 0.95 else ' MISSED'}"
              for e in RECALL_TARGETS if e in scored))

    if baseline:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        from llmops_guardrails.offline import patch_presidio_email_recognizer

        patch_presidio_email_recognizer()
        engine = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}).create_engine()
        naive = AnalyzerEngine(nlp_engine=engine)

        def predict_naive(texts: Sequence[str]) -> list[list[tuple[str, int, int]]]:
            return [[(r.entity_type, r.start, r.end) for r in naive.analyze(t, language="en")] for t in texts]

        t0 = time.perf_counter()
        base = evaluate(chosen, predict_naive, scored, iou=iou)
        _print_report("baseline: naive presidio (AnalyzerEngine defaults, same model)", base, scored,
                      time.perf_counter() - t0, len(chosen))


def injection_rows() -> list[dict[str, str]]:
    text = resources.files("llmops_guardrails").joinpath("data/injection_prompts.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class InjectionScore:
    """The injection detector at the default policy's threshold on one split of the prompts."""

    threshold: float
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    misses: list[str] = field(default_factory=list)
    by_category: Counter[str] = field(default_factory=Counter)
    wrong_by_category: Counter[str] = field(default_factory=Counter)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def false_positive_rate(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0


class _ModelOnly:
    """The learned model alone, as a detector (for the report's comparison)."""

    def __init__(self, model: injection_model.InjectionModel) -> None:
        self.model = model

    def detect(self, text: str) -> list[Hit]:
        return [Hit(Detector.INJECTION, "prompt_injection", 0, len(text), self.model.score(text))]


def injection_score(split: str, detector: InjectionDetector | _ModelOnly | None = None) -> InjectionScore:
    """`detector` (default: the default policy's) on one split of the prompts."""
    policy = default_policy()
    threshold = min((r.threshold for r in policy.active_rules if r.detector is Detector.INJECTION), default=0.7)
    if detector is None:
        detector = InjectionDetector(model=injection_model.load() if policy.detectors.injection.model else None)
    out = InjectionScore(threshold)
    for row in (r for r in injection_rows() if split == "all" or r["split"] == split):
        hits = detector.detect(row["text"])
        score = hits[0].score if hits else 0.0
        flagged = score >= threshold
        attack = row["label"] == "attack"
        out.by_category[row["category"]] += 1
        if flagged and attack:
            out.tp += 1
        elif flagged:
            out.fp += 1
        elif attack:
            out.fn += 1
        else:
            out.tn += 1
        if flagged != attack:
            out.wrong_by_category[row["category"]] += 1
            kind = "FP" if flagged else "FN"
            out.misses.append(f"  {kind} {row['category']:22} score {score:.2f} | {row['text'][:90]!r}")
    return out


def injection_quality(split: str, *, errors: int) -> None:
    model = injection_model.load()
    for name, detector in (("rules only (the default policy)", InjectionDetector()),
                           ("learned model only", _ModelOnly(model)),
                           ("rules + model (`detectors.injection.model: true`)", InjectionDetector(model=model))):
        s = injection_score(split, detector)
        print(f"\nPrompt injection, {name}: data/injection_prompts.jsonl split={split}: {s.tp + s.fn} attacks, "
              f"{s.fp + s.tn} benign; threshold {s.threshold} (default policy)")
        print(f"precision {s.precision:.3f}  recall {s.recall:.3f}  false-positive rate {s.false_positive_rate:.3f} "
              f"({s.fp}/{s.fp + s.tn})  tp {s.tp} fp {s.fp} fn {s.fn} tn {s.tn}")
        print(f"targets: recall >= 0.85 -> {'met' if s.recall >= 0.85 else 'MISSED'}; "
              f"FPR <= 0.02 -> {'met' if s.false_positive_rate <= 0.02 else 'MISSED'}")
        if s.wrong_by_category:
            print("errors by category: "
                  + ", ".join(f"{c} {n}/{s.by_category[c]}" for c, n in s.wrong_by_category.items()))
        for line in s.misses[:errors]:
            print(line)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["test", "dev", "all"], default="test")
    parser.add_argument("--pii-data", type=Path, default=DEFAULT_PII_DATA)
    parser.add_argument("--baseline", action="store_true", help="also score naive presidio on the same samples")
    parser.add_argument("--iou", type=float, default=0.5)
    parser.add_argument("--errors", type=int, default=0, help="print this many errors per part")
    parser.add_argument("--only", choices=["pii", "injection"], default=None)
    parser.add_argument("--model", default=None, help="spaCy pipeline: package name or model directory")
    parser.add_argument("--names", choices=NAME_MODELS, default=None,
                        help="what finds people and places beyond the rules (default: the name_model setting)")
    args = parser.parse_args(argv)
    model = args.model or GuardrailsSettings().spacy_model
    if args.only in (None, "pii"):
        pii_quality(args.pii_data, args.split, baseline=args.baseline, iou=args.iou, errors=args.errors, model=model,
                    names=args.names)
    if args.only in (None, "injection"):
        injection_quality(args.split, errors=args.errors)


if __name__ == "__main__":
    main()
