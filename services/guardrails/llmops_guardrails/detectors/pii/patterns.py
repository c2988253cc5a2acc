"""Recognizers the guardrails add to presidio's, for what its defaults miss in chat traffic.

- `CardNumberRecognizer`: 12 to 19 digits (optionally grouped by spaces or dashes) that pass the Luhn
  check; a known issuer prefix and length, or a card word nearby, raise the score. presidio's regex
  misses Mastercard's 2-series, 19-digit Visa, JCB's 1800/2131 and 12-digit Maestro numbers.
- `PhoneNumberRecognizer`: groups of digits (with +country code, (area) code, spaces, dots or dashes),
  7 to 15 digits, not a date, IP address or plain decimal. Valid for one of the configured regions
  (python-phonenumbers) scores higher; a phone word nearby ("phone", "call", "fax", "office", ...) too.
  Much faster than presidio's matcher, which walks the text once per region.
- `NameContextRecognizer`: people and places named right after a phrase that introduces one ("my name
  is", "Mr.", "directed by"; "flew to", "lives in"), which the small spaCy model often misses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import regex
from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from llmops_guardrails.detectors.pii import cues
from llmops_guardrails.detectors.pii.numbers import (  # luhn_ok and card_issuer: read from here too
    ContextWindow,
    card_issuer,
    card_spans,
    luhn_ok,  # noqa: F401
    phone_spans,
    valid_in_regions,
)
from llmops_guardrails.detectors.pii.results import RULE_KEY, Span

_ContextWindow = ContextWindow  # the name it had here


class OneEntityRecognizer(LocalRecognizer):
    """A local recognizer of one entity type (`ENTITY`), with nothing to load."""

    ENTITY = ""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_entities=[self.ENTITY], supported_language=supported_language,
                         name=type(self).__name__)

    def load(self) -> None:
        pass

    def _result(self, entity: str, start: int, end: int, score: float, why: str, *, rule: str = "",
                ) -> RecognizerResult:
        metadata: dict[str, object] = {RecognizerResult.RECOGNIZER_NAME_KEY: type(self).__name__,
                                       RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}
        if rule:
            metadata[RULE_KEY] = rule
        return RecognizerResult(
            entity_type=entity, start=start, end=end, score=min(1.0, score),
            analysis_explanation=AnalysisExplanation(recognizer=type(self).__name__, original_score=score,
                                                     textual_explanation=why),
            recognition_metadata=metadata,
        )


class SpanRecognizer(OneEntityRecognizer):
    """A recognizer whose matches are made as `Span`s (`spans`): the PII detector calls `spans` directly (`detector`,
    its fast path), presidio's `analyze` (its `AnalyzerEngine`, a tenant's use) gets the same matches as
    `RecognizerResult`s. `spans` gives each score capped at 1.0, as `_result` does (the explanation's original score is
    that capped one); a span's `rule`, when it has one, is the result's `results.RULE_KEY`.

    `ONLY_ITS_ENTITY`: `analyze` gives only the matches of the entities it is asked for (the name and place
    recognizers); cards and phone numbers answer whatever they are asked. (The detector asks for every entity of its
    policy, and builds a recognizer only for entities of it.)"""

    ONLY_ITS_ENTITY = False

    def spans(self, text: str) -> list[Span]:
        raise NotImplementedError

    def explain(self, text: str, span: Span) -> str:
        """The explanation's text of a match (presidio's results only)."""
        return ""

    def explained(self, text: str) -> tuple[list[Span], list[str]]:
        """`spans(text)` and each one's explanation (`explain`; a recognizer whose explanations are known only while
        it finds its spans overrides this)."""
        found = self.spans(text)
        return found, [self.explain(text, s) for s in found]

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        if self.ONLY_ITS_ENTITY and not any(e in entities for e in self.supported_entities):
            return []
        found, whys = self.explained(text)
        return [self._result(s.entity_type, s.start, s.end, s.score, why, rule=s.rule)
                for s, why in zip(found, whys, strict=True)
                if not self.ONLY_ITS_ENTITY or s.entity_type in entities]


class ScanningRecognizer(SpanRecognizer):
    """A `SpanRecognizer` whose explanations are known only while it finds its spans (the name and place
    recognizers): it defines `_scan(text, whys)`, which appends each match's explanation to `whys` when given one
    (`spans` passes None: no explanation written); it gives only the entities it is asked for."""

    ONLY_ITS_ENTITY = True

    def _scan(self, text: str, whys: list[str] | None) -> list[Span]:
        """The matches (`whys`: their explanations, when asked for), in the order `analyze` gave them."""
        raise NotImplementedError

    def spans(self, text: str) -> list[Span]:
        return self._scan(text, None)

    def explained(self, text: str) -> tuple[list[Span], list[str]]:
        whys: list[str] = []
        return self._scan(text, whys), whys


class CardNumberRecognizer(SpanRecognizer):
    """Card numbers: 12 to 19 digits, optionally grouped by single spaces or dashes (one kind), passing Luhn.

    Score 0.9 with a known issuer prefix and length (`card_issuer`), 0.6 for a 12- or 13-digit one (short
    Maestro and Visa numbers look like other references), 0.3 without a known issuer; +0.3 with a card word
    within 40 characters. A Luhn-valid card number beats a phone-number reading of the same digits
    (`resolve_overlaps`) unless only phone words are nearby.
    """

    ENTITY = "CREDIT_CARD"
    CANDIDATE = regex.compile(r"(?<![\d\w.+-])\d(?:[ -]?\d){11,18}(?![\d\w]|[.-]\d)")
    CONTEXT = _ContextWindow(["card", "credit", "debit", "visa", "mastercard", "amex", "american express",
                              "discover", "maestro", "jcb", "diners", "cc", "pan", "cvv", "expir"], 40)

    def spans(self, text: str) -> list[Span]:
        return card_spans(self, text)

    def explain(self, text: str, span: Span) -> str:
        digits = text[span.start:span.end].replace(" ", "").replace("-", "")
        return f"Luhn-valid card number ({card_issuer(digits) or 'unknown issuer'})"


class PhoneNumberRecognizer(SpanRecognizer):
    ENTITY = "PHONE_NUMBER"
    CANDIDATE = regex.compile(
        r"(?<![\w+/.:(-])"
        r"(?:\+\d{1,3}[ .-]?|00\d{1,3}[ .-]?)?"
        r"(?:\(0?\d{1,4}\)[ .-]?|\(0\)[ ]?)?"
        r"\d{1,12}(?:[ .-]\(?\d{1,8}\)?){0,5}"
        r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?"
        r"(?![\w@]|[.:/-]\d)"
    )
    DATE_LIKE = regex.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}\b|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")
    SSN_LIKE = regex.compile(r"^\d{3}-\d{2}-\d{4}$")
    NOT_PHONE = _ContextWindow(["zip", "postal", "postcode", "post code", "ssn", "social security", "account",
                                "iban", "invoice", "order", "isbn"], 24)
    IP_LIKE = regex.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
    DECIMAL = regex.compile(r"^\d+\.\d+$")
    CONTEXT = _ContextWindow(["phone", "tel", "telephone", "call", "calling", "mobile", "cell", "fax", "office",
                              "contact", "reach", "text me", "sms", "whatsapp", "number", "dial", "answering",
                              "messages to", "ring"], 32)

    def __init__(self, supported_language: str = "en", regions: Sequence[str] = ("US", "GB", "DE", "FR")) -> None:
        super().__init__(supported_language)
        self.regions = tuple(regions)
        # The regions in the order a national number is tried in: the last one a number was valid in first (one
        # country's numbers tend to follow each other). The score does not depend on the order (valid in any
        # region: 0.7; else possible in any: 0.5), only the number of regions parsed before a valid one does. A
        # new tuple is put in place whole, so a thread reading it meanwhile sees every region.
        self._order = self.regions
        self._scores: dict[str, float] = {}  # `numbers.valid_in_regions`' memo: a candidate's score

    def _valid_in_regions(self, candidate: str) -> float:
        return valid_in_regions(self, candidate)

    def spans(self, text: str) -> list[Span]:
        return phone_spans(self, text)

    def explain(self, text: str, span: Span) -> str:
        return "phone number"


_NAME_WORD = r"\p{Lu}[\p{L}'’-]*\p{L}"
_INITIAL = r"\p{Lu}\.?"
_NAME = rf"{_NAME_WORD}(?:[ ](?:{_INITIAL}[ ])?{_NAME_WORD}){{0,2}}"
_LOWER_NAME = r"\p{Ll}[\p{Ll}'-]*\p{Ll}(?:[ ](?:\p{Ll}\.?[ ])?\p{Ll}[\p{Ll}'-]*\p{Ll})?"

_PERSON_TRIGGERS = (
    r"my name is|name is|call me|calls me|called|named|this is|i am|i'm|dear|hi|hello|"
    r"mr\.?|mrs\.?|ms\.?|miss|dr\.?|prof\.?|sir|madam|"
    r"(?:first|last|full)\s+name\??(?:\s*(?:user|customer)\s*:)?|"
    r"name on the account\?\s*(?:user|customer)\s*:|"
    r"directed by|starring|written by|assistant to|married to|son of|daughter of|contact|signed|"
    r"regards,?|sincerely,?|cheers,?|best,?|thanks,?|"
    r"(?:add|under|beneficiary|partner's name|husband's name|wife's name)"
    r"(?=\s+\p{Lu}[\p{L}'’-]+\s+(?:\p{Lu}\.?\s+)?\p{Lu})"
)
_PLACE_TRIGGERS = (
    r"flew to|fly to|flying to|moved to|move to|returned to|travell?ed to|trip to|drove to|"
    r"lives in|live in|living in|born in|based in|located in|grew up in|home city|hometown|"
    r"city of|town of|village of|where:"
)


class NameContextRecognizer(SpanRecognizer):
    """PERSON or LOCATION right after a phrase that introduces one (each of the `entities` it is built for; `analyze`
    gives those it is asked for)."""

    ONLY_ITS_ENTITY = True

    PERSON = regex.compile(rf"(?i:\b(?:{_PERSON_TRIGGERS}))\s+(?P<name>{_NAME})")
    PLACE = regex.compile(rf"(?i:\b(?:{_PLACE_TRIGGERS}))\s+(?P<name>{_NAME})")
    PERSON_LOWER = regex.compile(r"\b(?:my name is|call me|calls me|name is)\s+(?P<name>" + _LOWER_NAME + ")")
    STOP = frozenset({"The", "A", "An", "This", "That", "It", "I", "We", "You", "He", "She", "They", "Not",
                      "Sorry", "Thanks", "Thank", "Please", "Yes", "No", "Ok", "OK", "There", "Here", "All",
                      "Sure", "Just", "So", "Well", "Good", "Great", "Fine", "Happy", "Glad", "Going"})

    def __init__(self, supported_language: str = "en", entities: Sequence[str] = ("PERSON", "LOCATION")) -> None:
        LocalRecognizer.__init__(self, supported_entities=list(entities), supported_language=supported_language,
                                 name="NameContextRecognizer")

    def explain(self, text: str, span: Span) -> str:
        return "introduced by context"

    def spans(self, text: str) -> list[Span]:
        out: list[Span] = []
        name = type(self).__name__
        # PERSON and PLACE tried only where one of their triggers can start (`cues`): the same matches as `finditer`
        at = cues.starts(text)
        found: list[tuple[str, Iterable[regex.Match[str]]]] = []
        if "PERSON" in self.supported_entities:
            found.append(("PERSON", cues.matches(self.PERSON, text, at.person)))
            if not any(c.isupper() for c in text):
                found.append(("PERSON", self.PERSON_LOWER.finditer(text)))
        if "LOCATION" in self.supported_entities:
            found.append(("LOCATION", cues.matches(self.PLACE, text, at.place)))
        for entity, found_matches in found:
            for m in found_matches:
                start, end = m.span("name")
                words = text[start:end].split(" ")
                while words and words[0] in self.STOP:
                    start += len(words.pop(0)) + 1
                if not words:
                    continue
                out.append(Span(entity, start, end, 0.9, name))
        return out
