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

from collections.abc import Sequence

import phonenumbers
import regex
from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts


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


def _known_issuer(digits: str) -> bool:
    n = len(digits)
    p2, p4 = int(digits[:2]), int(digits[:4])
    p3 = int(digits[:3])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16  # Mastercard
    if p2 in (34, 37):
        return n == 15  # American Express
    if p4 == 6011 or p2 == 65 or 644 <= p3 <= 649 or 622126 <= int(digits[:6]) <= 622925:
        return 16 <= n <= 19  # Discover
    if 3528 <= p4 <= 3589:
        return 16 <= n <= 19  # JCB
    if p4 in (1800, 2131):
        return n == 15  # JCB (old)
    if 300 <= p3 <= 305 or p2 in (36, 38, 39):
        return 14 <= n <= 19  # Diners Club
    if p2 == 62:
        return 16 <= n <= 19  # UnionPay
    if p2 in (50, 56, 57, 58, 63, 67) or p2 == 69:
        return 12 <= n <= 19  # Maestro
    return False


class _ContextWindow:
    def __init__(self, words: Sequence[str], chars: int) -> None:
        self.pattern = regex.compile(r"(?i)\b(?:" + "|".join(regex.escape(w) for w in words) + r")")
        self.chars = chars

    def near(self, text: str, start: int, end: int) -> bool:
        return bool(self.pattern.search(text, max(0, start - self.chars), start)
                    or self.pattern.search(text, end, min(len(text), end + self.chars)))


class _Recognizer(LocalRecognizer):
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


class CardNumberRecognizer(_Recognizer):
    ENTITY = "CREDIT_CARD"
    CANDIDATE = regex.compile(r"(?<![\d\w.+-])\d(?:[ -]?\d){11,18}(?![\d\w]|[.-]\d)")
    CONTEXT = _ContextWindow(["card", "credit", "debit", "visa", "mastercard", "amex", "american express",
                              "discover", "maestro", "jcb", "diners", "cc", "pan", "cvv", "expir"], 40)

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        out = []
        for m in self.CANDIDATE.finditer(text):
            raw = m.group()
            if " " in raw and "-" in raw:
                continue
            digits = raw.replace(" ", "").replace("-", "")
            if not 12 <= len(digits) <= 19 or not luhn_ok(digits) or len(set(digits)) < 2:
                continue
            score = 0.9 if _known_issuer(digits) else 0.3
            if len(digits) < 14 and score > 0.3:
                score = 0.5
            if self.CONTEXT.near(text, m.start(), m.end()):
                score += 0.3
            out.append(self._result(self.ENTITY, m.start(), m.end(), score, "Luhn-valid card number"))
        return out


class PhoneNumberRecognizer(_Recognizer):
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

    def _valid_in_regions(self, candidate: str) -> float:
        best = 0.0
        regions: Sequence[str | None] = (None,) if candidate.startswith("+") else self.regions
        for region in regions:
            try:
                number = phonenumbers.parse(candidate, region)
            except phonenumbers.NumberParseException:
                continue
            if candidate.startswith("+") and phonenumbers.region_code_for_number(number) not in self.regions:
                if phonenumbers.is_possible_number(number):
                    best = max(best, 0.5)
                continue
            if phonenumbers.is_valid_number(number):
                return 0.7
            if phonenumbers.is_possible_number(number):
                best = max(best, 0.5)
        return best

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        out = []
        for m in self.CANDIDATE.finditer(text):
            raw = m.group().strip()
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
            out.append(self._result(self.ENTITY, start, start + len(raw), score, "phone number"))
        return out


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
        found: list[tuple[str, regex.Pattern[str]]] = []
        if "PERSON" in entities and "PERSON" in self.supported_entities:
            found.append(("PERSON", self.PERSON))
            if not any(c.isupper() for c in text):
                found.append(("PERSON", self.PERSON_LOWER))
        if "LOCATION" in entities and "LOCATION" in self.supported_entities:
            found.append(("LOCATION", self.PLACE))
        for entity, pattern in found:
            for m in pattern.finditer(text):
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
