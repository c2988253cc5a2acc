"""The PII detector's own result records (`results.Span`, issue 17 item 1, speed, `guard21`): the rules' fast paths
(our card and phone recognizers' `spans`, the e-mail recognizer's `spans`, `results.pattern_spans` for presidio's
pattern recognizers) give what `analyze` gave, result by result and in the same order; presidio's `remove_duplicates`
is kept; `_rules`, the tagger's evidence, refinement and `_finish` give what they gave with presidio's results."""

from __future__ import annotations

import copy
import functools
import random

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import EmailRecognizer, IbanRecognizer, IpRecognizer, UsSsnRecognizer

from llmops_guardrails.detectors.pii import refinement
from llmops_guardrails.detectors.pii.detector import PiiDetector, _fast_path
from llmops_guardrails.detectors.pii.patterns import (
    CardNumberRecognizer,
    NameContextRecognizer,
    PhoneNumberRecognizer,
    card_issuer,
    luhn_ok,
)
from llmops_guardrails.detectors.pii.recognizers import OfflineEmailRecognizer
from llmops_guardrails.detectors.pii.results import (
    Span,
    _without_duplicates,
    make_result,
    pattern_spans,
    rule_of,
    source_of,
    span_of,
)
from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.findings import Detector, Hit
from tests.unit.guardrails.detectors.pii.pii_support import ENTITIES
from tests.unit.guardrails.detectors.pii.test_rule_shortcuts import _old_phone_analyze, _old_refine, _texts


def _seen(results: list[object]) -> list[tuple[object, ...]]:
    """What a result says, whichever its kind (a `Span` or a presidio result): its score as a float."""
    return [(r.entity_type, r.start, r.end, float(r.score), source_of(r), rule_of(r))  # type: ignore[attr-defined]
            for r in results]


def _old_card_analyze(self: CardNumberRecognizer, text: str) -> list[RecognizerResult]:
    """`CardNumberRecognizer.analyze` before `guard21`, verbatim."""
    out = []
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
        out.append(self._result(self.ENTITY, m.start(), m.end(), score,
                                f"Luhn-valid card number ({issuer or 'unknown issuer'})"))
    return out


def _digit_texts(n: int, seed: int) -> list[str]:
    """Random strings of digits, separators, letters and cue words: cards, phones, SSNs, IPs and near misses."""
    rng = random.Random(seed)
    pieces = ["4", "5", "0", "1", "9", "12", "555", "2020", " ", "-", ".", ":", "::", "(", ")", "+", "+1 ", "/",
              "x", "ext. ", "a", "ab", "card ", "phone ", "ssn ", "\n", "@", "ff", "192.168", "4111 1111 1111 1111",
              "078-05-1120", "+44 20 7946 0958", "10.0.0.1", "fe80::1", "\u0663", "٤"]
    return ["".join(rng.choice(pieces) for _ in range(rng.randrange(1, 40))) for _ in range(n)]


@functools.cache
def _all_texts() -> list[str]:
    return _texts() + _digit_texts(6_000, 21)


def test_card_and_phone_spans_give_what_analyze_gave() -> None:
    card, phone = CardNumberRecognizer(), PhoneNumberRecognizer(regions=("US", "GB", "DE", "FR", "IN", "CA", "AU"))
    old_phone = PhoneNumberRecognizer(regions=phone.regions)  # its own region order (`_order` moves)
    found = 0
    for text in _all_texts():
        old = _seen(_old_card_analyze(card, text))
        assert _seen(card.spans(text)) == old, text
        assert _seen(card.analyze(text, ["CREDIT_CARD"])) == old, text
        old = _seen(_old_phone_analyze(old_phone, text))
        assert _seen(phone.spans(text)) == old, text
        found += len(old)
    assert found > 500
    # presidio's results from `analyze` as before: capped score, the recognizer's name and id, an explanation
    text = "card 4111 1111 1111 1111"
    (new,), (old,) = card.analyze(text, ["CREDIT_CARD"]), _old_card_analyze(card, text)
    assert (new.score, new.recognition_metadata, new.analysis_explanation.textual_explanation) == (
        old.score, old.recognition_metadata, old.analysis_explanation.textual_explanation) == (
        1.0, {"recognizer_name": "CardNumberRecognizer", "recognizer_identifier": card.id},
        "Luhn-valid card number (visa)")


