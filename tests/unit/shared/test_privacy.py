"""User pseudonyms and the scrubber for short free text (`llmops_shared.privacy`, pure)."""

from __future__ import annotations

import pytest

from llmops_shared.privacy import DEV_PSEUDONYM_KEY, is_pseudonym, pseudonym, pseudonym_or_none, scrub
from llmops_shared.settings import CommonSettings


def test_a_pseudonym_is_stable_tenant_scoped_keyed_and_never_hashed_twice() -> None:
    jane = pseudonym("acme", "jane@example.com", b"k1")
    assert is_pseudonym(jane) and jane.startswith("u_") and len(jane) == 22
    assert pseudonym("acme", "jane@example.com", b"k1") == jane
    assert pseudonym("globex", "jane@example.com", b"k1") != jane  # tenant-scoped
    assert pseudonym("acme", "jane@example.com", b"k2") != jane  # keyed: no key, no pseudonym
    assert pseudonym("acme", "john@example.com", b"k1") != jane
    assert pseudonym("acme", jane, b"k1") == jane  # from the clean topic, or pasted back: unchanged
    assert pseudonym("acme", "", b"k1") != pseudonym("acme", "\0", b"k1")
    assert pseudonym_or_none("acme", None, b"k1") is None


def test_tenant_and_user_cannot_trade_characters() -> None:
    # tenant ids never hold NUL (the contract's identifier pattern), so the separator is unambiguous
    assert pseudonym("acme", "x:y", b"k") != pseudonym("acme:x", "y", b"k")


def test_the_key_is_an_operator_setting_with_a_development_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CommonSettings().pseudonym_secret() == DEV_PSEUDONYM_KEY
    monkeypatch.setenv("LLMOPS_PSEUDONYM_KEY", "operator-secret")
    assert CommonSettings().pseudonym_secret() == b"operator-secret"
    assert "operator-secret" not in repr(CommonSettings())


@pytest.mark.parametrize(("text", "expected"), [
    ("mail jane.doe+x@example.co.uk.", "mail [EMAIL_ADDRESS]."),
    ("user_jane_doe@example.com", "[EMAIL_ADDRESS]"),
    ("call +1 415 555 0199 now", "call [PHONE_NUMBER] now"),
    ("4155550199", "[PHONE_NUMBER]"),
    ("phone-(415) 555-0199", "phone-[PHONE_NUMBER]"),
    ("+44 20 7946 0958", "[PHONE_NUMBER]"),
    ("415 555 0199 415 555 0198", "[PHONE_NUMBER]"),
    ("card 4111 1111 1111 1111", "card [CREDIT_CARD]"),
    ("4111-1111-1111-1111", "[CREDIT_CARD]"),
    ("IBAN DE89 3704 0044 0532 0130 00", "IBAN [IBAN_CODE]"),
    ("gb82west12345698765432", "[IBAN_CODE]"),
    ("from 192.168.1.10 and 2001:db8::1", "from [IP_ADDRESS] and [IP_ADDRESS]"),
    ("key ghp_" + "a1B2" * 9, "key [SECRET]"),
    ("sk-proj-" + "Ab3dEf9hIj2lMn0pQr7t", "[SECRET]"),
    ("AKIAIOSFODNN7EXAMPLE", "[SECRET]"),
    ("Authorization: Bearer abcdefghijklmnop", "Authorization: [SECRET]"),
    ("password=hunter22x", "password=[SECRET]"),
    ("api_key: 'AbC123xyz789'", "api_key: '[SECRET]'"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_nature", "[SECRET]"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- done", "[SECRET] done"),
    ("blob Ab3dEf9hIj2lMn0pQr7tUv5xYz1aBc4dEf", "blob [SECRET]"),
])
def test_personal_data_and_credentials_are_replaced_by_their_labels(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize("text", [
    "vip", "team-3", "env:prod", "release-2026-11-01", "2026-11-01T12:30:00Z", "at 2026-11-01 12:30:00",
    "id 550e8400-e29b-41d4-a716-446655440000", "version 1.2.3", "score 4 out of 5", "order 12345",
    "4111 1111 1111 1112 is not a card but a long number? no: 16 digits", "sha " + "ab12" * 16, "std::vector",
    "10:30", "12:30:00", "The answer cites the refund policy correctly.", "",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    if "16 digits" in text:  # a long digit run that fails Luhn is still masked (as a phone number): the safe side
        assert scrub(text).startswith("[PHONE_NUMBER]")
        return
    assert scrub(text) == text


@pytest.mark.timeout(30)  # a hang guard, not a timing assertion: a backtracking pattern would take hours here
@pytest.mark.parametrize("unit", ["a", "1", "a@", "a.", "1 ", "1:", "f:", "eyJa.", "Bearer ", "x@a.", "+1",
                                  "password:"])
def test_no_pattern_backtracks_on_long_runs(unit: str) -> None:
    text = unit * (40_000 // len(unit))
    assert len(scrub(text)) > 0
