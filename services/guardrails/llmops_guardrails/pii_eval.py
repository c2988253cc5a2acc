"""Span-level PII evaluation in the manner of presidio-research, on its synthetic data set.

Matching (stated, since presidio-research offers several): spans are compared by character IoU after
trimming whitespace and punctuation from both ends; adjacent spans of one type separated only by
whitespace or punctuation are merged first (gold and predicted alike). A gold span is found when an
unmatched prediction of the same type overlaps it with IoU >= `iou` (0.5 by default); each prediction
matches at most one gold span. Scores are per entity and micro-averaged overall: precision, recall and
F2 (beta = 2, recall weighted higher), as presidio-research reports.

Entity handling:
- GPE is scored as LOCATION.
- STREET_ADDRESS is not scored (no recognizer for it); a prediction that lies mostly inside a gold street
  address counts neither as a true nor as a false positive (the city or number it found is part of PII).
- ORGANIZATION is not scored and not predicted; any prediction on an organization's name is a false positive.
- Predictions of types outside the scored set are ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GOLD_MAP = {"GPE": "LOCATION"}
IGNORED_REGIONS = {"STREET_ADDRESS"}
_TRIM = " \t\n\r.,;:!?\"'()[]{}<>"


@dataclass(frozen=True)
class Sample:
    text: str
    spans: tuple[tuple[str, int, int], ...]
    template_id: int


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def f(self, beta: float = 2.0) -> float:
        p, r = self.precision(), self.recall()
        return (1 + beta**2) * p * r / (beta**2 * p + r) if p + r else 0.0


@dataclass
class Report:
    per_entity: dict[str, Counts] = field(default_factory=dict)
    errors: list[tuple[str, str, str, str]] = field(default_factory=list)  # kind, entity, value, text

    def overall(self, entities: Iterable[str] | None = None) -> Counts:
        keys = set(entities) if entities is not None else set(self.per_entity)
        total = Counts()
        for name, c in self.per_entity.items():
            if name in keys:
                total.tp += c.tp
                total.fp += c.fp
                total.fn += c.fn
        return total


def _rank(template_id: int) -> bytes:
    return hashlib.sha256(f"llmops-pii-split:{template_id}".encode()).digest()


def assign_splits(samples: Sequence[Sample]) -> dict[int, str]:
    """Template id -> 'dev' (used for tuning) or 'test' (scored, never tuned on).

    Whole templates go to one side. So that rare entities (two templates hold all the SSNs) appear on both
    sides, entity types are taken from the rarest up, and the not yet assigned templates holding each
    are dealt alternately, in an order fixed by a hash of the template id, to the side that has fewer of
    that type so far. Templates holding none of the types are dealt by the hash alone.
    """
    by_type: dict[str, Counter[int]] = {}
    for s in samples:
        for kind, _, _ in s.spans:
            by_type.setdefault(kind, Counter())[s.template_id] += 1
    assigned: dict[int, str] = {}
    for kind in sorted(by_type, key=lambda k: (len(by_type[k]), k)):
        per_template = by_type[kind]
        have = Counter({"dev": 0, "test": 0})
        for tid in per_template:
            if tid in assigned:
                have[assigned[tid]] += per_template[tid]
        for tid in sorted(per_template, key=_rank):
            if tid in assigned:
                continue
            tie = have["dev"] == have["test"]
            side = "dev" if have["dev"] < have["test"] or (tie and _rank(tid)[0] % 2 == 0) else "test"
            assigned[tid] = side
            have[side] += per_template[tid]
    for s in samples:
        if s.template_id not in assigned:
            assigned[s.template_id] = "test" if _rank(s.template_id)[0] % 2 else "dev"
    return assigned


def load_samples(path: Path) -> list[Sample]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [
        Sample(
            text=s["full_text"],
            spans=tuple((sp["entity_type"], sp["start_position"], sp["end_position"]) for sp in s["spans"]),
            template_id=int(s["template_id"]),
        )
        for s in raw
    ]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in _TRIM:
        start += 1
    while end > start and text[end - 1] in _TRIM:
        end -= 1
    return start, end


def _merge_adjacent(text: str, spans: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    for kind, start, end in sorted(spans, key=lambda s: (s[1], s[2])):
        if out and out[-1][0] == kind and start >= out[-1][2] and not text[out[-1][2]:start].strip(_TRIM):
            out[-1] = (kind, out[-1][1], end)
        else:
            out.append((kind, start, end))
    return out


def _iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union else 0.0


def evaluate(
    samples: Sequence[Sample],
    predict: Callable[[Sequence[str]], list[list[tuple[str, int, int]]]],
    entities: Sequence[str],
    *,
    iou: float = 0.5,
    keep_errors: bool = False,
) -> Report:
    scored = set(entities)
    report = Report(per_entity={e: Counts() for e in entities})
    predictions = predict([s.text for s in samples])
    for sample, predicted in zip(samples, predictions, strict=True):
        text = sample.text
        gold_raw = []
        regions = []
        for raw_kind, start, end in sample.spans:
            kind = GOLD_MAP.get(raw_kind, raw_kind)
            if kind in IGNORED_REGIONS:
                regions.append((start, end))
            elif kind in scored:
                gold_raw.append((kind, *_trim(text, start, end)))
        gold = _merge_adjacent(text, gold_raw)
        preds = _merge_adjacent(text, [(k, *_trim(text, s, e)) for k, s, e in predicted if k in scored])
        matched: set[int] = set()
        for kind, gs, ge in gold:
            best, best_iou = None, 0.0
            for i, (pk, ps, pe) in enumerate(preds):
                if i in matched or pk != kind:
                    continue
                value = _iou((gs, ge), (ps, pe))
                if value > best_iou:
                    best, best_iou = i, value
            if best is not None and best_iou >= iou:
                matched.add(best)
                report.per_entity[kind].tp += 1
            else:
                report.per_entity[kind].fn += 1
                if keep_errors:
                    report.errors.append(("FN", kind, text[gs:ge], text))
        for i, (pk, ps, pe) in enumerate(preds):
            if i in matched:
                continue
            inside = max((min(pe, re_) - max(ps, rs) for rs, re_ in regions), default=0)
            if inside * 2 >= pe - ps:
                continue
            report.per_entity[pk].fp += 1
            if keep_errors:
                report.errors.append(("FP", pk, text[ps:pe], text))
    return report


def gold_counts(samples: Sequence[Sample]) -> Counter[str]:
    return Counter(GOLD_MAP.get(k, k) for s in samples for k, _, _ in s.spans)