class _TenantPattern(PatternRecognizer):
    """A tenant-like pattern recognizer: an int score, a validator and an invalidator of its own."""

    def validate_result(self, pattern_text: str) -> bool | None:
        return None if "7" in pattern_text else pattern_text.endswith("1")

    def invalidate_result(self, pattern_text: str) -> bool | None:
        return pattern_text.startswith("0") or None


def _pattern_recognizers() -> list[PatternRecognizer]:
    return [
        UsSsnRecognizer(), IpRecognizer(), EmailRecognizer(), OfflineEmailRecognizer(),
        PatternRecognizer("EMPLOYEE_ID", patterns=[Pattern("id", r"\bE-?\d{3,6}\b", 0.6),
                                                   Pattern("id2", r"\d{4}", 1), Pattern("empty", r"x*", 0.5)],
                          deny_list=["Acme", "acme corp"]),
        _TenantPattern("TICKET", patterns=[Pattern("t", r"\d+", 0.4), Pattern("t2", r"\d[\d ]*\d", 0.4)]),
    ]


def test_pattern_spans_give_what_presidios_pattern_recognizer_gives() -> None:
    texts = [*_all_texts(), "Acme and acme corp, E-12345 0123 1231 777 4441 1 2 3 11 ACME E123"]
    found = 0
    for recognizer in _pattern_recognizers():
        name = type(recognizer).__name__
        for text in texts:
            whole = PatternRecognizer.analyze(recognizer, text, recognizer.supported_entities, None)
            old = [(r.entity_type, r.start, r.end, float(r.score), source_of(r)) for r in whole]
            new = [(s.entity_type, s.start, s.end, s.score, s.source) for s in pattern_spans(recognizer, text)]
            assert new == old, (name, text)
            found += len(old)
    assert found > 1_000


def test_without_duplicates_is_presidios_remove_duplicates() -> None:
    rng = random.Random(5)
    for _ in range(3_000):
        results = []
        for _ in range(rng.randrange(0, 12)):
            start = rng.randrange(0, 30)
            results.append(RecognizerResult(rng.choice(["A", "B"]), start, start + rng.randrange(1, 8),
                                            rng.choice([0.0, 0.3, 0.5, 0.5, 0.85, 1.0])))
        results += rng.sample(results, min(len(results), 2))  # equal ones
        old = [(r.entity_type, r.start, r.end, r.score) for r in EntityRecognizer.remove_duplicates(results)]
        new = [(s.entity_type, s.start, s.end, s.score) for s in _without_duplicates([span_of(r) for r in results])]
        assert new == old


@functools.cache
def _detector() -> PiiDetector:
    return PiiDetector(PolicyEngine().ner(), entities=ENTITIES, score_threshold=0.4, names="tagger",
                       phone_regions=["US", "GB", "DE", "FR", "IN", "CA", "AU"])


def test_the_rules_take_the_fast_paths_and_give_what_analyze_gives() -> None:
    detector = _detector()
    fast = {type(r).__name__ for r, _ in detector._rule_recognizers if id(r) in detector._fast}
    assert fast == {"CardNumberRecognizer", "PhoneNumberRecognizer", "OfflineEmailRecognizer", "UsSsnRecognizer",
                    "IpRecognizer", "PersonRecognizer", "KnownNameRecognizer", "PlaceRecognizer",
                    "NameContextRecognizer"}  # the name and place recognizers: guard24
    assert _fast_path(IbanRecognizer()) is None and _fast_path(NameContextRecognizer()) is not None
    plain = PiiDetector(PolicyEngine().ner(), entities=ENTITIES, score_threshold=0.4, names="tagger",
                        phone_regions=["US", "GB", "DE", "FR", "IN", "CA", "AU"])
    plain._fast = {}  # every recognizer through `analyze`, its results read by `span_of`
    plain._word_wise = set()  # the IP recognizer from the first IP-like word to the text's end, as before
    for text in _all_texts():
        ours = detector._rules(text)
        assert all(type(s) is Span for s in ours)
        assert _seen(ours) == _seen(plain._rules(text)), text


