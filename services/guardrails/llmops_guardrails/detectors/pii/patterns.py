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

import phonenumbers
import regex
from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from llmops_guardrails.detectors.pii import cues
from llmops_guardrails.detectors.pii.results import Span


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_issuer(digits: str) -> str | None:
    """The card scheme whose issuer prefixes (IIN ranges) and lengths `digits` fits, if any.

    Visa 4 (13, 16, 19 digits); Mastercard 51-55 and 2221-2720 (16); American Express 34, 37 (15); Discover
    6011, 644-649, 65, 622126-622925 (16-19); JCB 3528-3589 (16-19), 1800 and 2131 (15); Diners Club 300-305,
    3095, 36, 38, 39 (14-19); UnionPay 62, 81 (16-19); Mir 2200-2204 (16-19); RuPay 60, 508, 65, 81, 82 (16);
    Maestro 50 and 56-69 (12-19).
    """
    n = len(digits)
    if n < 12 or not digits.isdigit():
        return None
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4":
        return "visa" if n in (13, 16, 19) else None
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if p4 in (1800, 2131) and n == 15:
        return "jcb"
    if (300 <= p3 <= 305 or p4 == 3095 or p2 in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if p2 in (62, 81) and 16 <= n <= 19:
        return "unionpay"
    if 2200 <= p4 <= 2204 and 16 <= n <= 19:
        return "mir"
    if (p2 in (60, 65, 81, 82) or p3 == 508) and n == 16:
        return "rupay"
    if (p2 == 50 or 56 <= p2 <= 69) and 12 <= n <= 19:
        return "maestro"
    return None


class _ContextWindow:
    def __init__(self, words: Sequence[str], chars: int) -> None:
        self.pattern = regex.compile(r"(?i)\b(?:" + "|".join(regex.escape(w) for w in words) + r")")
        self.chars = chars

    def near(self, text: str, start: int, end: int) -> bool:
        return bool(self.pattern.search(text, max(0, start - self.chars), start)
                    or self.pattern.search(text, end, min(len(text), end + self.chars)))


class OneEntityRecognizer(LocalRecognizer):
    """A local recognizer of one entity type (`ENTITY`), with nothing to load."""

    ENTITY = ""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_entities=[self.ENTITY], supported_language=supported_language,
                         name=type(self).__name__)

    def load(self) -> None:
        pass

    def _result(self, entity: str, start: int, end: int, score: float, why: str) -> RecognizerResult:
        return RecognizerResult(
            entity_type=entity, start=start, end=end, score=min(1.0, score),
            analysis_explanation=AnalysisExplanation(recognizer=type(self).__name__, original_score=score,
                                                     textual_explanation=why),
            recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: type(self).__name__,
                                  RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id},
        )


