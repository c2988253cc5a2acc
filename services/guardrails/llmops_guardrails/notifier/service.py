"""The notifier's stream step: for each alert message, every matching channel of its tenant, once.

Per (alert message, channel): skip it if the delivery log says it was delivered (redelivery after a
crash); suppress a repeat of a still-open alert within the channel's `repeat_interval_s` (a Redis key
with that TTL); otherwise send it with retries and record the outcome in `notification_deliveries`.
Resolutions are never suppressed. When Redis is unreachable the notifier waits for it, holding the
batch (its offsets are not committed): notifications are delayed, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import asyncpg
import httpx
import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError

from llmops_guardrails.notifier.channels import Channel, action_of, outgoing, wants
from llmops_guardrails.notifier.delivery import Result, RetryPolicy, send
from llmops_guardrails.store import channels as channels_store
from llmops_guardrails.store import deliveries as deliveries_store
from llmops_shared.alerts import AlertMessage
from llmops_shared.contract import BadEvent
from llmops_shared.settings import service_config
from llmops_shared.topics import ALERTS
from llmops_shared.worker import BatchHandler, EventRef, Message, Resources, WorkerSettings

log = logging.getLogger(__name__)
R = TypeVar("R")


class NotifierSettings(WorkerSettings):
    """The notifier process's settings: `LLMOPS_NOTIFIER_*` variables."""

    model_config = service_config("notifier")

    group: str = "llmops-notifier"
    """The notifier's consumer group."""
    alerts_topic: str = ALERTS
    """What it delivers (tests and benchmarks use a topic of their own)."""
    timeout_s: float = 10.0
    """The time limit of one delivery attempt."""
    max_attempts: int = 6
    """Delivery attempts per alert and channel."""
    backoff_base_s: float = 0.5
    """The first wait between attempts."""
    backoff_max_s: float = 30.0
    """The longest wait between attempts."""
    redis_retry_max_s: float = 5.0
    """The longest wait between retries while Redis is unavailable."""


class Notifier(BatchHandler[AlertMessage, AlertMessage]):
    """The notifier's handler for `llmops.alerts`: nothing to store first; delivery in `publish`."""

    def __init__(self, settings: NotifierSettings, *, redis: aioredis.Redis, http: httpx.AsyncClient,
                 pool: asyncpg.Pool, stopping: asyncio.Event | None = None) -> None:
        self.name = settings.group
        self.topics: tuple[str, ...] = (settings.alerts_topic,)
        self.settings = settings
        self.redis = redis
        self.http = http
        self.pool = pool
        self.policy = RetryPolicy(settings.max_attempts, settings.backoff_base_s,
                                  settings.backoff_max_s)
        self.stopping = stopping or asyncio.Event()

    def decode(self, message: Message) -> AlertMessage:
        if not message.value:
            raise BadEvent("empty", "alert message has no value")
        try:
            return AlertMessage.model_validate_json(message.value)
        except ValidationError as exc:
            raise BadEvent("schema_violation", str(exc)[:1000]) from exc

    def identify(self, item: AlertMessage) -> EventRef:
        return EventRef(None, item.tenant_id)

    async def write(self, conn: asyncpg.Connection, items: list[tuple[Message, AlertMessage]]) -> list[AlertMessage]:
        return [alert for _, alert in items]  # nothing to store before delivery

    async def publish(self, results: list[AlertMessage], resources: Resources) -> None:
        if results:
            await self.deliver_all(results)

    # -- delivery ----------------------------------------------------------------------------------
    async def deliver_all(self, alerts: Sequence[AlertMessage]) -> None:
        channels = await load_channels(self.pool, {a.tenant_id for a in alerts})
        for alert in alerts:
            targets = [c for c in channels.get(alert.tenant_id, []) if wants(c, alert)]
            await asyncio.gather(*(self.deliver_one(c, alert) for c in targets))

    async def deliver_one(self, channel: Channel, alert: AlertMessage) -> str:
        """Returns the outcome: delivered, suppressed, failed or duplicate."""
        if await deliveries_store.was_delivered(self.pool, message_id=alert.message_id,
                                                channel_id=channel.channel_id):
            return "duplicate"
        repeat_key = None
        if action_of(alert) == "trigger" and channel.repeat_interval_s > 0:
            repeat_key = f"llmops:notify:repeat:{channel.channel_id}:{alert.alert_id}"
            key = repeat_key
            fresh = await self._with_redis(
                lambda: self.redis.set(key, alert.message_id, nx=True, ex=channel.repeat_interval_s))
            if not fresh:
                holder = await self._with_redis(lambda: self.redis.get(key))
                if holder is None or _as_text(holder) != alert.message_id:
                    await self._record(channel, alert, "suppressed", Result(False, 0, None, None))
                    return "suppressed"
        result = await send(self.http, channel.url, outgoing(channel, alert, now=int(time.time())), self.policy)
        if not result.delivered and repeat_key is not None:
            release_key = repeat_key
            await self._with_redis(lambda: self.redis.delete(release_key))  # let the next occurrence try again
        status = "delivered" if result.delivered else "failed"
        await self._record(channel, alert, status, result)
        if not result.delivered:
            log.warning("notification failed", extra={"channel_id": channel.channel_id, "kind": channel.kind,
                                                      "alert_id": alert.alert_id, "error": result.error,
                                                      "attempts": result.attempts})
        return status

    async def _record(self, channel: Channel, alert: AlertMessage, status: str, result: Result) -> None:
        await deliveries_store.record_delivery(
            self.pool, message_id=alert.message_id, alert_id=alert.alert_id, fingerprint=alert.fingerprint,
            channel_id=channel.channel_id, tenant_id=alert.tenant_id, action=action_of(alert), status=status,
            attempts=result.attempts, http_status=result.http_status, error=result.error)

    async def _with_redis(self, call: Callable[[], Awaitable[R]]) -> R:
        """Redis is needed to throttle; while it is down, wait for it (the batch stays uncommitted)."""
        delay = 0.2
        while True:
            try:
                return await call()
            except (RedisError, OSError) as exc:
                if self.stopping.is_set():
                    raise
                log.warning("Redis unavailable; holding notifications until it is back",
                            extra={"error_type": type(exc).__name__, "retry_in_s": round(delay, 2)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.redis_retry_max_s)


def _as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def load_channels(pool: asyncpg.Pool, tenants: Iterable[str]) -> dict[str, list[Channel]]:
    rows = await channels_store.enabled_channels(pool, tenant_ids=tenants)
    out: dict[str, list[Channel]] = {}
    for r in rows:
        out.setdefault(r["tenant_id"], []).append(Channel(**dict(r)))
    return out
