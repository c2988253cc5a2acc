"""The notifier's stream step: each alert message of `llmops.alerts` queued for every matching channel of
its tenant, once; the deliveries themselves run per channel (`dispatch`).

Per batch, in the worker's one transaction (`write`, retried while Postgres is unavailable): the enabled
channels of the batch's tenants, and a `pending` row of `notification_deliveries` per (alert message,
channel) whose `min_severity` it reaches, carrying the message (one per pair: a redelivered batch queues
nothing again). Then (`publish`) the new rows are handed to their channels' lanes, without waiting for
them, and the offsets are committed: from then on Postgres holds the page, and the lanes, the sweeper
and, after a crash, the next notifier deliver it. So one slow or dead endpoint never holds up the stream,
nor another channel; a page is delayed while a channel, Redis or Postgres is down, never dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

import asyncpg
import httpx
import redis.asyncio as aioredis
from pydantic import ValidationError, model_validator

from llmops_guardrails.channel_secrets import reseal
from llmops_guardrails.notifier.channels import PAGERDUTY_EVENTS_URL, action_of, wants
from llmops_guardrails.notifier.delivery import RetryPolicy
from llmops_guardrails.notifier.dispatch import Dispatcher, DispatchSettings, Offer
from llmops_guardrails.settings import CHANNEL_KEYS_ENV, ChannelKeySettings
from llmops_guardrails.store import Executor
from llmops_guardrails.store import channels as channels_store
from llmops_guardrails.store import deliveries as deliveries_store
from llmops_shared.alerts import AlertMessage
from llmops_shared.contract import BadEvent
from llmops_shared.egress import EgressPolicy, Resolver, egress_policy
from llmops_shared.settings import service_config
from llmops_shared.topics import ALERTS
from llmops_shared.worker import BatchHandler, EventRef, Message, Resources, WorkerSettings, retry_transient


class NotifierSettings(WorkerSettings, ChannelKeySettings):
    """The notifier process's settings: `LLMOPS_NOTIFIER_*` variables."""

    model_config = service_config("notifier")

    group: str = "llmops-notifier"
    """The notifier's consumer group."""
    alerts_topic: str = ALERTS
    """What it delivers (tests and benchmarks use a topic of their own)."""
    timeout_s: float = 10.0
    """The deadline of one delivery attempt, all of it: connecting, sending, the answer."""
    max_attempts: int = 6
    """Attempts in a row per delivery before it is parked (then tried again in the background)."""
    backoff_base_s: float = 0.5
    """The first wait between attempts in a row."""
    backoff_max_s: float = 30.0
    """The longest wait between attempts in a row."""
    park_backoff_base_s: float = 30.0
    """How soon a parked delivery is tried again the first time; the wait doubles after each failure."""
    park_backoff_max_s: float = 900.0
    """The longest wait between tries of a parked delivery."""
    claim_lease_s: float = 60.0
    """How long a delivery being sent may go unrecorded before it is sent again (the notifier died between
    sending and recording it), with the same idempotency key. More than `timeout_s`."""
    channel_queue_size: int = 1000
    """Deliveries a channel's lane holds in memory; the rest wait in Postgres for the sweeper."""
    breaker_failures: int = 5
    """Failed attempts in a row that open a channel's circuit breaker (its deliveries are then parked)."""
    breaker_cooldown_s: float = 30.0
    """How long an open breaker waits before one probe attempt may go."""
    sweep_interval_s: float = 1.0
    """How often Postgres is searched for due deliveries: parked ones whose time came, lapsed claims."""
    sweep_batch: int = 500
    """The most due deliveries one sweep hands to the lanes."""
    redis_retry_max_s: float = 5.0
    """The longest wait between retries while Redis is unavailable."""
    pagerduty_url: str = PAGERDUTY_EVENTS_URL
    """Where PagerDuty channels' events go: PagerDuty's Events API v2. A tenant cannot change it; the operator
    may (a PagerDuty-compatible relay, a test's local receiver). It passes the egress policy like every
    destination: a non-public one needs its `LLMOPS_EGRESS_ALLOW` entry."""

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> NotifierSettings:
        if self.claim_lease_s <= self.timeout_s:
            raise ValueError("claim_lease_s must be longer than timeout_s")
        return self

    def dispatch(self) -> DispatchSettings:
        return DispatchSettings(
            timeout_s=self.timeout_s,
            policy=RetryPolicy(self.max_attempts, self.backoff_base_s, self.backoff_max_s, self.park_backoff_base_s,
                               self.park_backoff_max_s),
            claim_lease_s=self.claim_lease_s, channel_queue_size=self.channel_queue_size,
            breaker_failures=self.breaker_failures, breaker_cooldown_s=self.breaker_cooldown_s,
            sweep_interval_s=self.sweep_interval_s, sweep_batch=self.sweep_batch,
            db_retry_max_s=self.db_retry_max_s, redis_retry_max_s=self.redis_retry_max_s,
            pagerduty_url=self.pagerduty_url)


