"""The stream worker every service runs: poll -> decode -> write (one transaction) -> publish -> commit.

A service supplies a `BatchHandler`: a `decode` step (pure; raises `BadEvent` for a message that can
never be processed), a `write` step that applies a whole batch inside one Postgres transaction and
must be idempotent (rows keyed by `event_id`, `ON CONFLICT DO NOTHING`, aggregates only from rows
actually inserted), and an optional `publish` step for what goes downstream after the commit.

The checkpoint order, which is what makes effects exactly-once on at-least-once delivery:
  1. write the batch and its dead-letter rows in one Postgres transaction (retried until it commits);
  2. publish downstream messages and dead letters to Kafka, awaiting their acknowledgements;
  3. commit the consumer offsets, last.
A crash anywhere before 3 redelivers the batch; every effect of 1 and 2 is idempotent, so nothing is
lost and nothing is counted twice. Offsets are never committed for work that did not commit.

Failure handling:
- a bad message (bad JSON, schema violation, unknown schema version) is dead-lettered: a row in
  `dead_letters` (no payload: raw text never reaches Postgres) and the message on `llm.dead-letters`
  with its origin in headers; the worker keeps going;
- a batch whose `write` raises something other than a transient database error is retried one event at
  a time, so one poison event (a scanner crash) is dead-lettered and the rest go through;
- transient database errors are retried with capped exponential backoff, without committing offsets;
- a flood of bad messages (a bad deploy upstream) stops the worker instead of draining the topic into
  the dead-letter queue: `DeadLetterFlood`, exit code 3, offsets of that batch not committed.

Why aiokafka's consumer and not a faust agent: faust acks a message whose agent raised, and `take()`
acks a batch even when the loop body failed (see docs/architecture.md); committing explicitly after
the transaction is the simplest way to make the order above hold.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import Counter, Histogram

from llmops_shared.contract import BadEvent
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import DEAD_LETTERS

log = logging.getLogger(__name__)

T = TypeVar("T")

MESSAGES = Counter("llmops_worker_messages_total", "Messages handled, by worker and outcome", ["worker", "outcome"])
BATCH_SECONDS = Histogram("llmops_worker_batch_seconds", "Time to write and commit one batch", ["worker"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class WorkerSettings(CommonSettings):
    """Settings every stream worker has; services subclass it (env prefix `LLMOPS_`)."""

    batch_max_events: int = 500
    batch_max_wait_ms: int = 200
    # Dead-letter flood guard: stop when this many bad messages come in a row, or when more than
    # `dlq_max_ratio` of the last `dlq_window` messages were bad (once the window is full).
    dlq_max_consecutive: int = 200
    dlq_max_ratio: float = 0.5
    dlq_window: int = 1000
    db_retry_max_s: float = 10.0
    # The longest one batch may take before the group evicts the worker, and how soon the group notices
    # a worker that died and hands its partitions on (heartbeats every third of that).
    consumer_max_poll_interval_s: int = 300
    consumer_session_timeout_ms: int = 10_000
    metrics_port: int | None = None


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int

    @classmethod
    def from_record(cls, record: ConsumerRecord) -> Message:
        return cls(record.topic, record.partition, record.offset, record.key, record.value, record.timestamp)


@dataclass(frozen=True)
class DeadLetter:
    message: Message
    reason: str
    error: str
    event_id: str | None = None
    tenant_id: str | None = None


@dataclass
class Batch(Generic[T]):
    """The decoded items of one poll, in offset order, and the messages that could not be decoded."""

    items: list[tuple[Message, T]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


class BatchHandler(Protocol[T]):
    @property
    def name(self) -> str:
        """The consumer group, and the worker's name in logs, metrics and dead_letters."""
        ...

    @property
    def topics(self) -> Sequence[str]: ...

    def decode(self, message: Message) -> T:
        """Pure. Raise `BadEvent` for a message that can never be processed."""
        ...

    async def write(self, conn: asyncpg.Connection, items: list[tuple[Message, T]]) -> Any:
        """Apply the batch inside the caller's transaction. Must be idempotent. Returns what `publish` needs."""
        ...

    async def publish(self, producer: AIOKafkaProducer, result: Any) -> None:
        """After the commit, before offsets: send downstream messages (awaiting acks). Idempotent downstream."""
        ...


class DeadLetterFlood(RuntimeError):
    """Too many bad messages: the worker stops rather than drain a topic into the dead-letter queue."""