class SpanRecognizer(OneEntityRecognizer):
    """A recognizer whose matches are made as `Span`s (`spans`): the PII detector calls `spans` directly (`detector`,
    its fast path), presidio's `analyze` (its `AnalyzerEngine`, a tenant's use) gets the same matches as
    `RecognizerResult`s. `spans` gives each score capped at 1.0, as `_result` does (the explanation's original score is
    that capped one)."""

    def spans(self, text: str) -> list[Span]:
        raise NotImplementedError

    def explain(self, text: str, span: Span) -> str:
        """The explanation's text of a match (presidio's results only)."""
        return ""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        return [self._result(s.entity_type, s.start, s.end, s.score, self.explain(text, s)) for s in self.spans(text)]


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
        out = []
        name = type(self).__name__
        for m in self.CANDIDATE.finditer(text):
            raw = m.group()
            if " " in raw and "-" in raw:
                continue
            digits = raw.replace(" ", "").replace("-", "")
            if not 12 <= len(digits) <= 19 or not luhn_ok(digits) or len(set(digits)) < 2:
                continue
            issuer = card_issuer(digits)
            score = 0.3 if issuer is None else 0.6 if len(digits) < 14 else 0.9
            if self.CONTEXT.near(text, m.start(), m.end()):
                score += 0.3
            out.append(Span(self.ENTITY, m.start(), m.end(), min(1.0, score), name))
        return out

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

    def _valid_in_regions(self, candidate: str) -> float:
        best = 0.0
        regions: Sequence[str | None] = (None,) if candidate.startswith("+") else self._order
        for k, region in enumerate(regions):
            try:
                number = phonenumbers.parse(candidate, region)
            except phonenumbers.NumberParseException:
                continue
            if candidate.startswith("+") and phonenumbers.region_code_for_number(number) not in self.regions:
                if phonenumbers.is_possible_number(number):
                    best = max(best, 0.5)
                continue
            if phonenumbers.is_valid_number(number):
                if k and region is not None:
                    self._order = (region, *(r for r in self._order if r != region))
                return 0.7
            if phonenumbers.is_possible_number(number):
                best = max(best, 0.5)
        return best

    def spans(self, text: str) -> list[Span]:
        out = []
        name = type(self).__name__
        for m in self.CANDIDATE.finditer(text):
            raw = m.group().strip()
            if len(raw) < 7:  # fewer than 7 digits (most candidates: years, counts, house numbers)
                continue
            start = m.start() + (len(m.group()) - len(m.group().lstrip()))
            digits = sum(c.isdigit() for c in raw)
            if not 7 <= digits <= 15 or self.DATE_LIKE.match(raw) or self.IP_LIKE.match(raw):
                continue
            if self.SSN_LIKE.match(raw) or self.NOT_PHONE.near(text, start, start):
                continue
            if self.DECIMAL.match(raw):
                continue
            grouped = not raw.isdigit()
            score = self._valid_in_regions(raw)
            if score == 0.0:
                score = 0.3 if grouped else 0.1
            if self.CONTEXT.near(text, start, start + len(raw)):
                score += 0.3
            out.append(Span(self.ENTITY, start, start + len(raw), min(1.0, score), name))
        return out

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


class NameContextRecognizer(LocalRecognizer):
    """PERSON or LOCATION right after a phrase that introduces one."""

    PERSON = regex.compile(rf"(?i:\b(?:{_PERSON_TRIGGERS}))\s+(?P<name>{_NAME})")
    PLACE = regex.compile(rf"(?i:\b(?:{_PLACE_TRIGGERS}))\s+(?P<name>{_NAME})")
    PERSON_LOWER = regex.compile(r"\b(?:my name is|call me|calls me|name is)\s+(?P<name>" + _LOWER_NAME + ")")
    STOP = frozenset({"The", "A", "An", "This", "That", "It", "I", "We", "You", "He", "She", "They", "Not",
                      "Sorry", "Thanks", "Thank", "Please", "Yes", "No", "Ok", "OK", "There", "Here", "All",
                      "Sure", "Just", "So", "Well", "Good", "Great", "Fine", "Happy", "Glad", "Going"})

    def __init__(self, supported_language: str = "en", entities: Sequence[str] = ("PERSON", "LOCATION")) -> None:
        super().__init__(supported_entities=list(entities), supported_language=supported_language,
                         name="NameContextRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        out = []
        # PERSON and PLACE tried only where one of their triggers can start (`cues`): the same matches as `finditer`
        at = cues.starts(text)
        found: list[tuple[str, Iterable[regex.Match[str]]]] = []
        if "PERSON" in entities and "PERSON" in self.supported_entities:
            found.append(("PERSON", cues.matches(self.PERSON, text, at.person)))
            if not any(c.isupper() for c in text):
                found.append(("PERSON", self.PERSON_LOWER.finditer(text)))
        if "LOCATION" in entities and "LOCATION" in self.supported_entities:
            found.append(("LOCATION", cues.matches(self.PLACE, text, at.place)))
        for entity, found_matches in found:
            for m in found_matches:
                start, end = m.span("name")
                words = text[start:end].split(" ")
                while words and words[0] in self.STOP:
                    start += len(words.pop(0)) + 1
                if not words:
                    continue
                out.append(RecognizerResult(
                    entity_type=entity, start=start, end=end, score=0.9,
                    analysis_explanation=AnalysisExplanation(recognizer=type(self).__name__, original_score=0.9,
                                                             textual_explanation="introduced by context"),
                    recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: type(self).__name__,
                                          RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id},
                ))
        return out
