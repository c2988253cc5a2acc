from __future__ import annotations

from collections import Counter

from llmops_guardrails.pii_eval import Sample, assign_splits, evaluate


def sample(text: str, spans: list[tuple[str, int, int]], template: int) -> Sample:
    return Sample(text=text, spans=tuple(spans), template_id=template)


def test_splits_keep_templates_whole_and_put_rare_types_on_both_sides() -> None:
    samples = [sample("x", [("US_SSN", 0, 1)], 1), sample("x", [("US_SSN", 0, 1)], 2),
               sample("y", [("PERSON", 0, 1)], 3), sample("y", [("PERSON", 0, 1)], 3), sample("z", [], 4)]
    splits = assign_splits(samples)
    assert {splits[1], splits[2]} == {"dev", "test"}
    assert set(splits) == {1, 2, 3, 4}
    assert splits == assign_splits(list(reversed(samples)))  # order does not matter


def test_span_matching_by_type_and_iou() -> None:
    text = "Call John Smith at 555-0100 in Southern Tunisia."
    gold = [("PERSON", 5, 15), ("PHONE_NUMBER", 19, 27), ("LOCATION", 40, 47)]
    predicted = [("PERSON", 5, 9), ("PERSON", 10, 15),  # adjacent parts are merged
                 ("LOCATION", 19, 27),  # wrong type: one false positive, one miss
                 ("LOCATION", 31, 47)]  # "Southern Tunisia" vs "Tunisia": IoU 0.44 < 0.5
    report = evaluate([sample(text, gold, 1)], lambda texts: [predicted], ["PERSON", "PHONE_NUMBER", "LOCATION"])
    counts = {k: (c.tp, c.fp, c.fn) for k, c in report.per_entity.items()}
    assert counts == {"PERSON": (1, 0, 0), "PHONE_NUMBER": (0, 0, 1), "LOCATION": (0, 2, 1)}
    assert Counter(report.overall().__dict__) == Counter({"tp": 1, "fp": 2, "fn": 2})


def test_predictions_inside_an_unscored_street_address_are_ignored() -> None:
    text = "Ship to 12 Main St, Springfield"
    report = evaluate([sample(text, [("STREET_ADDRESS", 8, 31)], 1)],
                      lambda texts: [[("LOCATION", 20, 31)]], ["LOCATION"])
    assert report.per_entity["LOCATION"].fp == 0