class FloodGuard:
    def __init__(self, *, max_consecutive: int, max_ratio: float, window: int) -> None:
        self.max_consecutive = max_consecutive
        self.max_ratio = max_ratio
        self.recent: collections.deque[bool] = collections.deque(maxlen=window)
        self.consecutive = 0

    def observe(self, bad_flags: Sequence[bool]) -> None:
        for bad in bad_flags:
            self.recent.append(bad)
            self.consecutive = self.consecutive + 1 if bad else 0
            if self.consecutive >= self.max_consecutive:
                raise DeadLetterFlood(f"{self.consecutive} bad messages in a row")
        if len(self.recent) == self.recent.maxlen:
            ratio = sum(self.recent) / len(self.recent)
            if ratio > self.max_ratio:
                raise DeadLetterFlood(f"{ratio:.0%} of the last {len(self.recent)} messages were bad")


_TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.AdminShutdownError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSIENT_DB_ERRORS)


def decode_batch(handler: BatchHandler[T], messages: Sequence[Message]) -> Batch[T]:
    batch: Batch[T] = Batch()
    for message in messages:
        try:
            batch.items.append((message, handler.decode(message)))
        except BadEvent as exc:
            batch.dead.append(DeadLetter(message, exc.reason, exc.detail))
    return batch


async def insert_dead_letters(conn: asyncpg.Connection, consumer: str, dead: Sequence[DeadLetter]) -> None:
    if not dead:
        return
    await conn.executemany(
        """INSERT INTO dead_letters
               (consumer, topic, partition, "offset", message_key, reason, error, event_id, tenant_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::uuid, $9)
           ON CONFLICT (consumer, topic, partition, "offset") DO NOTHING""",
        [(consumer, d.message.topic, d.message.partition, d.message.offset, d.message.key, d.reason,
          d.error[:2000], d.event_id, d.tenant_id) for d in dead],
    )


