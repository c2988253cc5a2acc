from __future__ import annotations

import pytest

from llmops_guardrails.findings import Detector, Hit, value_hash


def test_value_hash_is_a_keyed_hmac() -> None:
    a = value_hash("jane@example.com", "salt-1")
    assert a == value_hash("jane@example.com", b"salt-1")
    assert a != value_hash("jane@example.com", "salt-2")
    assert a != value_hash("john@example.com", "salt-1")
    assert len(a) == 64 and "jane" not in a


@pytest.mark.parametrize("score", [-0.1, 1.01])
def test_scores_outside_unit_interval_are_refused(score: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        Hit(Detector.PII, "EMAIL_ADDRESS", 0, 3, score)


def test_value_hash_from_the_keyed_copy_is_the_plain_hmac() -> None:
    import hashlib
    import hmac

    values = ["", "jane@example.com", "Анна Берг", "\ud800 lone surrogate", "x" * 5000, "jane@example.com"]
    for salt in ("salt-1", b"salt-2", "", "k" * 200):
        key = salt.encode() if isinstance(salt, str) else salt
        for value in values * 2:  # the keyed object is reused, never updated itself
            assert value_hash(value, salt) == hmac.new(key, value.encode("utf-8", "surrogatepass"),
                                                       hashlib.sha256).hexdigest()