class Notifier(BatchHandler[AlertMessage, Offer]):
    """The notifier's handler for `llmops.alerts`: queue the deliveries in `write`, hand them over in `publish`."""

    def __init__(self, settings: NotifierSettings, *, dispatcher: Dispatcher) -> None:
        self.name = settings.group
        self.topics: tuple[str, ...] = (settings.alerts_topic,)
        self.settings = settings
        self.dispatcher = dispatcher

    def decode(self, message: Message) -> AlertMessage:
        if not message.value:
            raise BadEvent("empty", "alert message has no value")
        try:
            return AlertMessage.model_validate_json(message.value)
        except ValidationError as exc:
            raise BadEvent("schema_violation", str(exc)[:1000]) from exc

    def identify(self, item: AlertMessage) -> EventRef:
        return EventRef(None, item.tenant_id)

    async def write(self, conn: asyncpg.Connection, items: list[tuple[Message, AlertMessage]]) -> list[Offer]:
        return await queue_deliveries(conn, [alert for _, alert in items])

    async def publish(self, results: list[Offer], resources: Resources) -> None:
        self.dispatcher.offer(results)

    async def deliver_now(self, alerts: Sequence[AlertMessage], *, timeout_s: float = 60.0) -> dict[int, str]:
        """Queue `alerts` and wait until their new deliveries are settled (delivered, suppressed, parked...):
        what a batch does, awaited. For tests and tools; the stream does not wait."""
        async def queue() -> list[Offer]:
            async with self.dispatcher.pool.acquire() as conn, conn.transaction():
                return await queue_deliveries(conn, alerts)

        offers = await self.dispatcher.db(lambda _pool: queue(), what="queue deliveries")
        self.dispatcher.offer(offers)
        return await self.dispatcher.wait_settled([o.delivery_id for o in offers], timeout_s=timeout_s)


async def queue_deliveries(conn: Executor, alerts: Sequence[AlertMessage]) -> list[Offer]:
    """A `pending` delivery per alert message and matching enabled channel, unless it exists already."""
    if not alerts:
        return []
    channels = await load_channels(conn, {a.tenant_id for a in alerts})
    new = [deliveries_store.NewDelivery(
        message_id=alert.message_id, alert_id=alert.alert_id, fingerprint=alert.fingerprint,
        channel_id=channel["channel_id"], tenant_id=alert.tenant_id, action=action_of(alert), alert=alert.to_json())
        for alert in alerts for channel in channels.get(alert.tenant_id, [])
        if wants(channel["channel_id"], channel["tenant_id"], channel["min_severity"], alert)]
    rows = await deliveries_store.insert_pending(conn, deliveries=new)
    return [Offer(r["id"], r["channel_id"]) for r in rows]


async def load_channels(db: Executor, tenants: Iterable[str]) -> dict[str, list[asyncpg.Record]]:
    """The enabled channels of `tenants` (channel_id, tenant_id, min_severity), by tenant."""
    out: dict[str, list[asyncpg.Record]] = {}
    for r in await channels_store.enabled_channels(db, tenant_ids=tenants):
        out.setdefault(r["tenant_id"], []).append(r)
    return out


@asynccontextmanager
async def open_notifier(settings: NotifierSettings, resources: Resources, *, redis: aioredis.Redis,
                        resolver: Resolver | None = None) -> AsyncIterator[Notifier]:
    """The notifier's handler with its dispatcher (lanes and sweeper) running; `run_worker`'s factory.

    It sends through the egress policy's pinned client only (`LLMOPS_EGRESS_ALLOW`; `resolver` answers its
    DNS questions, the system's by default), and reads channels with the channel keys, without which it
    does not start. Plain-text and older-key channel rows are sealed under the first key first (`reseal`)."""
    cipher = settings.channel_cipher()
    if cipher is None:
        raise RuntimeError(f"{CHANNEL_KEYS_ENV} is not set: the notifier cannot read channels' URLs and keys "
                           "(docs/security.md, \"Channel secrets\")")
    await retry_transient(lambda: reseal(resources.pool, cipher), stopping=resources.stopping,
                          max_delay_s=settings.db_retry_max_s, what="seal channel secrets", worker="notifier")
    egress: EgressPolicy = egress_policy(settings, resolver=resolver)
    # One connection per channel lane at most (lanes send one at a time); the deadline of each attempt is
    # enforced around the call (`delivery.attempt`), httpx's time-outs are per operation.
    async with egress.async_client(timeout=settings.timeout_s, limits=httpx.Limits(max_connections=None)) as http:
        dispatcher = Dispatcher(settings.dispatch(), pool=resources.pool, redis=redis, http=http, cipher=cipher,
                                stopping=resources.stopping)
        await dispatcher.start()
        try:
            yield Notifier(settings, dispatcher=dispatcher)
        finally:
            await dispatcher.close()

