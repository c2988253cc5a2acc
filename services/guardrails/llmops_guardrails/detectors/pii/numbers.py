"""Card and phone numbers in text: the matching behind `patterns.CardNumberRecognizer` and
`patterns.PhoneNumberRecognizer` (their `spans`), compiled with the engine's hot modules. The recognizers keep their
patterns, context words and regions as class and instance attributes (a subclass may change them); the functions here
read them from the recognizer they are given and make `results.Span`s, so the PII detector's fast path builds no
presidio result for a card or a phone number (`analyze` builds them from these spans for presidio's own callers)."""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any

import phonenumbers
import regex

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


class ContextWindow:
    """Whether one of `words` (case-insensitive, from a word start) is within `chars` characters of a span."""

    pattern: Any
    chars: int

    def __init__(self, words: Sequence[str], chars: int) -> None:
        self.pattern = regex.compile(r"(?i)\b(?:" + "|".join(regex.escape(w) for w in words) + r")")
        self.chars = chars

    def near(self, text: str, start: int, end: int) -> bool:
        return bool(self.pattern.search(text, max(0, start - self.chars), start)
                    or self.pattern.search(text, end, min(len(text), end + self.chars)))




def card_spans(recognizer: Any, text: str) -> list[Span]:
    """`CardNumberRecognizer.spans`: 12 to 19 digits (`CANDIDATE`), grouped by one kind of separator at most, passing
    Luhn with two distinct digits at least; score 0.9 with a known issuer (0.6 under 14 digits), else 0.3; +0.3 with a
    card word near (`CONTEXT`), capped at 1.0."""
    out: list[Span] = []
    name = type(recognizer).__name__
    entity: str = recognizer.ENTITY
    context: ContextWindow = recognizer.CONTEXT
    for m in recognizer.CANDIDATE.finditer(text):
        raw: str = m.group()
        if " " in raw and "-" in raw:
            continue
        digits = raw.replace(" ", "").replace("-", "")
        if not 12 <= len(digits) <= 19 or not luhn_ok(digits) or len(set(digits)) < 2:
            continue
        issuer = card_issuer(digits)
        score = 0.3 if issuer is None else 0.6 if len(digits) < 14 else 0.9
        start: int = m.start()
        end: int = m.end()
        if context.near(text, start, end):
            score += 0.3
        out.append(Span(entity, start, end, min(1.0, score), name))
    return out


SCORES_KEPT = 8192  # `valid_in_regions`' memo: emptied when it holds this many numbers


def valid_in_regions(recognizer: Any, candidate: str) -> float:
    """`PhoneNumberRecognizer._valid_in_regions`: 0.7 if python-phonenumbers finds `candidate` valid (for its own
    country with a "+", else for one of the recognizer's regions, tried in `_order`, which puts the region a number was
    last valid in first), else 0.5 if possible for one, else 0.0.

    The score depends on the candidate and the recognizer's regions alone (not on `_order`), so it is remembered per
    recognizer (`_scores`, at most `SCORES_KEPT` numbers): a number met again (a signature, a support line, one
    conversation's turns) is not parsed again. A dict's single get and set are atomic for the inline API's threads."""
    scores: dict[str, float] = recognizer._scores
    known = scores.get(candidate)
    if known is not None:
        return known
    score = _valid_in_regions(recognizer, candidate)
    if len(scores) >= SCORES_KEPT:
        scores.clear()
    scores[candidate] = score
    return score


def _valid_in_regions(recognizer: Any, candidate: str) -> float:
    best = 0.0
    plus = candidate.startswith("+")
    allowed: tuple[str, ...] = recognizer.regions
    regions: Sequence[str | None] = (None,) if plus else recognizer._order
    for k, region in enumerate(regions):
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException as exc:
            # `parse` keeps the exception and its traceback in locals of its own frame (`_, e, _ = sys.exc_info()`):
            # traceback -> that frame -> the traceback, a cycle; and a Python frame that ends holds its caller's frame,
            # so every frame of the call (the worker's batch, its scans and findings) would wait for the collector.
            # With the traceback's frames cleared they go by reference counting.
            traceback.clear_frames(exc.__traceback__)
            continue
        if plus and phonenumbers.region_code_for_number(number) not in allowed:
            if phonenumbers.is_possible_number(number):
                best = max(best, 0.5)
            continue
        if phonenumbers.is_valid_number(number):
            if k and region is not None:
                recognizer._order = (region, *(r for r in recognizer._order if r != region))
            return 0.7
        if phonenumbers.is_possible_number(number):
            best = max(best, 0.5)
    return best


def phone_spans(recognizer: Any, text: str) -> list[Span]:
    """`PhoneNumberRecognizer.spans`: candidates (`CANDIDATE`) of 7 to 15 digits, not a date, IP address, SSN or plain
    decimal, nor after a word that says what else they are (`NOT_PHONE`); score 0.7 if valid for a region
    (`valid_in_regions`), 0.5 if possible, else 0.3 grouped or 0.1 plain; +0.3 with a phone word near (`CONTEXT`),
    capped at 1.0."""
    out: list[Span] = []
    name = type(recognizer).__name__
    entity: str = recognizer.ENTITY
    date_like = recognizer.DATE_LIKE
    ip_like = recognizer.IP_LIKE
    ssn_like = recognizer.SSN_LIKE
    decimal = recognizer.DECIMAL
    not_phone: ContextWindow = recognizer.NOT_PHONE
    context: ContextWindow = recognizer.CONTEXT
    valid = recognizer._valid_in_regions
    for m in recognizer.CANDIDATE.finditer(text):
        group: str = m.group()
        raw = group.strip()
        if len(raw) < 7:  # fewer than 7 digits (most candidates: years, counts, house numbers)
            continue
        start: int = m.start() + (len(group) - len(group.lstrip()))
        digits = sum(c.isdigit() for c in raw)
        if not 7 <= digits <= 15 or date_like.match(raw) or ip_like.match(raw):
            continue
        if ssn_like.match(raw) or not_phone.near(text, start, start):
            continue
        if decimal.match(raw):
            continue
        grouped = not raw.isdigit()
        score: float = valid(raw)
        if score == 0.0:
            score = 0.3 if grouped else 0.1
        if context.near(text, start, start + len(raw)):
            score += 0.3
        out.append(Span(entity, start, start + len(raw), min(1.0, score), name))
    return out
