"""Card numbers: issuer prefixes and lengths, Luhn, scores, and card-vs-phone readings of the same digits."""

from __future__ import annotations

import pytest

from llmops_guardrails.detectors.pii.detector import PiiDetector
from llmops_guardrails.detectors.pii.patterns import CardNumberRecognizer, card_issuer, luhn_ok
from tests.unit.guardrails.detectors.pii.pii_support import found


@pytest.mark.parametrize(
    ("digits", "issuer"),
    [
        ("4111111111111111", "visa"),
        ("4222222222222", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223000048400011", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("3530111333300000", "jcb"),
        ("30569309025904", "diners"),
        ("6200000000000005", "unionpay"),
        ("502914177766", "maestro"),  # 12-digit Maestro, prefix 50
        ("563170669078", "maestro"),  # 56-69
        ("698124158685", "maestro"),
        ("911111111111", None),  # no issuer starts with 9
        ("411111111111", None),  # Visa is never 12 digits long
        ("34000000000", None),  # too short for anything
    ],
)
def test_card_issuer_prefixes_and_lengths(digits: str, issuer: str | None) -> None:
    assert card_issuer(digits) == issuer


@pytest.mark.parametrize(
    "text",
    [
        "Please block card 5029 1417 7766 today",  # Maestro, 12 digits in groups of four
        "my maestro 5631-7066-9078 was stolen",
        "ref 584391500082 for the refund",
        "card 4111-1111-1111-1111 expired",
        "Amex 3782 822463 10005 please",
    ],
)
def test_luhn_valid_cards_with_known_issuers_are_found(detector: PiiDetector, text: str) -> None:
    kinds = [k for k, _ in found(detector, text)]
    assert kinds == ["CREDIT_CARD"]


@pytest.mark.parametrize(
    "text",
    [
        "Please block card 5029 1417 7767 today",  # fails Luhn
        "ticket 9111 1111 1116 is open",  # Luhn-valid, but no issuer starts with 9
        "the serial is 5029 1417-7766",  # spaces and dashes mixed
        "000000000000 is not a card",
        "order 41111111111 shipped",  # 11 digits
    ],
)
def test_card_false_positives_are_avoided(detector: PiiDetector, text: str) -> None:
    assert "CREDIT_CARD" not in [k for k, _ in found(detector, text)]


def test_a_luhn_valid_maestro_number_beats_the_phone_reading_of_the_same_digits(detector: PiiDetector) -> None:
    text = "my card number is 563170669078, please cancel it"
    assert luhn_ok("563170669078")
    assert found(detector, text) == [("CREDIT_CARD", "563170669078")]
    # with only phone words around it, the phone reading stays
    call = "Call me at 630636083770 tonight"
    assert found(detector, call) == [("PHONE_NUMBER", "630636083770")]


def test_card_scores() -> None:
    card = CardNumberRecognizer()
    [long] = card.analyze("ref 4111111111111111", ["CREDIT_CARD"])
    [short] = card.analyze("ref 502914177766", ["CREDIT_CARD"])
    [with_word] = card.analyze("debit card 502914177766", ["CREDIT_CARD"])
    [unknown] = card.analyze("ref 9111 1111 1116", ["CREDIT_CARD"])
    assert (long.score, short.score, with_word.score, unknown.score) == pytest.approx((0.9, 0.6, 0.9, 0.3))


def _fixed_order_score(regions: tuple[str, ...], candidate: str) -> float:
    """`PhoneNumberRecognizer._valid_in_regions` before it tried the last region a number was valid in first."""
    import phonenumbers

    best = 0.0
    for region in (None,) if candidate.startswith("+") else regions:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if candidate.startswith("+") and phonenumbers.region_code_for_number(number) not in regions:
            if phonenumbers.is_possible_number(number):
                best = max(best, 0.5)
            continue
        if phonenumbers.is_valid_number(number):
            return 0.7
        if phonenumbers.is_possible_number(number):
            best = max(best, 0.5)
    return best


def test_a_phone_number_scores_the_same_whatever_order_the_regions_are_tried_in() -> None:
    import itertools
    from pathlib import Path

    from llmops_guardrails.detectors.pii.patterns import PhoneNumberRecognizer
    from llmops_guardrails.pii_eval import load_samples

    regions = ("US", "GB", "DE", "FR", "IN", "CA", "AU")
    recognizer = PhoneNumberRecognizer(regions=regions)
    data = Path(__file__).resolve().parents[6] / "shared/data/pii/synth_dataset_v2.json"
    candidates = {m.group().strip() for s in load_samples(data) for m in recognizer.CANDIDATE.finditer(s.text)
                  if 7 <= sum(c.isdigit() for c in m.group()) <= 15}
    candidates |= {"030 1234567", "06 12 34 56 78", "(415) 555-2671", "020 7946 0958", "98765 43210",
                   "0412 345 678", "+49 30 1234567", "+41 44 668 18 00", "1234567", "0000000000", "555-0100"}
    orders = list(itertools.islice(itertools.permutations(regions), 0, 5040, 997))
    scores = {0.0: 0, 0.5: 0, 0.7: 0}
    for candidate in sorted(candidates):
        expected = _fixed_order_score(regions, candidate)
        scores[expected] += 1
        assert recognizer._valid_in_regions(candidate) == expected, candidate  # in the order left by the last
        for order in orders:
            recognizer._order = order
            recognizer._scores.clear()  # parsed again, not remembered
            assert recognizer._valid_in_regions(candidate) == expected, (candidate, order)
    assert scores[0.7] >= 50 and scores[0.5] >= 20  # valid somewhere, and only possible, both seen


def test_a_number_met_again_gets_its_remembered_score_without_being_parsed_again(monkeypatch: pytest.MonkeyPatch,
                                                                                 ) -> None:
    import phonenumbers

    from llmops_guardrails.detectors.pii import numbers
    from llmops_guardrails.detectors.pii.patterns import PhoneNumberRecognizer

    regions = ("US", "GB", "DE", "FR")
    recognizer = PhoneNumberRecognizer(regions=regions)
    numbers_seen = ["030 1234567", "+41 44 668 18 00", "1234567", "99999999999999999", "(415) 555-2671"]
    first = [recognizer._valid_in_regions(n) for n in numbers_seen]
    assert first == [_fixed_order_score(regions, n) for n in numbers_seen] == [0.7, 0.5, 0.5, 0.0, 0.7]
    parsed: list[str] = []
    real_parse = phonenumbers.parse
    monkeypatch.setattr(phonenumbers, "parse", lambda n, r=None: parsed.append(n) or real_parse(n, r))
    assert [recognizer._valid_in_regions(n) for n in numbers_seen] == first
    assert parsed == []
    assert recognizer._valid_in_regions("020 7946 0958") == 0.7 and parsed  # a new number is parsed
    # another recognizer (other regions) remembers its own scores
    assert PhoneNumberRecognizer(regions=("US",))._valid_in_regions("030 1234567") == _fixed_order_score(
        ("US",), "030 1234567") < 0.7
    # the memo is emptied when full, then holds the new number alone
    recognizer._scores.update((str(i), 0.0) for i in range(numbers.SCORES_KEPT - len(recognizer._scores)))
    assert recognizer._valid_in_regions("98765 43210") == _fixed_order_score(regions, "98765 43210")
    assert list(recognizer._scores) == ["98765 43210"]


def test_the_region_a_number_was_valid_in_is_tried_first_next_time() -> None:
    from llmops_guardrails.detectors.pii.patterns import PhoneNumberRecognizer

    recognizer = PhoneNumberRecognizer(regions=("US", "GB", "DE", "FR"))
    assert recognizer._valid_in_regions("030 1234567") == 0.7  # a Berlin number: valid in DE only
    assert recognizer._order == ("DE", "US", "GB", "FR")
    assert recognizer._valid_in_regions("+1 415 555 2671") in (0.5, 0.7)  # international: the order is kept
    assert recognizer._order == ("DE", "US", "GB", "FR")
    assert recognizer.regions == ("US", "GB", "DE", "FR")


def test_a_number_python_phonenumbers_cannot_parse_leaves_no_cycle_holding_its_callers() -> None:
    """python-phonenumbers' `parse` keeps the exception and its traceback in locals of its own frame; caught as it was,
    that cycle held every calling frame (the worker's whole batch) until the collector ran. The caller's objects now
    go by reference counting as soon as it returns."""
    import gc
    import weakref

    import phonenumbers

    from llmops_guardrails.detectors.pii.patterns import PhoneNumberRecognizer

    class Batch:  # what the worker's frames hold while the number is scored
        pass

    recognizer = PhoneNumberRecognizer(regions=("US", "GB", "DE"))

    def scan(candidate: str) -> tuple[weakref.ref[Batch], float]:
        batch = Batch()
        return weakref.ref(batch), recognizer._valid_in_regions(candidate)

    gc.collect()
    gc.disable()
    try:
        for candidate in ("+999 555 1234567", "+0 12345678", "+1"):  # an unknown country code, none, no number
            with pytest.raises(phonenumbers.NumberParseException):
                phonenumbers.parse(candidate, None)
            held, score = scan(candidate)
            assert score == 0.0
            assert held() is None, candidate
    finally:
        gc.enable()
