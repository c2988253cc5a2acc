"""What the stream makes of one scanned event: findings rows, alert occurrences and the clean event. Pure.

- **Findings rows** (`guardrail_findings`): where (side, message index, role, span), what (detector, entity
  type or rule name, score), which rule it triggered (the strongest: block > alert > redact) and the
  value's salted hash. Never the value.
- **Occurrences**: one per triggered `alert` or `block` rule of an event, keyed by the alert
  fingerprint (tenant, app, rule, detector); `alerts_service.record_occurrences` groups them into alerts.
- **The clean event** for `llm.interactions.clean`: the interaction redacted per policy, with
  `metadata["context"]` and `metadata["reference"]` (the texts the evaluator reads) redacted by the same
  policy, and a findings summary in `metadata["guardrails"]`:
  `{"findings": 3, "by_type": {"EMAIL_ADDRESS": 2, ...}, "rules": [...], "actions": ["alert", "redact"],
  "blocked": false, "policy_version": "t3"}` (plus `"metadata_findings": n` when the metadata texts had
  some). The summary holds counts and names only. A producer's own `guardrails` key is replaced. An
  event that redaction made too large for Kafka has its longest texts cut, with a marker (`sizing`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson

from llmops_guardrails.engine import InteractionScan, ScanOutcome, TriggeredRule
from llmops_guardrails.policy import Action
from llmops_guardrails.sizing import Truncation, fit
from llmops_shared.alerts import SEVERITY_RANK
from llmops_shared.contract import MAX_METADATA_BYTES, MAX_METADATA_KEYS, ChatMessage, Interaction

# Policy severities (low..critical) onto the alert contract's (info, warning, critical).
ALERT_SEVERITY = {"low": "info", "medium": "warning", "high": "critical", "critical": "critical"}
ACTION_RANK = {Action.BLOCK: 3, Action.ALERT: 2, Action.REDACT: 1, Action.ALLOW: 0}
METADATA_TEXT_KEYS = ("context", "reference")
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
    return [
        (event.event_id, n, event.tenant_id, event.app_id, event.occurred_at, f.message_index, f.side, f.role,
         f.detector.value, f.kind, rules[n], f.start, f.end, f.score, f.value_hash, policy_version)
        for n, f in enumerate(scan.findings)
    ]


def fingerprint(tenant_id: str, app_id: str, rule_id: str, detector: str) -> str:
    """`guardrails/<tenant>/<app>/<rule>/<detector>`, each part with its `/` escaped (`%2F`: ids may hold a
    `/`, and tenant `acme` with app `eu/bot` must never meet tenant `acme/eu` with app `bot`); a long one
    ends in a hash instead (200 chars at most)."""
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
        fingerprint=fingerprint(event.tenant_id, event.app_id, rule.rule_id, rule.detector.value),
        tenant_id=event.tenant_id, app_id=event.app_id, rule_id=rule.rule_id, detector=rule.detector.value,
        severity=ALERT_SEVERITY[policy_severity], policy_severity=policy_severity, kinds=tuple(rule.kinds),
        findings=rule.count, max_score=rule.max_score, event_id=event.event_id, occurred_at=event.occurred_at,
    )


def max_severity(a: str, b: str) -> str:
    return a if SEVERITY_RANK[a] >= SEVERITY_RANK[b] else b


# --------------------------------------------------------------------------------------------------
# Metadata texts the evaluator reads: scanned as a probe interaction of tool messages.


def metadata_texts(event: Interaction) -> list[tuple[str, int | None, str]]:
    """(key, list index or None, text) of `metadata.context` / `metadata.reference` strings."""
    out: list[tuple[str, int | None, str]] = []
    for key in METADATA_TEXT_KEYS:
        value = event.metadata.get(key)
        if isinstance(value, str) and value:
            out.append((key, None, value))
        elif isinstance(value, list):
            out.extend((key, i, item) for i, item in enumerate(value) if isinstance(item, str) and item)
    return out


def metadata_probe(event: Interaction) -> Interaction | None:
    """The event's metadata texts as an interaction of tool messages (retrieved content), or None."""
    texts = metadata_texts(event)
    if not texts:
        return None
    messages = [ChatMessage(role="tool", content=text) for _, _, text in texts]
    return event.model_copy(update={"input": messages, "output": None, "metadata": {}})


def redacted_metadata(event: Interaction, probe_scan: InteractionScan | None) -> dict[str, Any]:
    metadata = dict(event.metadata)
    if probe_scan is None:
        return metadata
    redacted = probe_scan.interaction.input
    assert isinstance(redacted, list)
    for (key, index, _), message in zip(metadata_texts(event), redacted, strict=True):
        text = message.content if isinstance(message.content, str) else message.text()
        if index is None:
            metadata[key] = text
        else:
            items = list(metadata[key])
            items[index] = text
            metadata[key] = items
    return metadata


def summary(scan: ScanOutcome, policy_version: str, probe_scan: ScanOutcome | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "findings": len(scan.findings),
        "by_type": dict(sorted(Counter(f.kind for f in scan.findings).items())),
        "rules": sorted({t.rule_id for t in scan.triggered}),
        "actions": sorted({t.action.value for t in scan.triggered}),
        "blocked": scan.blocked,
        "policy_version": policy_version,
    }
    if probe_scan is not None and probe_scan.findings:
        out["metadata_findings"] = len(probe_scan.findings)
    return out


def _fits(metadata: dict[str, Any]) -> bool:
    return len(metadata) <= MAX_METADATA_KEYS and len(orjson.dumps(metadata)) <= MAX_METADATA_BYTES


def clean_interaction(event: Interaction, scan: InteractionScan, policy_version: str,
                      probe_scan: InteractionScan | None = None) -> Interaction:
    """The redacted event with its findings summary, as it goes on `llm.interactions.clean` (before
    `sizing.fit` measures it).

    The summary never makes the event break the contract's metadata limits: when the full summary does
    not fit, a short one (`findings`, `policy_version`) is used, and when even that does not fit (a
    producer's metadata is at the limit already), the event goes without it.
    """
    metadata = redacted_metadata(event, probe_scan)
    metadata.pop(SUMMARY_KEY, None)
    full = summary(scan, policy_version, probe_scan)
    for candidate in (full, {"findings": full["findings"], "policy_version": policy_version}, None):
        trial = metadata if candidate is None else {**metadata, SUMMARY_KEY: candidate}
        if candidate is None or _fits(trial):
            metadata = trial
            break
    return scan.interaction.model_copy(update={"metadata": metadata})


def clean_event(event: Interaction, scan: InteractionScan, policy_version: str,
                probe_scan: InteractionScan | None = None, *, max_bytes: int = 1_000_000
                ) -> tuple[bytes, Truncation | None]:
    """The clean event's wire form, within `max_bytes` and the contract's text limits: its longest texts
    cut with a marker if need be (`sizing.fit`); raises `CleanEventTooLarge` when that cannot be enough."""
    return fit(clean_interaction(event, scan, policy_version, probe_scan), max_bytes=max_bytes)
