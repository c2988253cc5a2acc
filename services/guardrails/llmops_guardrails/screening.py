"""What the stream makes of one scanned event: findings rows, alert occurrences and the clean event. Pure.

- **Findings rows** (`guardrail_findings`): where (side, message index, role, span), what (detector, entity
  type or rule name, score), which rule it triggered (the strongest: block > alert > redact) and the
  value's salted hash. Never the value.
- **Occurrences**: one per triggered `alert` or `block` rule of an event, keyed by the alert
  fingerprint (tenant, app, rule, detector); `alerts_service.record_occurrences` groups them into alerts.
- **The clean event** for `llm.interactions.clean`: the interaction redacted per policy; its other free
  text (`name`, `session_id`, `error.message`, tags, message names and every string of `metadata`, at any
  depth: `field_texts`) scanned with the same policy, as tool messages, and redacted the same way (what the
  policy's `fields` keeps verbatim aside); `user_id` replaced by its pseudonym (`llmops_shared.privacy`);
  and a findings summary in `metadata["guardrails"]`:
  `{"findings": 3, "by_type": {"EMAIL_ADDRESS": 2, ...}, "rules": [...], "actions": ["alert", "redact"],
  "blocked": false, "policy_version": "t3"}` (plus `"field_findings": n` when the other free text had
  some; those findings are counted there only, not stored as rows). The summary holds counts and names
  only. A producer's own `guardrails` key is replaced. An event that redaction made too large for Kafka
  has its longest texts cut, with a marker (`sizing`).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson

from llmops_guardrails.engine import InteractionScan, ScanOutcome, TriggeredRule
from llmops_guardrails.findings import Detector
from llmops_guardrails.policy import Action, FieldSettings
from llmops_guardrails.sizing import Truncation, fit
from llmops_shared.alerts import SEVERITY_RANK
from llmops_shared.contract import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_KEYS,
    MAX_SHORT_TEXT_CHARS,
    MAX_TAG_CHARS,
    ChatMessage,
    Interaction,
    Status,
)
from llmops_shared.privacy import DEV_PSEUDONYM_KEY, pseudonym_or_none

# Policy severities (low..critical) onto the alert contract's (info, warning, critical).
ALERT_SEVERITY = {"low": "info", "medium": "warning", "high": "critical", "critical": "critical"}
ACTION_RANK = {Action.BLOCK: 3, Action.ALERT: 2, Action.REDACT: 1, Action.ALLOW: 0}
SUMMARY_KEY = "guardrails"
_MAX_FINGERPRINT = 200


def strongest_rules(outcome: ScanOutcome) -> list[str | None]:
    """For each finding, the id of the strongest rule it triggered (block > alert > redact), or None."""
    best: list[tuple[int, str] | None] = [None] * len(outcome.findings)
    for rule in outcome.triggered:
        rank = ACTION_RANK[rule.action]
        for i in rule.findings:
            current = best[i]
            if current is None or rank > current[0]:
                best[i] = (rank, rule.rule_id)
    return [b[1] if b else None for b in best]


def decision(outcome: ScanOutcome) -> str:
    """The strongest action taken: block > redact > alert > allow (nothing triggered)."""
    actions = {t.action for t in outcome.triggered}
    for action in (Action.BLOCK, Action.REDACT, Action.ALERT):
        if action in actions:
            return action.value
    return Action.ALLOW.value


FindingRow = tuple[uuid.UUID, int, str, str, datetime, int | None, str, str | None, str, str, str | None,
                   int, int, float, str, str]


def finding_rows(event: Interaction, scan: ScanOutcome, policy_version: str) -> list[FindingRow]:
    """Rows of `guardrail_findings`, numbered in scan order (deterministic for an event and policy)."""
    rules = strongest_rules(scan)
    event_id, tenant_id, app_id, occurred_at = event.event_id, event.tenant_id, event.app_id, event.occurred_at
    return [
        (event_id, n, tenant_id, app_id, occurred_at, f.message_index, f.side, f.role, _DETECTOR_VALUES[f.detector],
         f.kind, rules[n], f.start, f.end, f.score, f.value_hash, policy_version)
        for n, f in enumerate(scan.findings)
    ]


# `Detector.X.value` by a look-up: an enum's `value` is a Python-level property (~0.25 µs a read, one per finding).
_DETECTOR_VALUES = {d: d.value for d in Detector}


@functools.lru_cache(maxsize=4096)
def fingerprint(tenant_id: str, app_id: str, rule_id: str, detector: str) -> str:
    """`guardrails/<tenant>/<app>/<rule>/<detector>`, each part with its `/` escaped (`%2F`: ids may hold a
    `/`, and tenant `acme` with app `eu/bot` must never meet tenant `acme/eu` with app `bot`); a long one
    ends in a hash instead (200 chars at most). Remembered for the last 4,096 combinations: every event's alerts
    ask for the same few again (~3 µs each to build)."""
    text = "/".join(("guardrails", *(fingerprint_part(p) for p in (tenant_id, app_id, rule_id, detector))))
    if len(text) <= _MAX_FINGERPRINT:
        return text
    return f"{text[:_MAX_FINGERPRINT - 25]}~{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def fingerprint_part(part: str) -> str:
    """One part of a fingerprint, unambiguous once joined with `/`."""
    return quote(part, safe=":@")


@dataclass(frozen=True)
class Occurrence:
    """One event triggering one alert (or block) rule."""

    fingerprint: str
    tenant_id: str
    app_id: str
    rule_id: str
    detector: str
    severity: str  # info | warning | critical (the alert contract's)
    policy_severity: str  # low | medium | high | critical (the rule's)
    kinds: tuple[str, ...]
    findings: int
    max_score: float
    event_id: uuid.UUID
    occurred_at: datetime


def occurrences(event: Interaction, scan: ScanOutcome) -> list[Occurrence]:
    return [_occurrence(event, t) for t in scan.alerts]


def _occurrence(event: Interaction, rule: TriggeredRule) -> Occurrence:
    policy_severity = rule.severity.value if rule.severity else "medium"
    return Occurrence(
        fingerprint=fingerprint(event.tenant_id, event.app_id, rule.rule_id, _DETECTOR_VALUES[rule.detector]),
        tenant_id=event.tenant_id, app_id=event.app_id, rule_id=rule.rule_id, detector=_DETECTOR_VALUES[rule.detector],
        severity=ALERT_SEVERITY[policy_severity], policy_severity=policy_severity, kinds=tuple(rule.kinds),
        findings=rule.count, max_score=rule.max_score, event_id=event.event_id, occurred_at=event.occurred_at,
    )


def max_severity(a: str, b: str) -> str:
    return a if SEVERITY_RANK[a] >= SEVERITY_RANK[b] else b


# --------------------------------------------------------------------------------------------------
# The event's other free text: scanned as a probe interaction of tool messages, redacted in place.


@dataclass(frozen=True)
class FieldText:
    """One free-text field of an event outside its messages' contents: where it sits, and its text."""

    path: tuple[str | int, ...]  # ("tags", 0), ("metadata", "crm", "notes", 2), ("error", "message"), ...
    text: str


