"""The decision's loops moved out of `engine` into `decision` (compiled, branch `guard18`) against the code they
replace, kept here verbatim as the reference: the same findings (fields, types, fields set), values, redaction keys,
rules fired with their findings, and redactions, over the corpus's real hits and hand-made odd ones, under policies
with allow rules, value patterns, kinds, sides, roles and every redaction mode."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from llmops_guardrails import compiled, decision, redact
from llmops_guardrails.engine import PolicyEngine, Segment
from llmops_guardrails.findings import Detector, Finding, Hit, finding_of, plain_place, value_hash
from llmops_guardrails.policy import Action, Policy, RedactionMode, Rule, default_policy, load_policy
from llmops_guardrails.redact import Redaction

from .corpus import corpus

SALT = b"test-salt"


# -- the reference: `PolicyEngine._decide`'s loops and `engine._matching` as they were at de389cb ------------------

def _old_place(placed: Sequence[tuple[Segment, Hit]], salt: bytes) -> tuple[list[Finding], list[str], list[tuple]]:
    findings: list[Finding] = []
    values: list[str] = []
    places: list[tuple] = []
    hashes: dict[str, str] = {"": ""}
    last: Segment | None = None
    for seg, hit in placed:
        value = seg.text[hit.start:hit.end] if seg.text else ""
        values.append(value)
        digest = hashes.get(value)
        if digest is None:
            digest = hashes[value] = value_hash(value, salt)
        if seg is not last:
            last, plain, place = seg, plain_place(seg), None
        f = finding_of(hit, seg, digest, plain)
        findings.append(f)
        if place is None:
            place = (f.side, f.message_index, f.part_index, f.tool_call_index)
        places.append(place)
    return findings, values, places


def _old_matching(rule: Rule, indices: Sequence[int], findings: list[Finding], values: list[str], skip: set[int]
                  ) -> list[int]:
    if not indices:
        return []
    detector, threshold, kinds, sides, roles = rule.detector, rule.threshold, rule.kinds, rule.applies_to, rule.roles
    out = []
    for i in indices:
        if i in skip:
            continue
        f = findings[i]
        if (f.detector is not detector or f.score < threshold or (kinds and f.kind not in kinds)
                or f.side not in sides or (roles is not None and f.role not in roles)):
            continue
        if rule.values and not any(p.fullmatch(values[i]) for p in rule.value_patterns):
            continue
        out.append(i)
    return out


def _old_rules(rules: list[Rule], findings: list[Finding], values: list[str], places: list[tuple]
               ) -> tuple[list[tuple[Rule, list[int]]], dict[tuple, list[Redaction]]]:
    of_detector: dict[Detector, list[int]] = {}
    for i, f in enumerate(findings):
        of_detector.setdefault(f.detector, []).append(i)
    allowed: set[int] = set()
    for r in rules:
        if r.action is Action.ALLOW:
            allowed.update(_old_matching(r, of_detector.get(r.detector, ()), findings, values, set()))
    fired = []
    redactions: dict[tuple, list[Redaction]] = {}
    for rule in rules:
        if rule.action is Action.ALLOW:
            continue
        matched = _old_matching(rule, of_detector.get(rule.detector, ()), findings, values, allowed)
        if not matched:
            continue
        fired.append((rule, matched))
        if rule.action is Action.REDACT:
            mode = rule.redaction or RedactionMode.MASK
            for i in matched:
                f = findings[i]
                redactions.setdefault(places[i], []).append(Redaction(f.start, f.end, f.kind, mode, f.score))
    return fired, redactions


# -------------------------------------------------------------------------------------------------------------

def _same_findings(new: list[Finding], old: list[Finding]) -> None:
    assert len(new) == len(old)
    for a, b in zip(new, old, strict=True):
        assert type(a) is Finding and a == b
        assert {k: type(v) for k, v in a.__dict__.items()} == {k: type(v) for k, v in b.__dict__.items()}
        assert a.__pydantic_fields_set__ == b.__pydantic_fields_set__
        assert a.__pydantic_fields_set__ is not b.__pydantic_fields_set__


def _policies() -> list[Policy]:
    return [
        default_policy(),
        load_policy({"rules": [
            {"id": "pii-redact", "redaction": "hash"},
            {"id": "names-ok", "detector": "pii", "kinds": ["PERSON"], "action": "allow",
             "values": [r"[A-M]\w*( \w+)?"]},
            {"id": "places-out", "detector": "pii", "kinds": ["LOCATION"], "applies_to": ["output"], "action": "alert",
             "severity": "low"},
            {"id": "user-pii", "detector": "pii", "roles": ["user"], "threshold": 0.7, "action": "redact",
             "redaction": "partial"},
            {"id": "cards", "detector": "pii", "kinds": ["CREDIT_CARD", "PHONE_NUMBER"], "action": "block",
             "severity": "critical"},
        ]}),
        load_policy({"rules": [{"id": "pii-redact", "enabled": False},
                               {"id": "all-mask", "detector": "pii", "threshold": 0.0, "action": "redact",
                                "redaction": "mask"}]}),
    ]


@pytest.fixture(scope="module")
def placed(engine: PolicyEngine) -> list[list[tuple[Segment, Hit]]]:
    """The corpus's texts as interactions of two to four segments, with the default policy's real hits, plus odd
    hits (an int score, a bool index, a hit at the text's end, an empty text's)."""
    rng = random.Random(18)
    texts = corpus()[:1200]
    hits = engine.hits_for(texts, default_policy())
    out = []
    for k in range(0, len(texts) - 4, 2):
        segs = [Segment(rng.choice(("input", "output")), m, rng.choice((None, 0, 1)), rng.choice((None, None, 2)),
                        rng.choice(("user", "assistant", "system", "tool")), texts[k + m])
                for m in range(rng.randint(2, 4))]
        out.append([(s, h) for m, s in enumerate(segs) for h in hits[k + m]])
    odd = Segment("input", True, None, None, "user", "Jane Doe, 4111 1111 1111 1111")  # type: ignore[arg-type]
    plain = Segment("output", 0, None, None, "assistant", "Jane Doe")
    empty = Segment("input", None, None, None, "user", "")
    out.append([(odd, Hit(Detector.PII, "PERSON", 0, 8, 1)),  # type: ignore[arg-type]
                (odd, Hit(Detector.PII, "CREDIT_CARD", 10, 29, 0.9)),
                (plain, Hit(Detector.PII, "PERSON", 0, 8, 0.85, ("a", "b"))),
                (plain, Hit(Detector.PII, "PERSON", 8, 8, 0.5)),
                (empty, Hit(Detector.SIZE, "input_too_long", 0, 0, 1.0))])
    return out


def test_the_decision_is_the_engines_old_decision(placed: list[list[tuple[Segment, Hit]]]) -> None:
    assert sum(len(p) for p in placed) > 1000
    for policy in _policies():
        rules = policy.active_rules
        fired_some = redacted_some = 0
        for event in placed:
            findings, values, places = decision.place(event, SALT)
            old_findings, old_values, old_places = _old_place(event, SALT)
            _same_findings(findings, old_findings)
            assert values == old_values and places == old_places
            fired, redactions = decision.apply_rules(rules, findings, values, places)
            old_fired, old_redactions = _old_rules(rules, old_findings, old_values, old_places)
            assert [(r.id, m) for r, m in fired] == [(r.id, m) for r, m in old_fired]
            assert redactions == old_redactions
            assert all(type(a.score) is type(b.score) for k in redactions
                       for a, b in zip(redactions[k], old_redactions[k], strict=True))
            fired_some += bool(fired)
            redacted_some += bool(redactions)
        assert fired_some > 100 and redacted_some > 50, policy.name


def test_a_finding_that_fails_validation_is_refused_as_before() -> None:
    seg = Segment("input", 0, None, None, "user", "Jane")
    bad = Hit(Detector.PII, "PERSON", 0, 4, 0.9, ("x", 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        decision.place([(seg, bad)], SALT)
    with pytest.raises(ValueError):
        _old_place([(seg, bad)], SALT)


def test_redaction_compiled_is_redaction_as_before() -> None:
    text = "Jane Doe's card 4111 1111 1111 1111, call +44 20 7946 0958 or ΠΑΦΟΣ"
    spans = [Redaction(0, 8, "PERSON", RedactionMode.HASH, 0.85), Redaction(16, 35, "CREDIT_CARD",
                                                                            RedactionMode.PARTIAL, 0.9),
             Redaction(5, 10, "PERSON", RedactionMode.PARTIAL, 0.9), Redaction(42, 58, "PHONE_NUMBER",
                                                                              RedactionMode.MASK, 0.7),
             Redaction(62, 67, "LOCATION", RedactionMode.HASH, 1)]
    assert redact.redact(text, spans, SALT) == (
        f"<PERSON:{value_hash(text[0:10], SALT)[:8]}> card ****1111, call [PHONE_NUMBER] or "
        f"<LOCATION:{value_hash('ΠΑΦΟΣ', SALT)[:8]}>")
    merged = redact.merge_spans(spans)
    assert merged[0] == Redaction(0, 10, "PERSON", RedactionMode.HASH, 0.9) and type(merged[-1].score) is int
    assert redact.redact(text, [], SALT) is text


def test_the_decision_and_redaction_run_compiled() -> None:
    assert {"llmops_guardrails.decision", "llmops_guardrails.redact"} <= set(compiled.MODULES)
    if compiled.STATE["mode"] == "compiled":
        assert compiled.is_compiled(decision) and compiled.is_compiled(redact)


def test_a_policys_remembered_rules_and_detectors_are_what_it_computed() -> None:
    no_secrets = [{"id": r.id, "enabled": False} for r in default_policy().rules if r.detector is Detector.SECRETS]
    policies = [*_policies(), load_policy({"rules": no_secrets})]
    for policy in policies:
        assert policy.active_rules == [r for r in policy.rules if r.enabled]
        assert policy.active_rules is policy.active_rules  # remembered: the engine reads it for every event
        for detector in Detector:
            old = any(r.detector is detector and r.action is not Action.ALLOW for r in policy.rules if r.enabled)
            assert policy.uses(detector) is old
            assert policy.uses(detector.value) is False  # type: ignore[arg-type]  # a str never was a detector
    assert not policies[-1].uses(Detector.SECRETS) and policies[0].uses(Detector.SECRETS)
    assert policies[0] == load_policy({}) and policies[0].model_dump() == load_policy({}).model_dump()


def test_value_hashes_remembered_across_calls_are_the_hashes(placed: list[list[tuple[Segment, Hit]]]) -> None:
    # one dict across all the events (as the engine keeps one): the same findings as without it, and it holds
    # each value's own hash under the salt, the empty value's as "" (the size hits' empty segments)
    hashes: dict[str, str] = {}
    for event in placed:
        findings, values, places = decision.place(event, SALT, hashes)
        old_findings, old_values, old_places = _old_place(event, SALT)
        _same_findings(findings, old_findings)
        assert values == old_values and places == old_places
    assert len(hashes) > 100 and hashes[""] == ""
    assert all(h == value_hash(v, SALT) for v, h in hashes.items() if v)
    # a remembered hash is used, not computed again
    seg = Segment("input", 0, None, None, "user", "Jane Doe")
    remembered = {"Jane Doe": "f" * 64}
    findings, _, _ = decision.place([(seg, Hit(Detector.PII, "PERSON", 0, 8, 0.9))], SALT, remembered)
    assert findings[0].value_hash == "f" * 64


def test_the_engine_remembers_value_hashes_within_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_guardrails import engine as engine_module

    engine = PolicyEngine()
    policy = default_policy()
    seg = Segment("input", 0, None, None, "user", "Jane Doe wrote to jane@example.com")
    hits = (Hit(Detector.PII, "PERSON", 0, 8, 0.9), Hit(Detector.PII, "EMAIL_ADDRESS", 18, 34, 1.0))
    outcome, _ = engine._decide([seg], [hits], policy, seg.text, None)
    assert engine._value_hashes == {"": "", "Jane Doe": value_hash("Jane Doe", engine._salt),
                                    "jane@example.com": value_hash("jane@example.com", engine._salt)}
    assert [f.value_hash for f in outcome["findings"]] == [value_hash("Jane Doe", engine._salt),
                                                            value_hash("jane@example.com", engine._salt)]
    monkeypatch.setattr(engine_module, "VALUE_HASHES", 2)  # full: emptied before the next event's values
    other = Segment("input", 0, None, None, "user", "Ann Lee")
    engine._decide([other], [(Hit(Detector.PII, "PERSON", 0, 7, 0.9),)], policy, other.text, None)
    assert engine._value_hashes == {"": "", "Ann Lee": value_hash("Ann Lee", engine._salt)}


def test_rules_read_each_findings_facts_once_and_make_true_redactions(
        placed: list[list[tuple[Segment, Hit]]]) -> None:
    findings, values, places = decision.place(placed[0] + placed[-1], SALT)
    assert decision.facts_of(findings) == [(f.detector, f.score, f.kind, f.side, f.role, f.start, f.end)
                                           for f in findings]
    for policy in _policies():
        for event in placed[:200] + placed[-1:]:
            findings, values, places = decision.place(event, SALT)
            _, redactions = decision.apply_rules(policy.active_rules, findings, values, places)
            _, old_redactions = _old_rules(policy.active_rules, *_old_place(event, SALT))
            assert redactions == old_redactions
            for key, spans in redactions.items():  # the NamedTuple itself, its fields of the same types
                for new, old in zip(spans, old_redactions[key], strict=True):
                    assert type(new) is Redaction and new.label == old.label and new.mode is old.mode
                    assert [type(x) for x in new] == [type(x) for x in old]


def test_triggered_rules_are_the_validated_models(placed: list[list[tuple[Segment, Hit]]]) -> None:
    from llmops_guardrails.engine import TriggeredRule

    made = 0
    for policy in _policies():
        for event in placed:
            findings, values, places = decision.place(event, SALT)
            fired, _ = decision.apply_rules(policy.active_rules, findings, values, places)
            new = decision.triggered(TriggeredRule, fired, findings)
            old = [TriggeredRule(rule_id=rule.id, action=rule.action, severity=rule.severity, detector=rule.detector,
                                 kinds=sorted({findings[i].kind for i in matched}), count=len(matched),
                                 max_score=max(findings[i].score for i in matched), findings=matched)
                   for rule, matched in fired]
            assert new == old
            for a, b in zip(new, old, strict=True):
                assert type(a) is TriggeredRule and a.model_fields_set == b.model_fields_set
                assert {k: type(v) for k, v in a.__dict__.items()} == {k: type(v) for k, v in b.__dict__.items()}
                assert list(a.__dict__) == list(b.__dict__)
                assert a.model_dump_json() == b.model_dump_json()
                assert a.__pydantic_extra__ is None and a.__pydantic_private__ == b.__pydantic_private__
            made += len(new)
    assert made > 1000
    # a value validation would change (an int score as the maximum) is validated, as before
    odd = Finding(detector=Detector.PII, kind="PERSON", side="input", role="user", start=0, end=4, score=1.0,
                  value_hash="")
    object.__setattr__(odd, "score", 1)
    rule = default_policy().active_rules[0]
    [t] = decision.triggered(TriggeredRule, [(rule, [0])], [odd])
    assert type(t.max_score) is float and t.max_score == 1.0
