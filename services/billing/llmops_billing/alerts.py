"""Billing's alerts on the shared alerts topic (`llmops.alerts`), so the same notifier pages on-call.

Two rules:
- `budget.threshold`: a budget's spend crossed one of its thresholds in a period (once per budget,
  period and threshold);
- `billing.unpriced_model`: events of a model the catalogue has no price for (once per tenant, provider
  and model, until it is resolved).

The message (JSON, key = `fingerprint`; the shape of `llmops_shared.alerts.AlertMessage`):

    {"alert_id": "<uuid5, deterministic>", "source": "billing", "tenant_id": "...", "app_id": "..." | null,
     "rule": "budget.threshold" | "billing.unpriced_model", "detector": "billing",
     "severity": "info" | "warning" | "critical", "fingerprint": "...", "status": "open", "count": 1,
     "title": "...", "summary": "...", "occurred_at": "<ISO 8601>", "details": {...}}

Nothing here ever carries prompt or completion text: titles and summaries are built from ids, model
names, amounts and counts.

Delivery: an alert is decided inside the batch's transaction and written to `billing_alert_outbox` in
it; after the commit it is claimed (its row locked, `store.outbox`), sent and marked published once Kafka
has it. A crash in between leaves it pending, and an `OutboxRelay` claims and sends it later. A row one
process holds is skipped by the others, so an alert is sent once, or again only after a crash between the
send and the mark (at least once, always with the same `alert_id`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from llmops_billing.money import money_str, round_money
from llmops_billing.store import outbox

log = logging.getLogger(__name__)

SOURCE = "billing"
DETECTOR = "billing"
RULE_BUDGET = "budget.threshold"
RULE_UNPRICED = "billing.unpriced_model"
ALERT_NAMESPACE = uuid.UUID("6d1b0d4e-3a52-5b8e-9b0e-6a1c2f0e4b11")  # billing's uuid5 namespace
_MAX_FINGERPRINT = 200


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert message, ready to send."""

    alert_id: str
    fingerprint: str
    tenant_id: str
    rule: str
    payload: bytes

    def message(self) -> dict[str, Any]:
        result: dict[str, Any] = orjson.loads(self.payload)
        return result


def fingerprint(*parts: str) -> str:
    """`billing/<parts joined by />`, each part with its `/` escaped (ids may hold one: the parts must stay
    apart), at most 200 characters (a long one ends in a hash instead)."""
    text = "/".join(("billing", *(quote(p, safe=":@") for p in parts)))
    if len(text) <= _MAX_FINGERPRINT:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    return f"{text[: _MAX_FINGERPRINT - 25]}~{digest}"


def alert_id(fingerprint_: str, *occurrence: str) -> str:
    """A deterministic id: the same crossing (or the same unpriced model episode) always gets the same one."""
    return str(uuid.uuid5(ALERT_NAMESPACE, "|".join((fingerprint_, *occurrence))))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _alert(*, fingerprint_: str, occurrence: Sequence[str], tenant_id: str, app_id: str | None, rule: str,
           severity: str, title: str, summary: str, occurred_at: datetime, details: dict[str, Any]) -> Alert:
    ident = alert_id(fingerprint_, *occurrence)
    message = {
        "alert_id": ident,
        "source": SOURCE,
        "tenant_id": tenant_id,
        "app_id": app_id,
        "rule": rule,
        "detector": DETECTOR,
        "severity": severity,
        "fingerprint": fingerprint_,
        "status": "open",
        "count": 1,
        "title": title[:300],
        "summary": summary[:2000],
        "occurred_at": _iso(occurred_at),
        "details": details,
    }
    return Alert(ident, fingerprint_, tenant_id, rule, orjson.dumps(message))


def budget_severity(threshold: int, enforcement: str) -> str:
    """info below 80%, warning from 80%, critical from 100% (a hard budget: critical from 80%)."""
    if threshold >= 100 or (enforcement == "hard" and threshold >= 80):
        return "critical"
    return "warning" if threshold >= 80 else "info"


def budget_alert(*, budget_id: int, tenant_id: str, app_id: str, period: str, period_start: datetime,
                 period_end: datetime, threshold: int, spent: Decimal, amount: Decimal, enforcement: str,
                 name: str, unpriced_events: int, decided_at: datetime) -> Alert:
    """The alert for one budget crossing one threshold in one period."""
    start_text = period_start.astimezone(UTC).strftime("%Y-%m-%d" if period == "day" else "%Y-%m")
    fp = fingerprint("budget", str(budget_id), start_text, str(threshold))
    scope = f"app {app_id}" if app_id else "all apps"
    label = f"budget {name!r}" if name else f"{period}ly budget"
    percent = (spent * 100 / amount) if amount else Decimal(0)
    title = f"{label} ({scope}) reached {threshold}% for {start_text}"
    places = 2 if amount >= 1 else 6  # cents, or enough digits for a tiny (test) budget

    def shown(value: Decimal) -> str:
        return format(round_money(value, places), "f")

    summary = (f"Spend {shown(spent)} USD of {shown(amount)} USD ({money_str(round_money(percent, 1))}%) for tenant "
               f"{tenant_id}, {scope}, {period} {start_text}; {enforcement} budget.")
    if unpriced_events:
        summary += f" {unpriced_events} unpriced event(s) are not in this spend."
    return _alert(
        fingerprint_=fp, occurrence=(_iso(period_start), str(threshold)), tenant_id=tenant_id,
        app_id=app_id or None, rule=RULE_BUDGET, severity=budget_severity(threshold, enforcement), title=title,
        summary=summary, occurred_at=decided_at,
        details={
            "budget_id": budget_id, "budget_name": name, "period": period, "period_start": _iso(period_start),
            "period_end": _iso(period_end), "threshold_percent": threshold, "spent": money_str(spent),
            "amount": money_str(amount), "currency": "USD", "enforcement": enforcement,
            "unpriced_events": unpriced_events,
        },
    )


