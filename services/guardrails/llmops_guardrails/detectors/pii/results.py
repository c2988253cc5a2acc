"""Building and reading presidio `RecognizerResult`s: which recognizer (and which of its rules) found one."""

from __future__ import annotations

import regex
from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult

SPACY = "SpacyRecognizer"  # the recognizer name of results the NER model found
TAGGER = "NameTagger"  # ... and of results the learned tagger found (`tagger`)
MODELS = frozenset({SPACY, TAGGER})  # learned models: refinement treats their spans alike
RULE_KEY = "guardrails_rule"  # which of a recognizer's rules found a result (metadata key)
_LAST_SPACE = regex.compile(r"(?r)\s")


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


def source_of(result: RecognizerResult) -> str:
    return str((result.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY, ""))


def rule_of(result: RecognizerResult) -> str:
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
