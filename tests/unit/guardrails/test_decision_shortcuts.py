"""The decision's and the worker's shortcuts (branch `guard13`) against the computation they replace: a rule with
kinds looks only at its kinds' findings (`engine._candidates`), a finding's fields set is its own, the findings
rows read a detector's value by a look-up, the alert fingerprint is remembered."""

from __future__ import annotations

import random

import pytest

from llmops_guardrails import screening
from llmops_guardrails.engine import Segment, _candidates, _matching
from llmops_guardrails.findings import Detector, Finding, Hit, finding_of
from llmops_guardrails.policy import load_policy

KINDS = {Detector.PII: ["PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN"],
         Detector.SECRETS: ["jwt", "aws_access_key", "generic_high_entropy"],
         Detector.INJECTION: ["prompt_injection"]}


def random_findings(rng: random.Random, n: int) -> tuple[list[Finding], list[str]]:
    findings, values = [], []
    for _ in range(n):
        detector = rng.choice(list(KINDS))
        seg = Segment(rng.choice(("input", "output")), rng.choice((None, 0, 1)), None, None,
                      rng.choice(("user", "assistant", "tool", "system")), "text")
        findings.append(finding_of(Hit(detector, rng.choice(KINDS[detector]), 0, 3, rng.choice((0.3, 0.5, 0.7, 1.0))),
                                   seg, "h"))
        values.append(rng.choice(("jane@example.com", "4111111111111111", "Anna", "x")))
    return findings, values


def test_a_rule_with_kinds_matches_the_same_findings_from_its_kinds_only() -> None:
    rng = random.Random(13)
    rules = load_policy({"rules": [
        {"id": "a", "detector": "pii", "kinds": ["CREDIT_CARD", "IBAN_CODE", "US_SSN"], "action": "alert",
         "severity": "low"},
        {"id": "b", "detector": "pii", "kinds": ["EMAIL_ADDRESS", "PHONE_NUMBER", "EMAIL_ADDRESS"],
         "applies_to": ["output"], "threshold": 0.6, "action": "alert", "severity": "low"},
        {"id": "c", "detector": "pii", "kinds": ["PERSON"], "roles": ["user", "tool"], "action": "redact",
         "redaction": "mask"},
        {"id": "d", "detector": "pii", "kinds": ["EMAIL_ADDRESS"], "values": ["jane@.*"], "action": "allow"},
        {"id": "e", "detector": "secrets", "kinds": ["jwt"], "action": "alert", "severity": "low"},
        {"id": "f", "detector": "injection", "action": "alert", "severity": "low"},
    ]}).active_rules
    checked = 0
    for n in (0, 1, 3, 17, 60) * 40:
        findings, values = random_findings(rng, n)
        of_detector: dict[Detector, list[int]] = {}
        of_kind: dict[tuple[Detector, str], list[int]] = {}
        for i, f in enumerate(findings):
            of_detector.setdefault(f.detector, []).append(i)
            of_kind.setdefault((f.detector, f.kind), []).append(i)
        skip = set(rng.sample(range(n), n // 4)) if n else set()
        for rule in rules:
            before = _matching(rule, of_detector.get(rule.detector, ()), findings, values, skip)
            assert _matching(rule, _candidates(rule, of_detector, of_kind), findings, values, skip) == before
            checked += bool(before)
    assert checked > 500


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
