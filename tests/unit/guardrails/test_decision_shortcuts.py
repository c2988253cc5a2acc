"""The decision's and the worker's shortcuts (branch `guard13`) against the computation they replace: a finding's
fields set is its own (copied from a template), the findings rows read a detector's value by a look-up, the alert
fingerprint is remembered."""

from __future__ import annotations

import random

import pytest

from llmops_guardrails import screening
from llmops_guardrails.engine import Segment
from llmops_guardrails.findings import Detector, Finding, Hit, finding_of


def test_each_finding_has_a_fields_set_of_its_own() -> None:
    seg = Segment("input", 0, None, None, "user", "text")
    a, b = (finding_of(Hit(Detector.PII, "PERSON", 0, 4, 0.85), seg, "h") for _ in range(2))
    assert type(a.__pydantic_fields_set__) is set and a.__pydantic_fields_set__ == set(Finding.model_fields)
    assert a.__pydantic_fields_set__ is not b.__pydantic_fields_set__
    signalled = finding_of(Hit(Detector.INJECTION, "prompt_injection", 0, 4, 0.9, ("x", "y")), seg, "h")
    assert signalled.signals == ("x", "y")
    with pytest.raises(ValueError):  # a signal that is not a string is validated (and refused) as before
        finding_of(Hit(Detector.INJECTION, "prompt_injection", 0, 4, 0.9, ("x", 3)), seg, "h")  # type: ignore[arg-type]


def test_a_detectors_value_by_look_up_is_its_value() -> None:
    for detector in Detector:
        value = screening._DETECTOR_VALUES[detector]
        assert value == detector.value and type(value) is str


def test_the_remembered_fingerprint_is_the_fingerprint() -> None:
    parts = ["acme", "acme/eu", "eu/bot", "bot", "a" * 150, "t:@x", "ü/ß", "", "payment-data-alert", "pii"]
    rng = random.Random(5)
    for _ in range(500):
        args = tuple(rng.choice(parts) for _ in range(4))
        assert screening.fingerprint(*args) == screening.fingerprint.__wrapped__(*args)
    assert screening.fingerprint.cache_info().hits > 0