def _old_finish(text: str, results: list[RecognizerResult]) -> list[Hit]:
    """`_finish` as before `guard21`, on presidio's results: refinement through `_old_refine`, overlaps as before."""
    refined = _old_refine(text, results)
    cards = [r for r in refined if r.entity_type == "CREDIT_CARD"]
    if cards and any(r.entity_type == "PHONE_NUMBER" for r in refined):
        dropped = set()
        for card in cards:
            if (PhoneNumberRecognizer.CONTEXT.near(text, card.start, card.end)
                    and not CardNumberRecognizer.CONTEXT.near(text, card.start, card.end)):
                continue
            dropped |= {id(r) for r in refined if r.entity_type == "PHONE_NUMBER"
                        and not (r.end <= card.start or r.start >= card.end)}
        refined = [r for r in refined if id(r) not in dropped]
    kept: list[RecognizerResult] = []
    for r in sorted(refined, key=lambda r: (-r.score, -(r.end - r.start), r.start)):
        if all(r.end <= k.start or r.start >= k.end for k in kept):
            kept.append(r)
    return [Hit(Detector.PII, r.entity_type, r.start, r.end, round(min(1.0, max(0.0, r.score)), 4))
            for r in sorted(kept, key=lambda r: r.start)]


def _as_presidio(s: Span) -> RecognizerResult:
    metadata = {RecognizerResult.RECOGNIZER_NAME_KEY: s.source} if s.source else None
    r = RecognizerResult(s.entity_type, s.start, s.end, s.score, recognition_metadata=metadata)
    if s.rule:
        r.recognition_metadata["guardrails_rule"] = s.rule
    return r


def test_the_tagger_refinement_and_finish_give_on_spans_what_they_gave_on_presidios_results() -> None:
    detector = _detector()
    for text in _texts():
        spans = detector._rules(text)
        before = [_as_presidio(s) for s in spans]
        assert _seen(before) == _seen(spans)
        detector._tag(text, spans)
        # the tagger's evidence read from presidio's results as before: the same tags added
        evidence = [(r.entity_type, r.start, r.end, r.score, rule_of(r) or source_of(r)) for r in before]
        assert evidence == [(s.entity_type, s.start, s.end, s.score, s.rule or s.source) for s in spans[:len(before)]]
        old = [_as_presidio(s) for s in spans]
        new = detector._finish(text, copy.deepcopy(spans))
        assert new == _old_finish(text, old), text
        assert _seen(refinement.refine(text, copy.deepcopy(spans))) == _seen(
            _old_refine(text, [_as_presidio(s) for s in spans]))


def test_span_reads_and_copies_like_a_result() -> None:
    result = make_result(CardNumberRecognizer(), "PERSON", (3, 9), 0.86, "why", rule="known_name")
    span = span_of(result)
    assert (span.entity_type, span.start, span.end, span.score, span.source, span.rule) == (
        "PERSON", 3, 9, 0.86, "CardNumberRecognizer", "known_name")
    assert (source_of(span), rule_of(span)) == (source_of(result), rule_of(result))
    whole = span_of(RecognizerResult("X", 0, 1, 1))
    assert whole.score == 1.0 and type(whole.score) is float
    assert (source_of(Span("X", 0, 1, 0.5)), rule_of(Span("X", 0, 1, 0.5))) == ("", "")
    twin = copy.deepcopy(span)
    twin.start = 4
    assert (span.start, twin.start, copy.copy(span).rule) == (3, 4, "known_name")
    assert repr(span) == "Span('PERSON', 3, 9, 0.86, 'CardNumberRecognizer', 'known_name')"


def test_the_ip_recognizer_word_by_word_finds_what_presidio_finds_on_the_whole_text() -> None:
    detector = PiiDetector(PolicyEngine().ner(), entities=["IP_ADDRESS"], names="off")
    ((ip, _),) = detector._rule_recognizers
    assert isinstance(ip, IpRecognizer) and id(ip) in detector._word_wise
    rng = random.Random(99)
    pieces = ["10.0.0.1", "192.168.1.300", "::", "fe80::1", "::ffff:1.2.3.4", "2001:db8::7:1", "1.2.3", "1.2.3.4.5",
              ".", ":", "::1", " ", "  ", "\n", "\t", "\u3000", "\u00a0", "/24", "/129", "%eth0", "a", "F", "1",
              "12:30", "(", ")", ",", "-", "x1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"]
    texts = _texts() + ["".join(rng.choice(pieces) for _ in range(rng.randrange(1, 25))) for _ in range(20_000)]
    several = 0
    for text in texts:
        whole = [(r.entity_type, r.start, r.end, r.score) for r in PatternRecognizer.analyze(ip, text, ["IP_ADDRESS"])]
        ours = [(s.entity_type, s.start, s.end, s.score) for s in detector._rules(text)]
        assert ours == whole, text
        several += len({len(text[:s].split()) for _, s, _, _ in whole}) > 1
    assert several > 1_000  # matches in more than one word, put back in presidio's order
