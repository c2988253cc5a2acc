"""Guardrail alerts: grouping occurrences (the stream) and the alert life cycle (the API).

**Grouping.** An alert is keyed by its fingerprint (tenant, app, rule, detector). At most one alert per
fingerprint is unresolved (a partial unique index); every event that triggers the rule is counted into
it once (`guardrail_alert_events` is unique on (fingerprint, event_id), so a redelivered event, or one
sent twice, is never counted twice, even after the alert it was counted in was resolved; a fingerprint
names its tenant, so another tenant's event with the same id is counted into that tenant's alert). `count`,
`first_seen` and `last_seen` (event times) grow only from rows actually inserted. When the unresolved alert
has been quiet for longer than the grouping window (its `last_seen` is more than `alert_group_window_s`
before the earliest new occurrence in the batch), it is resolved (`resolved_by = 'guardrails:window'`,
and a `resolved` message goes out) and a new alert opens. Severity only escalates.

**Messages.** Every alert that a batch opened or counted into yields one `AlertMessage` with its state
after the batch (`message_id` = alert:status:count, so the notifier sends each state once). When a batch
is redelivered, its events are already counted: the current state of their alerts is published again;
the notifier recognises what it has delivered, so a crash between the commit and Kafka's acknowledgement
delays a notification and never loses one.

**Life cycle** (API): open -> acknowledged -> resolved (or open -> resolved). Acknowledging sends nothing;
resolving publishes a `resolved` message (PagerDuty resolves its incident) before the change commits.
Resolving or acknowledging twice returns the alert as it is; acknowledging a resolved one is a conflict.

Titles and summaries are built from rule ids, entity types, counts and times: never from content.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from llmops_guardrails.schemas import AlertPublic, AlertsPublic
from llmops_guardrails.screening import Occurrence, max_severity
from llmops_guardrails.settings import GuardrailsSettings
from llmops_guardrails.store import Executor
from llmops_guardrails.store import alerts as alerts_store
from llmops_shared import cursors, problems
from llmops_shared.alerts import AlertMessage
from llmops_shared.kafka import KafkaUnavailable, LazyProducer

log = logging.getLogger(__name__)

SOURCE = "guardrails"
WINDOW_RESOLVER = "guardrails:window"
POLICY_SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
MAX_KINDS = 50


def title_of(rule_id: str, kinds: Sequence[str], app_id: str) -> str:
    what = ", ".join(kinds[:5]) + (f" and {len(kinds) - 5} more" if len(kinds) > 5 else "")
    return f"{rule_id}: {what or 'triggered'} in app {app_id}"[:300]


def summary_of(*, count: int, detector: str, policy_severity: str | None, first_seen: datetime,
               last_seen: datetime) -> str:
    return (f"{count} event(s) between {first_seen.isoformat(timespec='seconds')} and "
            f"{last_seen.isoformat(timespec='seconds')}; detector {detector}; rule severity "
            f"{policy_severity or 'n/a'}")


def alert_message(row: asyncpg.Record | dict[str, Any]) -> AlertMessage:
    status = row["status"]
    occurred = row["resolved_at"] if status == "resolved" and row["resolved_at"] else row["last_seen"]
    return AlertMessage(
        alert_id=str(row["alert_id"]), source=SOURCE, tenant_id=row["tenant_id"], app_id=row["app_id"],
        rule=row["rule_id"], detector=row["detector"], severity=row["severity"], fingerprint=row["fingerprint"],
        status=status, title=row["title"], summary=row["summary"], occurred_at=occurred, count=max(1, row["count"]),
        details={"kinds": list(row["kinds"] or []), "policy_severity": row["policy_severity"],
                 "first_seen": row["first_seen"].isoformat(), "last_seen": row["last_seen"].isoformat()},
    )


# --------------------------------------------------------------------------------------------------
# Grouping (the stream worker, inside its batch transaction).


async def record_occurrences(conn: asyncpg.Connection, found: Sequence[Occurrence], *, window_s: float
                             ) -> list[AlertMessage]:
    """Count the batch's occurrences into their alerts; the messages to publish after the commit."""
    groups: dict[str, dict[uuid.UUID, Occurrence]] = {}
    for occ in found:
        groups.setdefault(occ.fingerprint, {}).setdefault(occ.event_id, occ)
    if not groups:
        return []
    pairs = [(fp, event_id) for fp, group in groups.items() for event_id in group]
    rows = await alerts_store.counted_events(conn, fingerprints=[p[0] for p in pairs],
                                             event_ids=[p[1] for p in pairs])
    counted: dict[str, set[uuid.UUID]] = {}
    earlier_alerts: set[uuid.UUID] = set()
    for r in rows:
        counted.setdefault(r["fingerprint"], set()).add(r["event_id"])
        earlier_alerts.add(r["alert_id"])

    messages: list[AlertMessage] = []
    for fp in sorted(groups):  # one lock order for every worker: no deadlocks between them
        new = [o for event_id, o in groups[fp].items() if event_id not in counted.get(fp, set())]
        if new:
            messages += await _count_into_alert(conn, fp, new, window_s)
    touched = {uuid.UUID(m.alert_id) for m in messages}
    if earlier_alerts - touched:  # redelivered events: publish their alerts' current state again
        again = await alerts_store.alerts_by_id(conn, alert_ids=sorted(earlier_alerts - touched))
        messages += [alert_message(r) for r in again]
    return messages


