"""The name and place recognizers as `patterns.SpanRecognizer`s (issue 17 item 1, speed, `guard24`): the detector
takes their fast path (`spans`, our compact `Span`s) instead of building presidio's results and reading them back;
`analyze` still gives presidio's results as before (score, explanation, recognizer name and rule)."""

from __future__ import annotations

from collections.abc import Iterable

from presidio_analyzer import RecognizerResult

from llmops_guardrails.detectors.pii.detector import _fast_path
from llmops_guardrails.detectors.pii.patterns import CardNumberRecognizer, NameContextRecognizer, SpanRecognizer
from llmops_guardrails.detectors.pii.people import KnownNameRecognizer, PersonRecognizer
from llmops_guardrails.detectors.pii.places import PlaceRecognizer
from llmops_guardrails.detectors.pii.results import RULE_KEY, Span, span_of
from tests.unit.guardrails.detectors.pii.test_rule_shortcuts import _texts

_NAME_AND_PLACE = (PersonRecognizer, KnownNameRecognizer, PlaceRecognizer, NameContextRecognizer)


def _said(results: list[RecognizerResult]) -> list[tuple[object, ...]]:
    """All a presidio result says but the recognizer's per-instance id."""
    out = []
    for r in results:
        metadata = dict(r.recognition_metadata or {})
        metadata.pop(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY)
        e = r.analysis_explanation
        out.append((r.entity_type, r.start, r.end, r.score, sorted(metadata.items()), e.recognizer, e.original_score,
                    e.textual_explanation))
    return out


def _fields(spans: Iterable[Span]) -> list[tuple[object, ...]]:
    return [(s.entity_type, s.start, s.end, s.score, s.source, s.rule) for s in spans]


def test_the_detector_takes_their_fast_path() -> None:
    for kind in _NAME_AND_PLACE:
        recognizer = kind()
        assert isinstance(recognizer, SpanRecognizer)
        assert _fast_path(recognizer) == recognizer.spans


def test_spans_are_what_analyze_gives_read_back() -> None:
    recognizers = [kind() for kind in _NAME_AND_PLACE]
    found = 0
    for text in _texts():
        for recognizer in recognizers:
            spans = recognizer.spans(text)
            results = recognizer.analyze(text, recognizer.supported_entities)
            assert _fields(map(span_of, results)) == _fields(spans), text
            found += len(spans)
    assert found > 1_000


def test_analyze_gives_presidio_results_as_before() -> None:
    text = ("Dear Faina D. Yefremova, said Gladys to Logan. Homero Portillo flew to Flateyri, Is Alpatu Shervashidze "
            "coming? Anna Berg's car is in Tujetsch, Switzerland.\nAnna: \"Who are you?\"")
    known = [("guardrails_rule", "known_name"), ("recognizer_name", "KnownNameRecognizer")]
    assert _said(KnownNameRecognizer().analyze(text, ["PERSON"])) == [
        ("PERSON", 47, 62, 0.89, known, "KnownNameRecognizer", 0.89, "known first name and a surname"),
        ("PERSON", 112, 121, 0.89, known, "KnownNameRecognizer", 0.89, "known first name and a surname"),
        ("PERSON", 30, 36, 0.6, known, "KnownNameRecognizer", 0.6, "known first name"),
        ("PERSON", 40, 45, 0.6, known, "KnownNameRecognizer", 0.6, "known first name"),
        ("PERSON", 84, 103, 0.5, [("guardrails_rule", "capitalised_run"), ("recognizer_name", "KnownNameRecognizer")],
         "KnownNameRecognizer", 0.5, "capitalised words"),
    ]
    person = [("guardrails_rule", "PersonRecognizer"), ("recognizer_name", "PersonRecognizer")]
    assert _said(PersonRecognizer().analyze(text, ["PERSON"])) == [
        ("PERSON", 157, 161, 0.9, person, "PersonRecognizer", 0.9, "speaker label"),
        ("PERSON", 30, 36, 0.9, person, "PersonRecognizer", 0.9, "after a speech verb"),
        ("PERSON", 40, 45, 0.9, person, "PersonRecognizer", 0.9, "after a speech verb"),
        ("PERSON", 112, 121, 0.6, person, "PersonRecognizer", 0.6, "name with a possessive"),
    ]
    assert _said(PlaceRecognizer().analyze(text, ["LOCATION"])) == [
        ("LOCATION", 144, 155, 0.95, [("guardrails_rule", "gazetteer"), ("recognizer_name", "PlaceRecognizer")],
         "PlaceRecognizer", 0.95, "gazetteer place (countries)"),
    ]
    context = [("recognizer_name", "NameContextRecognizer")]  # (no rule)
    assert _said(NameContextRecognizer().analyze(text, ["PERSON", "LOCATION"])) == [
        ("PERSON", 5, 23, 0.9, context, "NameContextRecognizer", 0.9, "introduced by context"),
        ("LOCATION", 71, 79, 0.9, context, "NameContextRecognizer", 0.9, "introduced by context"),
    ]


def test_analyze_finds_nothing_unless_asked_for_its_entity() -> None:
    text = "Dear Faina D. Yefremova, said Gladys to Logan. I am Faina Yefremova and I live in Tujetsch, Switzerland."
    for kind in _NAME_AND_PLACE:
        recognizer = kind()
        assert recognizer.spans(text)
        assert recognizer.analyze(text, ["EMAIL_ADDRESS"]) == []
    # a recognizer of people and places gives those it is asked for
    context = NameContextRecognizer()
    assert {s.entity_type for s in context.spans(text)} == {"PERSON", "LOCATION"}
    for asked in (["PERSON"], ["LOCATION"], ["LOCATION", "PERSON"]):
        assert _fields(map(span_of, context.analyze(text, asked))) == _fields(
            s for s in context.spans(text) if s.entity_type in asked)
    people_only = NameContextRecognizer(entities=("PERSON",))
    assert {s.entity_type for s in people_only.spans(text)} == {"PERSON"}
    assert people_only.analyze(text, ["LOCATION"]) == []
    # cards answer whatever they are asked, as before, and their results carry no rule
    card = CardNumberRecognizer().analyze("card 4111 1111 1111 1111", ["EMAIL_ADDRESS"])
    assert [(r.start, r.end, RULE_KEY in r.recognition_metadata) for r in card] == [(5, 24, False)]
