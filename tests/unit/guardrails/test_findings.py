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
