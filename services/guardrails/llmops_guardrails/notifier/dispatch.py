"""Deliveries, channel by channel: a lane per channel (a bounded queue, one delivery at a time, a circuit
breaker), fed by the notifier's batches and by a sweeper that finds what is due in Postgres.

Postgres is the queue (`notification_deliveries`, see `store.deliveries`); a lane's queue only holds ids
it is about to work on, so nothing is lost when it is full (the row stays due, the sweeper offers it
again) or when the process dies (a claim lapses, the row is due again). One slow or dead endpoint holds
up its own lane only: the others' pages keep their latency. A delivery in its lane:

  1. claimed (`sending`, a token and a lease of `claim_lease_s`), with the channel as it is now; a
     delivery someone else claimed, already done, or whose channel is disabled or gone is let go;
  2. breaker open: parked at once, due when the breaker lets a probe through;
  3. a trigger's first go: the repeat throttle (a Redis key per channel and alert, `repeat_interval_s`):
     a repeat of a still-open alert is `suppressed`; while Redis is down the lane waits for it;
  4. attempts in a row (`max_attempts`, backoff with jitter, honouring Retry-After), each under a total
     deadline (`timeout_s`), the claim extended across the waits; delivered -> `delivered`, and queued
     earlier messages of the same alert for the channel become `superseded`;
  5. the attempts ran out, or the answer says that trying again soon is pointless (a 4xx), or the
     breaker opened: `parked`, tried again in the background with growing backoff (`park_backoff_*`)
     until delivered. A parked delivery is never dropped: it shows in the API, and changing its channel
     (a fixed URL, a new key) makes it due at once.

Guarantee: at least once, with an idempotency key. The row is claimed before the send and finished after
it; a crash in between leaves it `sending`, and when its lease lapses it is sent again, carrying the same
key: the `X-LLMOps-Delivery-Id` header (webhooks), PagerDuty's `dedup_key` (the alert's fingerprint).
Slack has no such key: a crash in that window can post a message twice there.

Database calls are retried while Postgres is unavailable (`retry_transient`); any other failure of the
sweeper or a lane stops the notifier (`failure`, raised when it closes), as a failing write stops a worker.
A payload that cannot be rendered parks its delivery, with the error's type, instead; so does a channel
whose sealed values no configured key opens ("channel secrets unavailable"). Every send goes through
`http`, the egress policy's pinned client (`open_notifier`): a URL that leads to an address the policy
refuses is never connected to, whenever and however it got into the table. PagerDuty's events go to the
operator's `pagerduty_url`, whatever a channel row says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import asyncpg
import httpx
import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from llmops_guardrails.channel_secrets import ChannelCipher, SecretsUnavailable, opened
from llmops_guardrails.notifier.breaker import CircuitBreaker
from llmops_guardrails.notifier.channels import Channel, outgoing
from llmops_guardrails.notifier.delivery import Result, RetryPolicy, attempt
from llmops_guardrails.store import deliveries as deliveries_store
from llmops_shared.alerts import AlertMessage
from llmops_shared.worker import retry_transient

log = logging.getLogger(__name__)
V = TypeVar("V")

OUTCOMES = Counter("llmops_notifier_deliveries_total", "Deliveries finished or rescheduled, by outcome", ["outcome"])
BREAKER_OPENED = Counter("llmops_notifier_breaker_opened_total", "Times a channel's circuit breaker opened")
SETTLED = frozenset({"delivered", "suppressed", "parked", "superseded", "cancelled", "failed"})
"""Statuses after which nothing happens to a delivery until its time comes again (parked) or ever."""


@dataclass(frozen=True)
class DispatchSettings:
    timeout_s: float
    policy: RetryPolicy
    claim_lease_s: float
    channel_queue_size: int
    breaker_failures: int
    breaker_cooldown_s: float
    sweep_interval_s: float
    sweep_batch: int
    db_retry_max_s: float
    redis_retry_max_s: float
    pagerduty_url: str


@dataclass(frozen=True)
class Offer:
    delivery_id: int
    channel_id: int
    channel_updated_at: datetime | None = None  # from the sweeper: a change resets the breaker


class Dispatcher:
    def __init__(self, settings: DispatchSettings, *, pool: asyncpg.Pool, redis: aioredis.Redis,
                 http: httpx.AsyncClient, cipher: ChannelCipher, stopping: asyncio.Event,
                 now: Callable[[], float] | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.redis = redis
        self.http = http
        self.cipher = cipher
        self.stopping = stopping
        self.lanes: dict[int, Lane] = {}
        self.held: set[int] = set()  # delivery ids in a lane (queued or being worked on)
        self.failure: BaseException | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._clock = now

    async def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="notifier-sweeper")
            self._sweeper.add_done_callback(self._watch)

    async def close(self) -> None:
        """Stop the sweeper and the lanes (claims not yet used are given back); raise what failed, if any."""
        tasks = [t for t in [self._sweeper, *(lane.task for lane in self.lanes.values())] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._sweeper = None
        self.lanes.clear()
        if self.failure is not None:
            raise self.failure

    def offer(self, offers: Iterable[Offer]) -> None:
        """Hand deliveries to their channels' lanes, without waiting: what a full lane cannot take stays due
        in Postgres for the sweeper."""
        for o in offers:
            if o.delivery_id in self.held:
                continue
            lane = self.lanes.get(o.channel_id)
            if lane is None:
                lane = self.lanes[o.channel_id] = Lane(self, o.channel_id)
            if lane.offer(o):
                self.held.add(o.delivery_id)

    async def sweep(self) -> None:
        """Once: cancel what waits for a deleted channel; offer what is due (parked, lapsed claims, a full
        lane's overflow, a redelivered batch's)."""
        cancelled = await self.db(deliveries_store.cancel_orphans, what="cancel orphaned deliveries")
        if cancelled:
            OUTCOMES.labels("cancelled").inc(cancelled)
            log.warning("deliveries of deleted channels cancelled", extra={"deliveries": cancelled})
        rows = await self.db(partial(deliveries_store.due, limit=self.settings.sweep_batch),
                             what="find due deliveries")
        self.offer(Offer(r["id"], r["channel_id"], r["channel_updated_at"]) for r in rows)

    async def wait_settled(self, delivery_ids: Sequence[int], *, timeout_s: float = 60.0) -> dict[int, str]:
        """Until each delivery is settled (delivered, suppressed, parked, ...): tests, and `deliver_now`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            got = await self.db(partial(deliveries_store.statuses, delivery_ids=delivery_ids),
                                what="delivery statuses")
            if all(s in SETTLED for s in got.values()):
                return got
            if self.failure is not None:
                raise self.failure
            if loop.time() > deadline:
                raise TimeoutError(f"deliveries not settled within {timeout_s} s: {got}")
            await asyncio.sleep(0.02)

    async def db(self, call: Callable[[asyncpg.Pool], Awaitable[V]], *, what: str) -> V:
        """A database call, retried while Postgres is unavailable."""
        return await retry_transient(lambda: call(self.pool), stopping=self.stopping,
                                     max_delay_s=self.settings.db_retry_max_s, what=what, worker="notifier")

    async def with_redis(self, call: Callable[[], Awaitable[V]]) -> V:
        """Redis is needed to throttle; while it is down, wait for it (the delivery stays claimed, delayed)."""
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

    def fail(self, exc: BaseException) -> None:
        """A background step failed for a reason retrying does not cure: stop the notifier, loudly."""
        if self.stopping.is_set():
            return  # shutting down: a database call refused to retry, nothing is wrong
        if self.failure is None:
            self.failure = exc
            log.error("notifier background step failed; stopping", exc_info=exc)
        self.stopping.set()

    def _watch(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.fail(task.exception())  # type: ignore[arg-type]

    async def _sweep_forever(self) -> None:
        while not self.stopping.is_set():
            await self.sweep()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.settings.sweep_interval_s)


