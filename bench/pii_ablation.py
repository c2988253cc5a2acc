"""What each PII recognizer is worth: the quality script's F2 (dev and test splits) with one recognizer left out.

    .venv/bin/python bench/pii_ablation.py [RecognizerName ...]

The default policy's PII detector as `llmops_guardrails.quality` builds it (names by `LLMOPS_GUARDRAILS_NAME_MODEL`),
first whole, then once per recognizer named (default: the four name and place rules, the costliest of the rules on
name-dense events in `bench/guardrails_steps.py`) with that recognizer removed from its rules. Prints overall F2 and
PERSON / LOCATION F2 on each split. `dev` is the split the rules were tuned on, so a rule's worth is read there first;
`test` is what the quality target (F2 >= 0.85) is measured on. Where a recognizer's cost could buy speed (issue 17,
item 1), this says what quality it would cost.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmops_guardrails import quality
from llmops_guardrails.detectors.pii import NerPipeline, PiiDetector
from llmops_guardrails.pii_eval import evaluate
from llmops_guardrails.policy import default_policy
from llmops_guardrails.settings import GuardrailsSettings

NAME_AND_PLACE_RULES = ("NameContextRecognizer", "PersonRecognizer", "KnownNameRecognizer", "PlaceRecognizer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("drop", nargs="*", default=list(NAME_AND_PLACE_RULES),
                        help="recognizers to leave out, one at a time")
    parser.add_argument("--pii-data", type=Path, default=quality.DEFAULT_PII_DATA)
    args = parser.parse_args()
    pii = default_policy().detectors.pii
    settings = GuardrailsSettings()
    splits = {split: quality.split_samples(args.pii_data, split)[0] for split in ("dev", "test")}
    ner = NerPipeline(settings.spacy_model)
    print(f"names by {settings.name_model}; F2 overall (PERSON, LOCATION)")
    for drop in ["", *args.drop]:
        detector = PiiDetector(ner, entities=pii.entities, language=pii.language, score_threshold=pii.score_threshold,
                               phone_regions=pii.phone_regions, context_enhancement=pii.context_enhancement,
                               names=settings.name_model)
        if drop:
            kept = [(r, needed) for r, needed in detector._rule_recognizers if type(r).__name__ != drop]
            if len(kept) == len(detector._rule_recognizers):
                raise SystemExit(f"no recognizer named {drop!r}")
            detector._rule_recognizers = kept
        cells = []
        for split, chosen in splits.items():
            scored = quality.scored_entities(chosen)
            report = evaluate(chosen, quality.predictor(detector), scored, iou=0.5)
            per = ", ".join(f"{report.per_entity[e].f():.3f}" for e in ("PERSON", "LOCATION") if e in scored)
            cells.append(f"{split} {report.overall(scored).f():.3f} ({per})")
        print(f"{'without ' + drop if drop else 'all recognizers':<34} " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