@dataclass(frozen=True)
class FieldsScan:
    """The probe's scan: its i-th message is `texts[i]`, redacted per policy."""

    texts: list[FieldText]
    scan: InteractionScan


# The longest each field may be (the contract's): a redaction that makes one longer is cut.
_FIELD_MAX_CHARS = {"tags": MAX_TAG_CHARS, "name": MAX_SHORT_TEXT_CHARS, "session_id": MAX_SHORT_TEXT_CHARS,
                    "error": MAX_ERROR_MESSAGE_CHARS, "input": MAX_SHORT_TEXT_CHARS, "output": MAX_SHORT_TEXT_CHARS}


def field_texts(event: Interaction, fields: FieldSettings | None = None) -> list[FieldText]:
    """The event's free text other than its messages' contents, in a fixed order: `name`, `session_id`,
    `error.message`, each tag, each message's `name` (a participant), and every string in `metadata`, at any
    depth (a producer's own `guardrails` key aside). What `fields` keeps verbatim is left out."""
    fields = fields or FieldSettings()
    out: list[FieldText] = []
    top: list[tuple[tuple[str | int, ...], str | None]] = [
        (("name",), event.name), (("session_id",), event.session_id),
        (("error", "message"), event.error.message if event.error else None)]
    out += [FieldText(path, value) for path, value in top if value]
    keep_tags = set(fields.keep_tags)
    out += [FieldText(("tags", i), tag) for i, tag in enumerate(event.tags) if tag not in keep_tags]
    for side in ("input", "output"):
        messages = getattr(event, side)
        if isinstance(messages, list):
            out += [FieldText((side, i, "name"), m.name) for i, m in enumerate(messages) if m.name]
    skip = {SUMMARY_KEY, *fields.keep_metadata_keys}
    stack: list[tuple[tuple[str | int, ...], Any]] = [
        (("metadata", key), value) for key, value in reversed(event.metadata.items()) if key not in skip]
    while stack:  # depth-first, in document order; iterative: nesting depth is the producer's choice
        path, value = stack.pop()
        if isinstance(value, str):
            if value:
                out.append(FieldText(path, value))
        elif isinstance(value, dict):
            stack += [((*path, k), v) for k, v in reversed(value.items())]
        elif isinstance(value, list):
            stack += [((*path, i), v) for i, v in reversed(list(enumerate(value)))]
    return out


def fields_probe(event: Interaction, texts: list[FieldText]) -> Interaction | None:
    """The texts as an interaction of tool messages (content the app supplied), to be scanned with the
    event's policy; None when there are none."""
    if not texts:
        return None
    messages = [ChatMessage(role="tool", content=t.text) for t in texts]
    return event.model_copy(update={"input": messages, "output": None, "metadata": {}, "tags": [], "name": None,
                                    "session_id": None, "user_id": None, "status": Status.OK, "error": None})