class Lane:
    """One channel's deliveries, one at a time, behind its circuit breaker."""

    def __init__(self, dispatcher: Dispatcher, channel_id: int) -> None:
        self.dispatcher = dispatcher
        self.channel_id = channel_id
        s = dispatcher.settings
        clock: dict[str, Any] = {"clock": dispatcher._clock} if dispatcher._clock is not None else {}
        self.breaker = CircuitBreaker(failures=s.breaker_failures, cooldown_s=s.breaker_cooldown_s, **clock)
        self.channel_version: datetime | None = None
        self.queue: asyncio.Queue[Offer] = asyncio.Queue(maxsize=s.channel_queue_size)
        self.task = asyncio.create_task(self._run(), name=f"notifier-lane-{channel_id}")
        self.task.add_done_callback(dispatcher._watch)

    def offer(self, o: Offer) -> bool:
        try:
            self.queue.put_nowait(o)
        except asyncio.QueueFull:
            return False
        return True

    async def _run(self) -> None:
        while True:
            o = await self.queue.get()
            try:
                await self.deliver(o)
            finally:
                self.dispatcher.held.discard(o.delivery_id)

    def _follow(self, version: datetime | None) -> None:
        if version is not None and version != self.channel_version:
            if self.channel_version is not None:
                self.breaker.reset()  # a changed channel (new URL, new key) gets a fresh start
            self.channel_version = version

    async def deliver(self, o: Offer) -> None:
        d = self.dispatcher
        s = d.settings
        self._follow(o.channel_updated_at)
        token = uuid.uuid4()
        row = await d.db(partial(deliveries_store.claim, delivery_id=o.delivery_id, token=token,
                                 lease_s=s.claim_lease_s), what="claim a delivery")
        if row is None:
            return
        self._follow(row["channel_updated_at"])
        if self.breaker.wait_s() > 0:  # the channel is failing: parked, due when the probe may go
            await self._park(row, token, attempts=row["attempts"], delay_s=self.breaker.wait_s())
            return
        sent = False
        try:
            try:
                channel = self._channel(row)
            except (SecretsUnavailable, UnicodeError) as exc:
                log.error("a channel's sealed values open with none of the configured keys; parked", extra={
                    "delivery_id": o.delivery_id, "channel_id": self.channel_id, "error_type": type(exc).__name__})
                await self._park(row, token, attempts=row["attempts"], delay_s=s.policy.park_max_s,
                                 error="channel secrets unavailable")
                return
            try:
                alert = AlertMessage.model_validate_json(row["alert"])
                outgoing(channel, alert, now=_unix_now(), delivery_id=row["id"])
            except Exception as exc:  # a payload we cannot render: parked and shown, not a crash loop
                log.error("cannot render a notification; parked", extra={
                    "delivery_id": o.delivery_id, "channel_id": self.channel_id, "error_type": type(exc).__name__})
                await self._park(row, token, attempts=row["attempts"], delay_s=s.policy.park_max_s,
                                 error=f"cannot render: {type(exc).__name__}")
                return
            if row["attempts"] == 0 and not await self._fresh(channel, alert):
                await d.db(partial(deliveries_store.finish, delivery_id=o.delivery_id, token=token,
                                   status="suppressed", attempts=0, http_status=None, error=None),
                           what="record a suppression")
                OUTCOMES.labels("suppressed").inc()
                return
            sent = True
            await self._attempts(row, token, channel, alert)
        except asyncio.CancelledError:
            if not sent:  # stopping before anything went out: give the claim back
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(deliveries_store.release(d.pool, delivery_id=o.delivery_id, token=token), 2)
            raise

    def _channel(self, row: asyncpg.Record) -> Channel:
        """The claimed row's channel, its values opened. PagerDuty's events go to the operator's Events API
        URL, whatever the row says."""
        url, secret = opened(self.dispatcher.cipher, row)
        if row["kind"] == "pagerduty":
            url = self.dispatcher.settings.pagerduty_url
        return Channel(row["channel_id"], row["tenant_id"], row["name"], row["kind"], url, secret,
                       row["min_severity"], row["repeat_interval_s"])

    async def _fresh(self, channel: Channel, alert: AlertMessage) -> bool:
        """Not a repeat: a resolution, or the first message of the alert within the channel's repeat interval
        (or this very message again, after a crash)."""
        if alert.status == "resolved" or channel.repeat_interval_s <= 0:
            return True
        d = self.dispatcher
        key = f"llmops:notify:repeat:{channel.channel_id}:{alert.alert_id}"
        if await d.with_redis(lambda: d.redis.set(key, alert.message_id, nx=True, ex=channel.repeat_interval_s)):
            return True
        holder = await d.with_redis(lambda: d.redis.get(key))
        return holder is not None and _as_text(holder) == alert.message_id

    async def _attempts(self, row: asyncpg.Record, token: uuid.UUID, channel: Channel, alert: AlertMessage) -> None:
        d = self.dispatcher
        s = d.settings
        attempts = row["attempts"]
        run = 0
        while True:
            if not self.breaker.allow():
                await self._park(row, token, attempts=attempts, delay_s=self.breaker.wait_s())
                return
            # a fresh timestamp and signature per attempt; the delivery's id, the idempotency key, on every one
            message = outgoing(channel, alert, now=_unix_now(), delivery_id=row["id"])
            result = await attempt(d.http, channel.url, message, timeout_s=s.timeout_s)
            attempts += 1
            run += 1
            if self.breaker.record(result.delivered):
                BREAKER_OPENED.inc()
                log.warning("channel failing; circuit breaker open", extra={
                    "channel_id": channel.channel_id, "kind": channel.kind, "cooldown_s": s.breaker_cooldown_s,
                    "error": result.error})
            if result.delivered:
                await self._delivered(row["id"], token, attempts, result)
                return
            more = result.retry_soon and attempts < s.policy.max_attempts and self.breaker.state == "closed"
            if not more:
                await self._park(row, token, attempts=attempts, delay_s=self._after_failures(attempts), result=result)
                return
            wait = s.policy.delay(run, result.retry_after)
            kept = await d.db(partial(deliveries_store.record_attempt, delivery_id=row["id"], token=token,
                                      attempts=attempts, http_status=result.http_status, error=result.error,
                                      hold_s=wait + s.claim_lease_s), what="record an attempt")
            if not kept:
                return  # the claim lapsed and another notifier has it
            await asyncio.sleep(wait)

    async def _delivered(self, delivery_id: int, token: uuid.UUID, attempts: int, result: Result) -> None:
        d = self.dispatcher

        async def record(db: asyncpg.Pool) -> bool:
            async with db.acquire() as conn, conn.transaction():
                done = await deliveries_store.finish(conn, delivery_id=delivery_id, token=token, status="delivered",
                                                     attempts=attempts, http_status=result.http_status, error=None)
                if done:
                    stale = await deliveries_store.supersede_older(conn, delivery_id=delivery_id)
                    if stale:
                        OUTCOMES.labels("superseded").inc(stale)
                return done

        if await d.db(record, what="record a delivery"):
            OUTCOMES.labels("delivered").inc()

    async def _park(self, row: asyncpg.Record, token: uuid.UUID, *, attempts: int, delay_s: float,
                    result: Result | None = None, error: str | None = None) -> None:
        """Park a claimed delivery for `delay_s` seconds; `result`: the failed attempt that parks it."""
        d = self.dispatcher
        if result is not None:
            error = result.error
        if await d.db(partial(deliveries_store.park, delivery_id=row["id"], token=token, attempts=attempts,
                              http_status=result.http_status if result else None, error=error, delay_s=delay_s,
                              attempted=result is not None), what="park a delivery"):
            OUTCOMES.labels("parked" if error is not None else "parked_breaker_open").inc()
            if error is not None:
                log.warning("notification parked; it will be tried again", extra={
                    "delivery_id": row["id"], "channel_id": self.channel_id, "message_id": row["message_id"],
                    "attempts": attempts, "error": error, "retry_in_s": round(delay_s, 1)})

    def _after_failures(self, attempts: int) -> float:
        """How long a delivery whose attempts ran out waits: growing with the failures since it was first
        parked, and not before the channel's breaker lets a probe through."""
        policy = self.dispatcher.settings.policy
        return max(self.breaker.wait_s(), policy.park_delay(attempts - policy.max_attempts + 1))


def _unix_now() -> int:
    return int(time.time())


def _as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