class StreamWorker(Generic[T]):
    def __init__(self, handler: BatchHandler[T], settings: WorkerSettings, *, pool: asyncpg.Pool,
                 producer: AIOKafkaProducer, consumer: AIOKafkaConsumer | None = None) -> None:
        self.handler = handler
        self.settings = settings
        self.pool = pool
        self.producer = producer
        self.consumer = consumer or AIOKafkaConsumer(
            *handler.topics,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=handler.name,
            client_id=handler.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.batch_max_events,
            max_poll_interval_ms=settings.consumer_max_poll_interval_s * 1000,
            session_timeout_ms=settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=max(1000, settings.consumer_session_timeout_ms // 3),
            isolation_level="read_committed",
        )
        self.guard = FloodGuard(max_consecutive=settings.dlq_max_consecutive, max_ratio=settings.dlq_max_ratio,
                                window=settings.dlq_window)
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        await self.consumer.start()
        log.info("worker started", extra={"worker": self.handler.name, "topics": list(self.handler.topics)})
        try:
            while not self.stopping.is_set():
                records = await self._poll()
                if records:
                    await self.process([Message.from_record(r) for r in records])
        finally:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            log.info("worker stopped", extra={"worker": self.handler.name})

    async def _poll(self) -> list[ConsumerRecord]:
        """Up to `batch_max_events` records, waiting at most `batch_max_wait_ms` once the first arrived."""
        wait_s = self.settings.batch_max_wait_ms / 1000
        records: list[ConsumerRecord] = []
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while len(records) < self.settings.batch_max_events and not self.stopping.is_set():
            timeout_ms = 500 if deadline is None else max(0, int((deadline - loop.time()) * 1000))
            got = await self.consumer.getmany(timeout_ms=timeout_ms,
                                              max_records=self.settings.batch_max_events - len(records))
            for part in got.values():
                records.extend(part)
            if records and deadline is None:
                deadline = loop.time() + wait_s
            if deadline is not None and loop.time() >= deadline:
                break
            if not records and not got:
                break  # idle: let the caller check for stop
        records.sort(key=lambda r: (r.topic, r.partition, r.offset))
        return records

    async def process(self, messages: Sequence[Message]) -> None:
        """One checkpoint: decode, write, publish, commit offsets."""
        started = asyncio.get_running_loop().time()
        await self.complete(messages, self.decode(messages), started=started)

    def decode(self, messages: Sequence[Message]) -> Batch[T]:
        """The decode step, with the flood guard watching its dead letters."""
        batch = decode_batch(self.handler, messages)
        dead_ids = {(d.message.topic, d.message.partition, d.message.offset) for d in batch.dead}
        self.guard.observe([(m.topic, m.partition, m.offset) in dead_ids for m in messages])
        return batch

    async def complete(self, messages: Sequence[Message], batch: Batch[T], *, started: float) -> None:
        """The rest of a checkpoint, in its order: write (one transaction), publish, commit offsets.

        A worker with a step of its own between decode and write (the evaluator's judge calls) runs
        `decode`, its step, then this."""
        name = self.handler.name
        result, poison = await self._write(batch)
        dead = batch.dead + poison
        await self._publish_dead_letters(dead)
        await self.handler.publish(self.producer, result)
        await self._commit(messages)

        MESSAGES.labels(name, "dead_letter").inc(len(dead))
        MESSAGES.labels(name, "processed").inc(len(messages) - len(dead))
        BATCH_SECONDS.labels(name).observe(asyncio.get_running_loop().time() - started)
        for d in dead:
            log.warning("dead-lettered a message", extra={
                "worker": name, "topic": d.message.topic, "partition": d.message.partition,
                "offset": d.message.offset, "reason": d.reason, "error": d.error[:300]})

    async def _write(self, batch: Batch[T]) -> tuple[Any, list[DeadLetter]]:
        try:
            return await self._transaction(batch.items, batch.dead), []
        except Exception as exc:
            if is_transient(exc) or not batch.items:
                raise
            log.warning("batch failed; retrying its events one at a time",
                        extra={"worker": self.handler.name, "error_type": type(exc).__name__})
        # Isolate the poison: each event alone; the ones that still fail are dead-lettered.
        results: list[Any] = []
        poison: list[DeadLetter] = []
        for message, item in batch.items:
            try:
                results.append(await self._transaction([(message, item)], []))
            except Exception as exc:
                if is_transient(exc):
                    raise
                event_id, tenant_id = getattr(item, "event_id", None), getattr(item, "tenant_id", None)
                letter = DeadLetter(message, "processing_error", f"{type(exc).__name__}: {exc}"[:2000],
                                    str(event_id) if event_id else None, tenant_id)
                await self._transaction([], [letter])
                poison.append(letter)
        await self._transaction([], batch.dead)
        return _merge_results(results), poison

    async def _transaction(self, items: list[tuple[Message, T]], dead: list[DeadLetter]) -> Any:
        """One transaction; transient database errors are retried with backoff until it commits."""
        delay = 0.1
        while True:
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    result = await self.handler.write(conn, items) if items else None
                    await insert_dead_letters(conn, self.handler.name, dead)
                    return result
            except Exception as exc:
                if not is_transient(exc) or self.stopping.is_set():
                    raise
                log.warning("database unavailable; retrying the batch",
                            extra={"worker": self.handler.name, "error_type": type(exc).__name__,
                                   "retry_in_s": round(delay, 2)})
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, self.settings.db_retry_max_s)

    async def _publish_dead_letters(self, dead: Sequence[DeadLetter]) -> None:
        if not dead:
            return
        futures = []
        for d in dead:
            headers = [
                ("llmops.consumer", self.handler.name.encode()),
                ("llmops.topic", d.message.topic.encode()),
                ("llmops.partition", str(d.message.partition).encode()),
                ("llmops.offset", str(d.message.offset).encode()),
                ("llmops.reason", d.reason.encode()),
                ("llmops.error", d.error[:500].encode()),
            ]
            futures.append(await self.producer.send(DEAD_LETTERS, d.message.value or b"", key=d.message.key,
                                                    headers=headers))
        await asyncio.gather(*futures)

    async def _commit(self, messages: Sequence[Message]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for m in messages:
            tp = TopicPartition(m.topic, m.partition)
            offsets[tp] = max(offsets.get(tp, 0), m.offset + 1)
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced mid-batch: the new owner gets these messages again. Effects are
            # idempotent, so that costs time, not correctness.
            log.warning("offset commit refused after a rebalance; the batch will be redelivered",
                        extra={"worker": self.handler.name})


def _merge_results(results: list[Any]) -> Any:
    """Results of per-event transactions, as one batch result (lists are concatenated)."""
    if results and all(isinstance(r, list) for r in results):
        return [x for r in results for x in r]
    return results


async def run_worker(handler: BatchHandler[T], settings: WorkerSettings,
                     on_start: Callable[[asyncpg.Pool, AIOKafkaProducer], Awaitable[None]] | None = None) -> int:
    """Run a worker until SIGTERM/SIGINT; the batch in hand is finished and committed first.

    Exit codes: 0 stopped on a signal; 3 stopped by a dead-letter flood.
    """
    from llmops_shared.db import create_pool
    from llmops_shared.kafka import durable_producer

    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr="127.0.0.1")
    pool = await create_pool(settings.database_url, max_size=4)
    producer = durable_producer(settings.kafka_bootstrap, client_id=handler.name)
    await producer.start()
    worker = StreamWorker(handler, settings, pool=pool, producer=producer)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stopping.set)
    try:
        if on_start is not None:
            await on_start(pool, producer)
        await worker.run()
        return 0
    except DeadLetterFlood as exc:
        log.error("stopping: dead-letter flood; fix the producer, then restart", extra={
            "worker": handler.name, "error": str(exc)})
        return 3
    finally:
        with contextlib.suppress(KafkaError, Exception):
            await producer.stop()
        await pool.close()