def _redacted_texts(fields: FieldsScan) -> list[str]:
    redacted = fields.scan.interaction.input
    assert isinstance(redacted, list)
    return [m.content if isinstance(m.content, str) else m.text() for m in redacted]


def redact_fields(clean: Interaction, fields: FieldsScan | None) -> Interaction:
    """`clean` (the scan's redacted copy) with each scanned field replaced by its redacted text, cut to the
    contract's length for the field. Metadata that redaction would take past the contract's size limit has
    its redacted strings emptied instead (they are never left raw)."""
    if fields is None:
        return clean
    changed = [(t.path, r) for t, r in zip(fields.texts, _redacted_texts(fields), strict=True) if r != t.text]
    if not changed:
        return clean
    update: dict[str, Any] = {}
    metadata: Any = None
    tags = list(clean.tags)
    messages = {side: list(getattr(clean, side)) for side in ("input", "output")
                if isinstance(getattr(clean, side), list)}
    for path, redacted in changed:
        root = path[0]
        if root == "metadata":
            metadata = metadata if metadata is not None else orjson.loads(orjson.dumps(clean.metadata))
            _set(metadata, path[1:], redacted)
            continue
        text = redacted[:_FIELD_MAX_CHARS[str(root)]]
        if root == "tags":
            tags[int(path[1])] = text
            update["tags"] = tags
        elif root in ("input", "output"):
            index = int(path[1])
            messages[str(root)][index] = messages[str(root)][index].model_copy(update={"name": text})
            update[str(root)] = messages[str(root)]
        elif root == "error":
            assert clean.error is not None
            update["error"] = clean.error.model_copy(update={"message": text})
        else:
            update[str(root)] = text
    if metadata is not None:
        if not _fits(metadata):
            metadata = orjson.loads(orjson.dumps(clean.metadata))
            for path, _ in changed:
                if path[0] == "metadata":
                    _set(metadata, path[1:], "")
        update["metadata"] = metadata
    return clean.model_copy(update=update)


def _set(document: Any, path: tuple[str | int, ...], value: str) -> None:
    for part in path[:-1]:
        document = document[part]
    document[path[-1]] = value


def summary(scan: ScanOutcome, policy_version: str, fields_scan: ScanOutcome | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "findings": len(scan.findings),
        "by_type": dict(sorted(Counter(f.kind for f in scan.findings).items())),
        "rules": sorted({t.rule_id for t in scan.triggered}),
        "actions": sorted({t.action.value for t in scan.triggered}),
        "blocked": scan.blocked,
        "policy_version": policy_version,
    }
    if fields_scan is not None and fields_scan.findings:
        out["field_findings"] = len(fields_scan.findings)
    return out


def _fits(metadata: dict[str, Any]) -> bool:
    return len(metadata) <= MAX_METADATA_KEYS and len(orjson.dumps(metadata)) <= MAX_METADATA_BYTES


def clean_interaction(event: Interaction, scan: InteractionScan, policy_version: str,
                      fields: FieldsScan | None = None, *, pseudonym_key: bytes = DEV_PSEUDONYM_KEY) -> Interaction:
    """The redacted event with its findings summary, as it goes on `llm.interactions.clean` (before
    `sizing.fit` measures it): the messages as the scan redacted them, the other free text as the fields
    scan did (`redact_fields`), and `user_id` as its pseudonym under `pseudonym_key`.

    The summary never makes the event break the contract's metadata limits: when the full summary does
    not fit, a short one (`findings`, `policy_version`) is used, and when even that does not fit (a
    producer's metadata is at the limit already), the event goes without it.
    """
    clean = redact_fields(scan.interaction, fields)
    metadata = dict(clean.metadata)
    metadata.pop(SUMMARY_KEY, None)
    full = summary(scan, policy_version, fields.scan if fields is not None else None)
    for candidate in (full, {"findings": full["findings"], "policy_version": policy_version}, None):
        trial = metadata if candidate is None else {**metadata, SUMMARY_KEY: candidate}
        if candidate is None or _fits(trial):
            metadata = trial
            break
    return clean.model_copy(update={
        "metadata": metadata, "user_id": pseudonym_or_none(event.tenant_id, event.user_id, pseudonym_key)})


def clean_event(event: Interaction, scan: InteractionScan, policy_version: str, fields: FieldsScan | None = None,
                *, max_bytes: int = 1_000_000, pseudonym_key: bytes = DEV_PSEUDONYM_KEY
                ) -> tuple[bytes, Truncation | None]:
    """The clean event's wire form, within `max_bytes` and the contract's text limits: its longest texts
    cut with a marker if need be (`sizing.fit`); raises `CleanEventTooLarge` when that cannot be enough."""
    return fit(clean_interaction(event, scan, policy_version, fields, pseudonym_key=pseudonym_key),
               max_bytes=max_bytes)
