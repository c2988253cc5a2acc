"""The engine's decision over one interaction's hits, without the pydantic models: compiled with mypyc.

`engine` cannot be compiled (its results are pydantic models; mypyc makes a class with an unknown base a native
class, which cannot have pydantic's metaclass), so its per-event loops live here, in plain functions over the
objects it hands over (issue 17 item 1; docs/guardrails.md, "Compiled modules"):

- `place`: each hit placed in its text becomes a `Finding` (with its value's salted hash, each distinct value
  hashed once), its value and its text's redaction key;
- `facts_of`, `matching`: the fields rules read, once per finding; the findings a rule applies to;
- `apply_rules`: the allow rules' findings, then each other rule's matched findings and the redactions of the
  `redact` ones.

The values that come from the engine's own objects (segments, hits, rules, findings) are typed `Any` here on
purpose: mypyc checks (and converts: an `int` given where a `float` is declared becomes a `float`) the declared type
of what crosses into compiled code, and these functions must give back exactly what they were given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmops_guardrails.findings import _FIELDS_SET, Detector, Finding, _pads, finding_of, plain_place
from llmops_guardrails.policy import Action, RedactionMode, Severity
from llmops_guardrails.redact import Redaction

PlaceKey = tuple[Any, Any, Any, Any]  # (side, message_index, part_index, tool_call_index): a text's redaction key

_new = object.__new__
_tuple_new = tuple.__new__  # what a NamedTuple's own `__new__` calls (a Python function: ~0.3 µs a call more)
_set = object.__setattr__


def place(placed: Sequence[tuple[Any, Any]], salt: bytes, hashes: dict[str, str] | None = None
          ) -> tuple[list[Any], list[str], list[PlaceKey]]:
    """For each (segment, hit): the `Finding` (`findings.finding_of(hit, segment, value_hash(value, salt))`, made
    the same way), the hit's value (its span of the segment's text) and the segment's redaction key. Each distinct
    value is hashed once (HMAC-SHA256 under `salt`, as `findings.value_hash`: the keyed states are looked up once
    for the whole interaction), and a segment's checks are made once for its run of hits, not once per hit.

    `hashes`, if given, holds value hashes under this same `salt` from earlier calls (the engine's, across events:
    names and addresses recur) and gets this call's new ones; its caller bounds its size. The empty value's hash
    is always "" (as `finding_of` gives it)."""
    findings: list[Any] = []
    values: list[str] = []
    places: list[PlaceKey] = []
    if hashes is None:
        hashes = {}  # each distinct value hashed once (a name, an address met again)
    hashes[""] = ""
    inner, outer = _pads(salt)
    last: Any = None
    plain = False
    key: PlaceKey | None = None
    side: Any = None
    message_index: Any = None
    part_index: Any = None
    tool_call_index: Any = None
    role: Any = None
    for seg, hit in placed:
        assert seg is not None
        text: str = seg.text
        start: Any = hit.start
        end: Any = hit.end
        value = text[start:end] if text else ""
        values.append(value)
        digest = hashes.get(value)
        if digest is None:
            h = inner.copy()
            h.update(value.encode("utf-8", "surrogatepass"))
            o = outer.copy()
            o.update(h.digest())
            digest = hashes[value] = str(o.hexdigest())
        if seg is not last:  # the place's checks and key once per text, not once per finding
            last, plain, key = seg, plain_place(seg), None
            side, message_index, part_index, tool_call_index, role = (
                seg.side, seg.message_index, seg.part_index, seg.tool_call_index, seg.role)
        score: Any = hit.score
        signals: Any = hit.signals
        kind: Any = hit.kind
        detector: Any = hit.detector
        if (plain and type(score) is float and 0.0 <= score <= 1.0 and type(start) is int and type(end) is int
                and type(kind) is str and type(detector) is Detector
                and type(signals) is tuple and (not signals or all(type(s) is str for s in signals))):
            f: Any = _new(Finding)
            _set(f, "__dict__", {
                "detector": detector, "kind": kind, "side": side, "message_index": message_index,
                "part_index": part_index, "tool_call_index": tool_call_index, "role": role, "start": start,
                "end": end, "score": score, "value_hash": digest, "signals": signals})
            _set(f, "__pydantic_fields_set__", _FIELDS_SET.copy())
            _set(f, "__pydantic_extra__", None)
            _set(f, "__pydantic_private__", None)
        else:
            f = finding_of(hit, seg, digest, plain)
        findings.append(f)
        if key is None:
            key = (f.side, f.message_index, f.part_index, f.tool_call_index)
        places.append(key)
    return findings, values, places


Facts = tuple[Any, Any, Any, Any, Any, Any, Any]  # a finding's (detector, score, kind, side, role, start, end)


def facts_of(findings: Sequence[Any]) -> list[Facts]:
    """Each finding's fields that rules read, read once (a pydantic model's attribute costs ~50 ns in compiled code, a
    tuple's item a few; each rule of the finding's detector would read them again)."""
    return [(f.detector, f.score, f.kind, f.side, f.role, f.start, f.end) for f in findings]


def matching(rule: Any, indices: Sequence[int], facts: Sequence[Facts], values: Sequence[str], skip: set[int]
             ) -> list[int]:
    """The findings among `indices` (of `rule.detector`'s; `facts` are `facts_of(findings)`) that `rule` applies to,
    not in `skip`: its detector, score at or above its threshold, one of its kinds (if it names any), its sides and
    roles, and a value one of its `values` patterns matches whole (if it has any). The rule's fields are read once,
    not once per finding."""
    if not indices:
        return []
    detector: Any = rule.detector
    threshold: Any = rule.threshold
    kinds: Any = rule.kinds
    sides: Any = rule.applies_to
    roles: Any = rule.roles
    patterns: Any = rule.value_patterns if rule.values else None
    out: list[int] = []
    for i in indices:
        if i in skip:
            continue
        f = facts[i]
        if (f[0] is not detector or f[1] < threshold or (kinds and f[2] not in kinds)
                or f[3] not in sides or (roles is not None and f[4] not in roles)):
            continue
        if patterns is not None and not any(p.fullmatch(values[i]) for p in patterns):
            continue
        out.append(i)
    return out


def apply_rules(rules: Sequence[Any], findings: Sequence[Any], values: Sequence[str], places: Sequence[PlaceKey]
                ) -> tuple[list[tuple[Any, list[int]]], dict[PlaceKey, list[Redaction]]]:
    """The rules that fire, in order, each with the findings it matched (findings an `allow` rule matches are
    left out of every other rule), and the redactions per text of the `redact` rules' findings."""
    facts = facts_of(findings)
    of_detector: dict[Any, list[int]] = {}  # a rule applies to its detector's findings only
    for i, fact in enumerate(facts):
        of_detector.setdefault(fact[0], []).append(i)
    allow: Any = Action.ALLOW
    redact_action: Any = Action.REDACT
    none: list[int] = []
    allowed: set[int] = set()
    for r in rules:
        if r.action is allow:
            allowed.update(matching(r, of_detector.get(r.detector, none), facts, values, set()))
    fired: list[tuple[Any, list[int]]] = []
    redactions: dict[PlaceKey, list[Redaction]] = {}
    for rule in rules:
        if rule.action is allow:
            continue
        matched = matching(rule, of_detector.get(rule.detector, none), facts, values, allowed)
        if not matched:
            continue
        fired.append((rule, matched))
        if rule.action is redact_action:
            mode: Any = rule.redaction or RedactionMode.MASK
            for i in matched:
                f = facts[i]  # `Redaction(start, end, kind, mode, score)`, made as its `__new__` makes it
                redactions.setdefault(places[i], []).append(_tuple_new(Redaction, (f[5], f[6], f[2], mode, f[1])))
    return fired, redactions


def triggered(cls: Any, fired: Sequence[tuple[Any, list[int]]], findings: Sequence[Any]) -> list[Any]:
    """Each fired rule as a `cls` (`engine.TriggeredRule`: `rule_id`, `action`, `severity`, `detector`, the sorted
    kinds of its findings, their `count`, `max_score` and indices), made without validating it again when validation
    would give back the values as they are (every value of the exact type: a rule's fields are validated already,
    its findings' kinds are `str`); otherwise validated as before (an `int` score as the maximum)."""
    out: list[Any] = []
    fields_set: Any = None
    for rule, matched in fired:
        kinds = sorted({findings[i].kind for i in matched})
        max_score: Any = max(findings[i].score for i in matched)
        rule_id: Any = rule.id
        action: Any = rule.action
        severity: Any = rule.severity
        detector: Any = rule.detector
        if (type(max_score) is float and type(rule_id) is str and type(action) is Action
                and (severity is None or type(severity) is Severity) and type(detector) is Detector
                and all(type(k) is str for k in kinds)):
            if fields_set is None:
                fields_set = set(cls.model_fields)
            t: Any = _new(cls)
            _set(t, "__dict__", {
                "rule_id": rule_id, "action": action, "severity": severity, "detector": detector, "kinds": kinds,
                "count": len(matched), "max_score": max_score, "findings": matched})
            _set(t, "__pydantic_fields_set__", fields_set.copy())
            _set(t, "__pydantic_extra__", None)
            _set(t, "__pydantic_private__", None)
        else:
            t = cls(rule_id=rule_id, action=action, severity=severity, detector=detector, kinds=kinds,
                    count=len(matched), max_score=max_score, findings=matched)
        out.append(t)
    return out
