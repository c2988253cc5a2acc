"""The PII detector's results: our own compact record (`Span`) from the rules through refinement to the hits, and
presidio's `RecognizerResult`s (which its recognizers' `analyze` returns) built and read; which recognizer (and which
of its rules) found one."""

from __future__ import annotations

import logging
from typing import Any

import regex
from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult
from presidio_analyzer.pattern_recognizer import REGEX_TIMEOUT_SECONDS

SPACY = "SpacyRecognizer"  # the recognizer name of results the NER model found
TAGGER = "NameTagger"  # ... and of results the learned tagger found (`tagger`)
MODELS = frozenset({SPACY, TAGGER})  # learned models: refinement treats their spans alike
RULE_KEY = "guardrails_rule"  # which of a recognizer's rules found a result (metadata key)
_LAST_SPACE = regex.compile(r"(?r)\s")
_NAME_KEY = RecognizerResult.RECOGNIZER_NAME_KEY
_MIN_SCORE = 0.0  # presidio's `EntityRecognizer.MIN_SCORE` and `MAX_SCORE`
_MAX_SCORE = 1.0
logger = logging.getLogger("presidio-analyzer")  # the logger presidio's pattern recognizer warns on


class Span:
    """One result on one text: an entity, its span and score, the recognizer that found it (`source`: its name,
    `SPACY` and `TAGGER` for the models, "" when not known) and which of its rules (`rule`, "" when it does not say).

    What the detector passes from its rules through the tagger's evidence, refinement and overlap resolution to the
    hits, instead of presidio's `RecognizerResult` (a Python object with a metadata dict and an explanation object
    per match): a native class in the compiled build, so those steps read its fields without a dict look-up or a
    generic attribute access. The field names are `RecognizerResult`'s, so code reading either works alike."""

    entity_type: str
    start: int
    end: int
    score: float
    source: str
    rule: str

    def __init__(self, entity_type: str, start: int, end: int, score: float, source: str = "", *, rule: str = "",
                 ) -> None:
        self.entity_type = entity_type
        self.start = start
        self.end = end
        self.score = score
        self.source = source
        self.rule = rule

    def __copy__(self) -> Span:
        return Span(self.entity_type, self.start, self.end, self.score, self.source, rule=self.rule)

    def __deepcopy__(self, memo: dict[int, object]) -> Span:
        return Span(self.entity_type, self.start, self.end, self.score, self.source, rule=self.rule)

    def __repr__(self) -> str:
        return (f"Span({self.entity_type!r}, {self.start}, {self.end}, {self.score!r}, {self.source!r}, "
                f"{self.rule!r})")


def span_of(result: RecognizerResult) -> Span:
    """The `Span` of a presidio result (its score as a `float`: an `int` score compares, clamps and rounds alike)."""
    metadata = result.recognition_metadata or {}
    return Span(result.entity_type, result.start, result.end, float(result.score),
                str(metadata.get(_NAME_KEY, "")), rule=str(metadata.get(RULE_KEY, "")))


def make_result(recognizer: LocalRecognizer, entity: str, span: tuple[int, int], score: float, why: str, *,
                rule: str = "") -> RecognizerResult:
    start, end = span
    name = type(recognizer).__name__
    return RecognizerResult(
        entity_type=entity, start=start, end=end, score=min(1.0, score),
        analysis_explanation=AnalysisExplanation(recognizer=name, original_score=score, textual_explanation=why),
        recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: name,
                              RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id, RULE_KEY: rule or name},
    )


def source_of(result: Any) -> str:
    """The name of the recognizer that found `result` (a `Span` or a presidio result)."""
    if isinstance(result, Span):
        return result.source
    return str((result.recognition_metadata or {}).get(_NAME_KEY, ""))


def rule_of(result: Any) -> str:
    """Which of its recognizer's rules found `result` (a `Span` or a presidio result), "" when it does not say."""
    if isinstance(result, Span):
        return result.rule
    return str((result.recognition_metadata or {}).get(RULE_KEY, ""))


