"""Building and reading presidio `RecognizerResult`s: which recognizer (and which of its rules) found one."""

from __future__ import annotations

from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult

SPACY = "SpacyRecognizer"  # the recognizer name of results the NER model found
TAGGER = "NameTagger"  # ... and of results the learned tagger found (`tagger`)
MODELS = frozenset({SPACY, TAGGER})  # learned models: refinement treats their spans alike
RULE_KEY = "guardrails_rule"  # which of a recognizer's rules found a result (metadata key)


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