async def _count_into_alert(conn: asyncpg.Connection, fp: str, new: list[Occurrence], window_s: float
                            ) -> list[AlertMessage]:
    out: list[AlertMessage] = []
    first = new[0]
    earliest = min(o.occurred_at for o in new)
    latest = max(o.occurred_at for o in new)
    row = await alerts_store.lock_unresolved(conn, fingerprint=fp)
    if row is not None and row["last_seen"] < earliest - timedelta(seconds=window_s):
        out.append(alert_message(await alerts_store.close(conn, alert_id=row["alert_id"], by=WINDOW_RESOLVER)))
        row = None
    created = False
    if row is None:
        row = await alerts_store.open_alert(
            conn, alert_id=uuid.uuid4(), fingerprint=fp, tenant_id=first.tenant_id, app_id=first.app_id,
            rule_id=first.rule_id, detector=first.detector, severity=first.severity,
            policy_severity=first.policy_severity, kinds=first.kinds,
            title=title_of(first.rule_id, first.kinds, first.app_id), first_seen=earliest, last_seen=latest)
        created = row is not None
        if row is None:  # another worker opened it a moment ago
            row = await alerts_store.lock_unresolved(conn, fingerprint=fp)
            assert row is not None
    ids = await alerts_store.count_events(conn, alert_id=row["alert_id"], fingerprint=fp,
                                          event_ids=[o.event_id for o in new],
                                          occurred_at=[o.occurred_at for o in new])
    counted_now = [o for o in new if o.event_id in ids]
    if not counted_now:  # a concurrent worker counted them (the same event on two partitions)
        if created:
            await alerts_store.delete(conn, alert_id=row["alert_id"])
        return out

    severity, policy_severity = row["severity"], row["policy_severity"] or first.policy_severity
    kinds = list(row["kinds"] or [])
    for o in counted_now:
        severity = max_severity(severity, o.severity)
        if POLICY_SEVERITY_RANK.get(o.policy_severity, 0) > POLICY_SEVERITY_RANK.get(policy_severity, 0):
            policy_severity = o.policy_severity
        kinds += [k for k in o.kinds if k not in kinds]
    kinds = kinds[:MAX_KINDS]
    count = row["count"] + len(counted_now)
    first_seen = min([row["first_seen"], *(o.occurred_at for o in counted_now)])
    last_seen = max([row["last_seen"], *(o.occurred_at for o in counted_now)])
    row = await alerts_store.update_counts(
        conn, alert_id=row["alert_id"], count=count, first_seen=first_seen, last_seen=last_seen, severity=severity,
        policy_severity=policy_severity, kinds=kinds, title=title_of(row["rule_id"], kinds, row["app_id"]),
        summary=summary_of(count=count, detector=row["detector"], policy_severity=policy_severity,
                           first_seen=first_seen, last_seen=last_seen))
    out.append(alert_message(row))
    return out


# --------------------------------------------------------------------------------------------------
# The API's service functions. Every one is scoped to the caller's tenant; another tenant's alert is not found.


@dataclass(frozen=True)
class AlertFilter:
    status: Sequence[str] = ()
    severity: Sequence[str] = ()
    app_id: str | None = None
    rule: str | None = None
    detector: str | None = None
    since: datetime | None = None  # last_seen >= since
    until: datetime | None = None  # last_seen < until


def cursor_scope(tenant_id: str, where: AlertFilter) -> str:
    """What a page cursor is bound to: the tenant and the filter (not the page size)."""
    query = [tenant_id, list(where.status), list(where.severity), where.app_id, where.rule, where.detector,
             where.since.isoformat() if where.since else None, where.until.isoformat() if where.until else None]
    return "alerts:" + hashlib.sha256(orjson.dumps(query)).hexdigest()[:16]


def encode_cursor(row: asyncpg.Record | dict[str, Any], *, scope: str) -> str:
    return cursors.encode([row["last_seen"].isoformat(), str(row["alert_id"])], scope=scope)


def decode_cursor(cursor: str, *, scope: str) -> tuple[datetime, uuid.UUID]:
    """The (last_seen, alert_id) a page ended at; `problems.Invalid` (the `cursor` query parameter) for a cursor
    this API did not hand out, or handed out for another query."""
    try:
        seen, alert_id = cursors.decode(cursor, scope=scope)
        when = datetime.fromisoformat(seen)
        if when.tzinfo is None:
            raise ValueError("naive time")
        return when, uuid.UUID(alert_id)
    except cursors.InvalidCursor as exc:
        raise problems.Invalid("cursor", str(exc), location="query") from exc
    except (ValueError, TypeError) as exc:
        raise problems.Invalid("cursor", "not a cursor this API returned", location="query") from exc