def word_start(text: str, i: int) -> int:
    """The start of the whitespace-delimited word holding position `i` (0 at the text's first word)."""
    before = _LAST_SPACE.search(text, 0, i)
    return before.end() if before else 0


def moved(results: list[RecognizerResult], by: int) -> list[RecognizerResult]:
    """`results` found in a part of a text that starts at `by`, put back into place in the text (in place)."""
    for r in results:
        r.start += by
        r.end += by
    return results


def moved_spans(spans: list[Span], by: int) -> list[Span]:
    """`moved` for `Span`s."""
    if by:
        for s in spans:
            s.start += by
            s.end += by
    return spans


def pattern_spans(recognizer: Any, text: str) -> list[Span]:
    """What presidio's `PatternRecognizer.analyze(text, entities)` (presidio-analyzer 2.2, no `regex_flags`) finds, as
    `Span`s, without building its explanation and result objects: the recognizer's own patterns (compiled, and cached
    on each pattern, as presidio does), its `validate_result` and `invalidate_result` on each non-empty match (a
    validation sets the score to 1.0 or 0.0, an invalidation to 0.0; only scores above 0 are kept), a pattern that
    times out skipped with presidio's warning, then presidio's `remove_duplicates` (`_without_duplicates`), so the same
    spans, scores and order. Only for recognizers whose `analyze` is `PatternRecognizer.analyze` (`detector`)."""
    flags = recognizer.global_regex_flags
    entity = str(recognizer.supported_entities[0])
    name = str(recognizer.name)
    found: list[Span] = []
    for pattern in recognizer.patterns:
        if not pattern.compiled_regex or pattern.compiled_with_flags != flags:
            pattern.compiled_with_flags = flags
            pattern.compiled_regex = regex.compile(pattern.regex, flags=flags)
        try:
            for match in pattern.compiled_regex.finditer(text, timeout=REGEX_TIMEOUT_SECONDS):
                start, end = match.span()
                if start == end:
                    continue
                current = text[start:end]
                score = pattern.score
                validation = recognizer.validate_result(current)
                if validation is not None:
                    score = _MAX_SCORE if validation else _MIN_SCORE
                invalidation = recognizer.invalidate_result(current)
                if invalidation is not None and invalidation:
                    score = _MIN_SCORE
                if score > _MIN_SCORE:
                    found.append(Span(entity, start, end, float(score), name))
        except TimeoutError:
            logger.warning("Regex pattern '%s' timed out after %s seconds, skipping.", pattern.name,
                           REGEX_TIMEOUT_SECONDS, exc_info=True)
    return _without_duplicates(found) if len(found) > 1 else found


def _by_place(s: Span) -> tuple[str, int, int, float]:
    return s.entity_type, s.start, -(s.end - s.start), -s.score


def score_order(s: Span) -> tuple[float, int, int]:
    """The order presidio's `remove_duplicates` leaves results in: by score, then start, then the longer first."""
    return -s.score, s.start, -(s.end - s.start)


def _without_duplicates(spans: list[Span]) -> list[Span]:
    """presidio's `EntityRecognizer.remove_duplicates` on `Span`s: a span of a zero score, or inside another of the same
    entity with an equal or higher score, is dropped (an equal span too: presidio's set of results drops equal ones
    first, the containment test the rest, so which equal one survives does not show); the rest by score first."""
    ordered = sorted(spans, key=_by_place)
    kept: list[Span] = []
    active: list[Span] = []
    entity = ""
    for s in ordered:
        if s.entity_type != entity:
            entity = s.entity_type
            active = []
        if s.score == 0:
            continue
        active = [a for a in active if a.end >= s.start]
        if any(s.start >= a.start and s.end <= a.end and s.score <= a.score for a in active):
            continue
        kept.append(s)
        active.append(s)
    return sorted(kept, key=score_order)


