from __future__ import annotations

import pytest

from llmops_guardrails.findings import Detector
from llmops_guardrails.policy import (
    Action,
    PolicyError,
    default_document,
    default_policy,
    load_policy,
    merge_documents,
    parse_document,
)


def test_the_shipped_default_is_valid() -> None:
    policy = default_policy()
    assert policy.version == 1
    assert {r.detector for r in policy.rules} >= {Detector.PII, Detector.SECRETS, Detector.INJECTION}
    assert policy.detector_fingerprint == default_policy().detector_fingerprint


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"rules": [{"id": "pii-redact", "threshold": 1.5}]}, "rules[0](id=pii-redact).threshold"),
        ({"rules": [{"id": "x", "detector": "pii", "action": "alert"}]}, "needs a severity"),
        ({"rules": [{"id": "x", "detector": "pii", "action": "redact"}]}, "needs a redaction mode"),
        ({"rules": [{"id": "x", "detector": "injection", "action": "redact", "redaction": "mask"}]},
         "finds no value to redact"),
        ({"rules": [{"id": "x", "detector": "pii", "action": "alert", "severity": "high", "kinds": ["PASSPORT"]}]},
         "unknown pii kinds ['PASSPORT']"),
        ({"rules": [{"id": "x", "detector": "pii", "action": "allow", "values": ["("]}]}, "is invalid"),
        ({"rules": [{"id": "x", "detector": "pii", "action": "allow", "values": [r"(\w)\1"]}]}, "linear time"),
        ({"rules": [{"id": "x", "detector": "nope", "action": "allow"}]}, "detector"),
        ({"detectors": {"pii": {"entitees": ["PERSON"]}}}, "detectors.pii.entitees: unknown field"),
        ({"detectors": {"pii": {"phone_regions": ["usa"]}}}, "phone_regions"),
        ({"detectors": {"terms": {"lists": {"bad": {"patterns": ["[unclosed"]}}}}}, "is invalid"),
        ({"detectors": {"terms": {"lists": {"bad": {"patterns": [r"(?<!x)y"]}}}}}, "linear time"),
        ({"detectors": {"terms": {"lists": {"bad": {"patterns": ["a" * 1001]}}}}}, "the limit is 1000"),
        ({"version": 2}, "version"),
    ],
)
def test_invalid_documents_are_refused_with_a_clear_path(override: dict, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(override)
    assert any(message in e for e in info.value.errors), info.value.errors


def test_yaml_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(PolicyError, match="mapping"):
        parse_document("- just\n- a list\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_document("rules: [\n")


def test_default_then_tenant_then_app() -> None:
    tenant = """
detectors:
  pii:
    entities: [EMAIL_ADDRESS, PHONE_NUMBER]
  terms:
    lists:
      competitors: {terms: [Globex]}
rules:
  - id: prompt-injection
    threshold: 0.5
  - id: competitor-mention
    detector: terms
    kinds: [competitors]
    action: alert
    severity: low
"""
    app = {"rules": [{"id": "competitor-mention", "enabled": False}],
           "detectors": {"pii": {"phone_regions": ["GB"]}}}
    policy = load_policy(tenant, app)
    assert policy.detectors.pii.entities == ["EMAIL_ADDRESS", "PHONE_NUMBER"]  # lists replaced
    assert policy.detectors.pii.phone_regions == ["GB"]
    assert policy.detectors.pii.score_threshold == 0.4  # untouched keys kept
    rules = {r.id: r for r in policy.rules}
    assert rules["prompt-injection"].threshold == 0.5
    assert rules["prompt-injection"].action is Action.ALERT  # other fields of the rule kept
    assert not rules["competitor-mention"].enabled
    assert "competitor-mention" not in {r.id for r in policy.active_rules}
    assert policy.detector_fingerprint != default_policy().detector_fingerprint


def test_narrowing_the_entities_keeps_rules_that_name_others_valid() -> None:
    policy = load_policy({"detectors": {"pii": {"entities": ["EMAIL_ADDRESS"]}}})  # default rules name CREDIT_CARD
    assert policy.detectors.pii.entities == ["EMAIL_ADDRESS"]
    with pytest.raises(PolicyError, match="unknown entity types"):
        load_policy({"detectors": {"pii": {"entities": ["EMAIL"]}}})


def test_merge_does_not_mutate_its_inputs() -> None:
    base = default_document()
    before = repr(base)
    merge_documents(base, {"rules": [{"id": "pii-redact", "threshold": 0.9}], "detectors": {"pii": {"language": "en"}}})
    assert repr(base) == before