def unpriced_model_alert(*, tenant_id: str, provider: str, model: str, model_key: str, reason: str,
                         event_count: int, first_seen_at: datetime, alerted_at: datetime) -> Alert:
    """The alert for a model billing has no price for (one per episode: until the model is resolved)."""
    fp = fingerprint("unpriced_model", tenant_id, provider or "-", model or "-")
    what = model or "(no model)"
    title = f"unpriced model {what}" + (f" ({provider})" if provider else "")
    summary = (f"{event_count} event(s) of tenant {tenant_id} for model {what!r}"
               f"{' at ' + provider if provider else ''} have no price ({reason}); their cost is not counted "
               "until a price is added and the period is re-priced (`llmops billing reprice`).")
    return _alert(
        fingerprint_=fp, occurrence=(_iso(alerted_at),), tenant_id=tenant_id, app_id=None, rule=RULE_UNPRICED,
        severity="warning", title=title, summary=summary, occurred_at=alerted_at,
        details={"provider": provider, "model": model, "model_key": model_key, "reason": reason,
                 "events_so_far": event_count, "first_seen_at": _iso(first_seen_at)},
    )


# --------------------------------------------------------------------------------------------------
# Sending, and the outbox relay (the outbox itself: `store.outbox`)


async def send_alerts(producer: AIOKafkaProducer, topic: str, alerts: Sequence[Alert]) -> None:
    """Send and await every acknowledgement (raises when Kafka does not take them)."""
    futures = [await producer.send(topic, a.payload, key=a.fingerprint.encode()) for a in alerts]
    await asyncio.gather(*futures)


class OutboxRelay:
    """Sends alerts left pending in the outbox (a crash after commit, or alerts decided by the API or
    by a re-pricing run, which have no producer of their own), and purges sent ones.

    Each round claims up to `batch` pending alerts at least `min_age_s` old (`store.outbox.claim_pending`:
    locked, rows another process holds skipped), sends them and marks them published in that one
    transaction, so two workers' relays never both send the same alert. Then it deletes alerts published
    more than `keep_sent_s` ago.
    """

    def __init__(self, pool: asyncpg.Pool, producer: AIOKafkaProducer, *, topic: str, interval_s: float,
                 min_age_s: float, keep_sent_s: float = 7 * 86_400, batch: int = 500) -> None:
        self.pool = pool
        self.producer = producer
        self.topic = topic
        self.interval_s = interval_s
        self.min_age_s = min_age_s
        self.keep_sent_s = keep_sent_s
        self.batch = batch

    async def run_once(self, *, min_age_s: float | None = None) -> int:
        """One round: send what is pending (returns how many were sent), then purge old sent alerts."""
        async with self.pool.acquire() as conn, conn.transaction():
            records = await outbox.claim_pending(conn, min_age_s=self.min_age_s if min_age_s is None else min_age_s,
                                                 limit=self.batch)
            alerts = [Alert(r["alert_id"], r["fingerprint"], r["tenant_id"], r["rule"], r["payload"].encode())
                      for r in records]
            if alerts:
                await send_alerts(self.producer, self.topic, alerts)
                await outbox.mark_published(conn, alerts=alerts)
        if alerts:
            log.info("sent pending alerts from the outbox", extra={"alerts": len(alerts)})
        purged = await outbox.purge_sent(self.pool, older_than_s=self.keep_sent_s)
        if purged:
            log.info("purged sent alerts from the outbox", extra={"alerts": purged})
        return len(alerts)

    async def run(self, stopping: asyncio.Event | None = None) -> None:
        await relay_rounds(lambda _first: self.run_once(), interval_s=self.interval_s, what="pending alerts",
                           stopping=stopping)


async def relay_rounds(round_: Callable[[bool], Awaitable[object]], *, interval_s: float, what: str,
                       stopping: asyncio.Event | None = None) -> None:
    """An outbox relay's loop: `round_(first)` every `interval_s` until `stopping` is set. A round that fails
    is logged and the next one retries (the rows stay in the outbox meanwhile)."""
    first = True
    while stopping is None or not stopping.is_set():
        try:
            await round_(first)
            first = False
        except Exception as exc:
            log.warning(f"could not relay {what}; retrying", extra={
                "error_type": type(exc).__name__, "error": str(exc)[:300]})
        if stopping is None:
            await asyncio.sleep(interval_s)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval_s)