def alert_public(row: asyncpg.Record | dict[str, Any]) -> AlertPublic:
    return AlertPublic(
        alert_id=row["alert_id"], fingerprint=row["fingerprint"], app_id=row["app_id"], rule_id=row["rule_id"],
        detector=row["detector"], severity=row["severity"], policy_severity=row["policy_severity"],
        status=row["status"], title=row["title"], summary=row["summary"], kinds=list(row["kinds"] or []),
        count=row["count"], first_seen=row["first_seen"], last_seen=row["last_seen"],
        acknowledged_at=row["acknowledged_at"], acknowledged_by=row["acknowledged_by"],
        resolved_at=row["resolved_at"], resolved_by=row["resolved_by"], created_at=row["created_at"],
        updated_at=row["updated_at"])


async def list_alerts(db: Executor, *, tenant_id: str, where: AlertFilter, limit: int, cursor: str | None = None
                      ) -> AlertsPublic:
    """Newest first (by last_seen); `next_cursor` is set when there may be more."""
    scope = cursor_scope(tenant_id, where)
    after = decode_cursor(cursor, scope=scope) if cursor else None
    rows = await alerts_store.list_alerts(
        db, tenant_id=tenant_id, statuses=where.status, severities=where.severity, app_id=where.app_id,
        rule_id=where.rule, detector=where.detector, since=where.since, until=where.until, after=after,
        limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return AlertsPublic(alerts=[alert_public(r) for r in rows],
                        next_cursor=encode_cursor(rows[-1], scope=scope) if more and rows else None)


def _alert_uuid(alert_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(alert_id)
    except ValueError as exc:
        raise problems.NotFound("no such alert") from exc


async def get_alert(db: Executor, *, tenant_id: str, alert_id: str) -> AlertPublic:
    row = await alerts_store.get_alert(db, tenant_id=tenant_id, alert_id=_alert_uuid(alert_id))
    if row is None:
        raise problems.NotFound("no such alert")
    return alert_public(row)


async def alert_events(db: Executor, *, tenant_id: str, alert_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The events counted into an alert (`event_id`, `occurred_at`), newest first: what to look up in the trace
    store to see the traces that raised it. Another tenant's alert is not found."""
    await get_alert(db, tenant_id=tenant_id, alert_id=alert_id)
    rows = await alerts_store.alert_events(db, tenant_id=tenant_id, alert_id=_alert_uuid(alert_id), limit=limit)
    return [{"event_id": r["event_id"], "occurred_at": r["occurred_at"]} for r in rows]


async def acknowledge(db: Executor, *, tenant_id: str, alert_id: str, by: str) -> AlertPublic:
    """open -> acknowledged; an acknowledged alert stays as it is; a resolved one is a conflict."""
    key = _alert_uuid(alert_id)
    row = await alerts_store.acknowledge(db, tenant_id=tenant_id, alert_id=key, by=by)
    if row is not None:
        return alert_public(row)
    current = await get_alert(db, tenant_id=tenant_id, alert_id=alert_id)
    if current.status == "resolved":
        raise problems.Conflict("the alert is resolved; a new occurrence opens a new alert")
    return current


async def resolve(pool: asyncpg.Pool, *, tenant_id: str, alert_id: str, by: str,
                  announce: Callable[[AlertMessage], Awaitable[None]]) -> AlertPublic:
    """Resolve, and have `announce` publish the `resolved` message before the change commits.

    If `announce` raises `KafkaUnavailable`, nothing changes and `problems.Unavailable` (503, Retry-After)
    says so. Resolving a resolved alert publishes its `resolved` message again (the notifier sends it once).
    """
    key = _alert_uuid(alert_id)
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await alerts_store.resolve(conn, tenant_id=tenant_id, alert_id=key, by=by)
            if row is None:
                row = await alerts_store.get_alert(conn, tenant_id=tenant_id, alert_id=key)
                if row is None:
                    raise problems.NotFound("no such alert")
            await announce(alert_message(row))
    except KafkaUnavailable as exc:
        log.warning("alert not resolved: Kafka unavailable", extra={"tenant_id": tenant_id})
        raise problems.Unavailable("the alert stream is unavailable; nothing changed, retry",
                                   headers={"Retry-After": "5"}) from exc
    return alert_public(row)


class AlertAnnouncer:
    """Publishes `resolved` alert messages (key = fingerprint). The producer starts on first use, so the API
    starts, and serves everything else, while Kafka is down; `KafkaUnavailable` when it does not answer."""

    def __init__(self, settings: GuardrailsSettings) -> None:
        self.topic = settings.alerts_topic
        self.producer = LazyProducer(settings.kafka_bootstrap, client_id="guardrails-api",
                                     timeout_s=settings.kafka_timeout_s)

    async def announce(self, message: AlertMessage) -> None:
        await self.producer.send_all(self.topic, [(message.fingerprint.encode(), message.to_json())])

    async def check(self) -> None:
        """Readiness: Kafka answers and knows the topic."""
        await (await self.producer.get()).partitions_for(self.topic)

    async def close(self) -> None:
        await self.producer.close()
