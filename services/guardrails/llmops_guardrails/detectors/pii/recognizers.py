"""Recognizer set-up: only the recognizers a policy's PII entities need, ours before presidio's."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import regex
from presidio_analyzer import EntityRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import EmailRecognizer, SpacyRecognizer

from llmops_guardrails.detectors.pii.patterns import CardNumberRecognizer, NameContextRecognizer, PhoneNumberRecognizer
from llmops_guardrails.detectors.pii.people import KnownNameRecognizer, PersonRecognizer
from llmops_guardrails.detectors.pii.pipeline import NER_ENTITIES
from llmops_guardrails.detectors.pii.places import PlaceRecognizer
from llmops_guardrails.detectors.pii.results import Span, moved, moved_spans, pattern_spans, word_start
from llmops_guardrails.offline import OFFLINE_TLD_EXTRACTOR

_SPACE = regex.compile(r"\s")


class OfflineEmailRecognizer(EmailRecognizer):
    """presidio's email recognizer, validating the domain against the bundled public suffix list.

    presidio's e-mail pattern tries a match at every word start of the text (~65 µs for 500 characters); it runs
    here only on the part of the text from the start of the whitespace-delimited word holding the first "@" to the
    end of the word holding the last one, with the results moved back into place. The same results: every match
    holds one "@" and no whitespace (its local part and domain are runs of word characters, dots and a few ASCII
    signs around the "@"), so it lies in one such word; and the pattern looks at no character outside its match but
    through its word boundaries, which see the same non-word character (whitespace, or the text's edge) at either
    end of the part.
    """

    def validate_result(self, pattern_text: str) -> bool:
        return OFFLINE_TLD_EXTRACTOR(pattern_text).fqdn != ""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                regex_flags: int | None = None) -> list[RecognizerResult]:
        part = _addresses_part(text)
        if part is None:
            return []
        start, end = part
        if (start, end) == (0, len(text)):
            return super().analyze(text, entities, nlp_artifacts, regex_flags)
        return moved(super().analyze(text[start:end], entities, nlp_artifacts, regex_flags), start)

    def spans(self, text: str) -> list[Span]:
        """`analyze(text, ...)` as `Span`s (the detector's fast path): the same part of the text, read by
        `results.pattern_spans` (presidio's `PatternRecognizer.analyze` without its result objects)."""
        part = _addresses_part(text)
        if part is None:
            return []
        start, end = part
        if (start, end) == (0, len(text)):
            return pattern_spans(self, text)
        return moved_spans(pattern_spans(self, text[start:end]), start)


def _addresses_part(text: str) -> tuple[int, int] | None:
    """From the start of the whitespace-delimited word holding the first "@" to the end of the word holding the last
    one (`OfflineEmailRecognizer`); None without an "@"."""
    first = text.find("@")
    if first == -1:
        return None
    after = _SPACE.search(text, text.rfind("@"))
    return word_start(text, first), after.start() if after else len(text)



def _presidio_recognizers(language: str) -> dict[str, list[EntityRecognizer]]:
    registry = RecognizerRegistry(supported_languages=[language])
    registry.load_predefined_recognizers(languages=[language])
    out: dict[str, list[EntityRecognizer]] = {}
    for recognizer in registry.recognizers:
        for entity in recognizer.supported_entities:
            out.setdefault(entity, []).append(recognizer)
    return out


def build_recognizers(entities: Sequence[str], *, language: str, phone_regions: Sequence[str]
                      ) -> list[EntityRecognizer]:
    """Only the recognizers `entities` need; raises ValueError for an entity nothing recognizes."""
    wanted = list(dict.fromkeys(entities))
    recognizers: list[EntityRecognizer] = []
    ner = [e for e in wanted if e in NER_ENTITIES]
    if ner:
        recognizers.append(SpacyRecognizer(supported_language=language, supported_entities=ner))
    context_entities = [e for e in ner if e in ("PERSON", "LOCATION")]
    if context_entities:
        recognizers.append(NameContextRecognizer(supported_language=language, entities=context_entities))
    if "PERSON" in ner:
        recognizers.append(PersonRecognizer(supported_language=language))
        recognizers.append(KnownNameRecognizer(supported_language=language))
    if "LOCATION" in ner:
        recognizers.append(PlaceRecognizer(supported_language=language))
    own: dict[str, Callable[[], list[EntityRecognizer]]] = {
        "EMAIL_ADDRESS": lambda: [OfflineEmailRecognizer(supported_language=language)],
        "PHONE_NUMBER": lambda: [PhoneNumberRecognizer(supported_language=language, regions=phone_regions)],
        "CREDIT_CARD": lambda: [CardNumberRecognizer(supported_language=language)],
    }
    predefined: dict[str, list[EntityRecognizer]] | None = None
    unknown = []
    for entity in wanted:
        if entity in own:
            recognizers.extend(own[entity]())
            continue
        if predefined is None:
            predefined = _presidio_recognizers(language)
        extra = [r for r in predefined.get(entity, []) if not isinstance(r, SpacyRecognizer)]
        if not extra and entity not in NER_ENTITIES:
            unknown.append(entity)
        for r in extra:
            if r not in recognizers:
                recognizers.append(r)
    if unknown:
        raise ValueError(f"no recognizer for entities {unknown}")
    return recognizers
