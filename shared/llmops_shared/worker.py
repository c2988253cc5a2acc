"""The stream worker every service runs: poll -> decode -> [prepare] -> write (one transaction) -> publish -> commit.

A service supplies a `BatchHandler[T, R]`: `decode` (pure; raises `BadEvent` for a message that can
never be processed), `identify` (the event id and tenant of a decoded item, for its dead letter), an
optional `prepare` step that runs outside any transaction (slow network I/O such as the evaluator's
judge calls), `write`, which applies the batch inside one Postgres transaction and must be idempotent
(rows keyed by tenant and `event_id`, `ON CONFLICT DO NOTHING`, aggregates only from rows actually
inserted) and returns what goes downstream, and an optional `publish` step for that, after the commit.

The checkpoint order, which is what makes effects exactly-once on at-least-once delivery:
  1. write the batch and its dead-letter rows in one Postgres transaction (retried until it commits);
  2. publish downstream messages and dead letters to Kafka, awaiting their acknowledgements;
  3. commit the consumer offsets, last.
A crash anywhere before 3 redelivers the batch; every effect of 1 and 2 is idempotent, so nothing is
lost and nothing is counted twice. Offsets are never committed for work that did not commit.

Up to `batches_in_flight` batches are in progress at once, as a pipeline of three stages, each taken
by one batch at a time and in poll order: (a) decode and prepare (Python), (b) the transaction (mostly
Postgres), (c) publish and commit offsets (Kafka). The next batch is polled, decoded and prepared while
the one before is in its transaction; it starts its own transaction as soon as that one has committed,
while the one before is still publishing and committing its offsets; it publishes and commits its
offsets only once the one before has committed its offsets. So transactions commit in poll order,
offsets are committed in order and only for stored and published work, and a batch whose predecessor
failed (in any stage) commits no offsets: its transaction may have committed, which costs a redelivery
that the idempotent write turns into nothing (the same as a crash between a commit and its offsets).

Rebalances: when the group takes partitions away, the worker first lets the batches in flight finish
and commit (for at most `rebalance_grace_s`); whatever is still in flight for a revoked partition is
then dropped (not prepared further, not written, its offsets not committed): the partition's new owner
processes it. Offsets are committed only for partitions still assigned, and a commit refused because
the group moved on is logged, not fatal (the effects are idempotent; it costs a redelivery).

Failure handling:
- a bad message (bad JSON, schema violation, unknown schema version) is dead-lettered: a row in
  `dead_letters` (no payload: raw text never reaches Postgres) and the message on `llm.dead-letters`
  with its origin in headers; the worker keeps going;
- a batch whose `write` raises something other than a transient database error is split in halves, and
  those again, down to the events that fail on their own (a scanner crash, a value Postgres refuses),
  which are dead-lettered while the rest go through: about 2 log2(n) transactions for one poison event;
- transient database errors are retried with capped, jittered exponential backoff, without committing;
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
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import Counter, Histogram

from llmops_shared import db, deadletters
from llmops_shared.contract import BadEvent, Interaction, decode_interaction
from llmops_shared.kafka import send_keyed
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import DEAD_LETTERS

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
V = TypeVar("V")

DECODE_CHUNK = 250
"""Messages decoded between two yields to the event loop: a batch decoded in one go would hold the loop
(~20 ms for 2,000 events) while the batch before, in its transaction, has Postgres's answer waiting."""

MESSAGES = Counter("llmops_worker_messages_total", "Messages handled, by worker and outcome", ["worker", "outcome"])
BATCH_SECONDS = Histogram("llmops_worker_batch_seconds", "Time to write and commit one batch", ["worker"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
REVOKED = Counter("llmops_worker_revoked_messages_total",
                  "Messages dropped in flight because their partition was revoked", ["worker"])


class WorkerSettings(CommonSettings):
    """Settings every stream worker has; a service subclasses it with its own prefix (`service_config`)."""

    group: str = "llmops-worker"
    """The consumer group; also the worker's name in logs, metrics and dead letters."""
    batch_max_events: int = 500
    """The most messages one batch (one transaction) takes."""
    batch_max_wait_ms: int = 200
    """How long a batch waits for more messages once the first has come."""
    batches_in_flight: int = 1
    """Batches in progress at once: the next is polled, decoded and prepared while the one before finishes,
    and starts its transaction once that one's has committed."""
    dlq_max_consecutive: int = 200
    """The dead-letter flood guard stops the worker after this many bad messages in a row (exit code 3)..."""
    dlq_max_ratio: float = 0.5
    """... or when more than this share of the last `dlq_window` messages were bad (once the window is full)."""
    dlq_window: int = 1000
    """The flood guard's window, in messages."""
    db_retry_max_s: float = 10.0
    """The longest wait between retries while Postgres is unavailable (backoff is exponential, jittered)."""
    consumer_max_poll_interval_s: int = 300
    """The longest one batch may take before the group evicts the worker."""
    consumer_session_timeout_ms: int = 10_000
    """How soon the group notices a worker that died and hands its partitions on (heartbeats every third)."""
    rebalance_grace_s: float = 10.0
    """How long a rebalance waits for the batches in flight to finish and commit before dropping them."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on 127.0.0.1 at this port; unset: none."""


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

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True)
class DeadLetter:
    message: Message
    reason: str
    error: str
    event_id: str | None = None
    tenant_id: str | None = None


@dataclass(frozen=True)
class EventRef:
    """What a dead letter records of the item it came from."""

    event_id: str | None
    tenant_id: str | None


@dataclass
class Batch(Generic[T]):
    """The decoded items of one poll, in offset order, and the messages that could not be decoded."""

    items: list[tuple[Message, T]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


@dataclass(frozen=True)
class Resources:
    """What a running worker holds and hands to its handler's steps."""

    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    stopping: asyncio.Event
    db_retry_max_s: float = 10.0
    owned: Callable[[Message], bool] = lambda _message: True
    """False once the message's partition was revoked from this worker: skip work for it."""
    caught_up: bool = False
    """The batch reached the end of each of its partitions as the consumer last saw them (`caught_up`):
    nothing more was waiting there when it was polled (a handler may then flush what it defers)."""

    async def retrying(self, step: Callable[[], Awaitable[V]], *, what: str = "a read") -> V:
        """`step`, retried while the database is unavailable (as the write is)."""
        return await retry_transient(step, stopping=self.stopping, max_delay_s=self.db_retry_max_s, what=what)


class BatchHandler(ABC, Generic[T, R]):
    """One service's steps. `name` is the consumer group and the worker's name in logs, metrics and
    dead_letters; `topics` what it consumes."""

    name: str
    topics: Sequence[str]

    @abstractmethod
    def decode(self, message: Message) -> T:
        """Pure. Raise `BadEvent` for a message that can never be processed."""

    @abstractmethod
    def identify(self, item: T) -> EventRef:
        """The event id and tenant of a decoded item (recorded on its dead letter)."""

    async def prepare(self, items: list[tuple[Message, T]], resources: Resources
                      ) -> tuple[list[tuple[Message, T]], list[DeadLetter]]:
        """Outside any transaction, before `write`: slow I/O. Returns the items to write and dead letters.

        Skip items whose message is no longer `resources.owned`."""
        return items, []

    @abstractmethod
    async def write(self, conn: asyncpg.Connection, items: list[tuple[Message, T]]) -> list[R]:
        """Apply the batch inside the caller's transaction. Must be idempotent. Returns what `publish` sends."""

    async def publish(self, results: list[R], resources: Resources) -> None:
        """After the commit, before offsets: send downstream messages (awaiting acks). Idempotent downstream."""


class InteractionHandler(BatchHandler[Interaction, R]):
    """A handler of interaction events (`llm.interactions.raw` or `.clean`): decode and identify done."""

    def decode(self, message: Message) -> Interaction:
        return decode_interaction(message.value)

    def identify(self, item: Interaction) -> EventRef:
        return EventRef(str(item.event_id), item.tenant_id)


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
    *db.UNAVAILABLE,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSIENT_DB_ERRORS)


async def retry_transient(step: Callable[[], Awaitable[V]], *, stopping: asyncio.Event | None, max_delay_s: float,
                          what: str = "the batch", worker: str | None = None) -> V:
    """Run `step`; while it fails with a transient database error, retry with capped, jittered backoff.
    Other errors, and any error once `stopping` is set, are raised."""
    delay = 0.1
    while True:
        try:
            return await step()
        except Exception as exc:
            if not is_transient(exc) or (stopping is not None and stopping.is_set()):
                raise
            log.warning("database unavailable; retrying", extra={
                "worker": worker, "what": what, "error_type": type(exc).__name__, "retry_in_s": round(delay, 2)})
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, max_delay_s)


async def retry_send(resources: Resources, topic: str, messages: Sequence[tuple[bytes | None, bytes]], *,
                     what: str = "messages", max_delay_s: float = 10.0) -> None:
    """Send `messages` (key, value) to `topic` and await every acknowledgement; while Kafka refuses, retry
    the whole set with capped, jittered backoff (a retry may repeat messages: downstream keys on ids).
    Gives up, raising, only once the worker is stopping. When every message has a key they go as record
    batches per partition (`kafka.send_keyed`: the partitions and order `producer.send` gives, less work per
    message)."""
    keyed = [(key, value) for key, value in messages if key is not None]
    delay = 0.1
    while True:
        try:
            if len(keyed) == len(messages):
                futures = await send_keyed(resources.producer, topic, keyed)
            else:
                futures = [await resources.producer.send(topic, value, key=key) for key, value in messages]
            await asyncio.gather(*futures)
            return
        except KafkaError as exc:
            if resources.stopping.is_set():
                raise
            log.warning("could not publish; retrying", extra={
                "what": what, "topic": topic, "error_type": type(exc).__name__, "retry_in_s": round(delay, 2)})
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, max_delay_s)


def decode_batch(handler: BatchHandler[T, Any], messages: Sequence[Message]) -> Batch[T]:
    batch: Batch[T] = Batch()
    for message in messages:
        try:
            batch.items.append((message, handler.decode(message)))
        except BadEvent as exc:
            batch.dead.append(DeadLetter(message, exc.reason, exc.detail))
    return batch


async def decode_batch_yielding(handler: BatchHandler[T, Any], messages: Sequence[Message]) -> Batch[T]:
    """`decode_batch`, `DECODE_CHUNK` messages at a time with the event loop free in between (the batch
    before may be in its transaction, waiting for its turn once Postgres has answered)."""
    batch: Batch[T] = Batch()
    for start in range(0, len(messages), DECODE_CHUNK):
        if start:
            await asyncio.sleep(0)
        part = decode_batch(handler, messages[start:start + DECODE_CHUNK])
        batch.items += part.items
        batch.dead += part.dead
    return batch


class Ownership(ConsumerRebalanceListener):
    """Which partitions this worker owns, and since when: a message polled before its partition was
    revoked is no longer this worker's to process, even if the partition came back since."""

    def __init__(self, worker: StreamWorker[Any, Any]) -> None:
        self.worker = worker
        self.assigned: set[TopicPartition] = set()
        self.epochs: collections.Counter[TopicPartition] = collections.Counter()
        self.revoking = False  # inside a revocation (waiting for the batches in flight)
        self.revocations = 0
        self.version = 0  # bumped whenever `assigned` or `epochs` change

    def snapshot(self, messages: Sequence[Message]) -> dict[TopicPartition, int]:
        return {tp: self.epochs[tp] for tp in map(TopicPartition._make, {(m.topic, m.partition) for m in messages})}

    def still_owned(self, tp: TopicPartition, polled: dict[TopicPartition, int]) -> bool:
        return tp in self.assigned and self.epochs[tp] == polled.get(tp)

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        if revoked:
            self.revoking = True
            try:
                await self.worker.drain(self.worker.settings.rebalance_grace_s)
            finally:
                self.revoking = False
        for tp in revoked:
            self.epochs[tp] += 1
        self.assigned -= set(revoked)
        self.version += 1
        if revoked:
            self.revocations += 1
            log.info("partitions revoked", extra={"worker": self.worker.handler.name,
                                                  "partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in revoked)})

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self.assigned = set(assigned)
        self.version += 1
        log.info("partitions assigned", extra={"worker": self.worker.handler.name,
                                               "partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)})


class Owned:
    """`owned(message)` for one batch: is the message's partition still this worker's since the poll
    (`Ownership.still_owned`)? The answer is kept per partition until the ownership changes (a rebalance):
    a batch asks once per partition, not once per message and step (five times per message before)."""

    def __init__(self, ownership: Ownership, messages: Sequence[Message]) -> None:
        self.ownership = ownership
        self.polled = ownership.snapshot(messages)
        self.version = ownership.version
        self.known: dict[tuple[str, int], bool] = {}

    def __call__(self, message: Message) -> bool:
        if self.version != self.ownership.version:
            self.known.clear()
            self.version = self.ownership.version
        key = (message.topic, message.partition)
        answer = self.known.get(key)
        if answer is None:
            answer = self.known[key] = self.ownership.still_owned(TopicPartition(*key), self.polled)
        return answer


class StreamWorker(Generic[T, R]):
    def __init__(self, handler: BatchHandler[T, R], settings: WorkerSettings, *, pool: asyncpg.Pool,
                 producer: AIOKafkaProducer, consumer: AIOKafkaConsumer | None = None,
                 stopping: asyncio.Event | None = None) -> None:
        self.handler = handler
        self.settings = settings
        self.pool = pool
        self.producer = producer
        self.consumer = consumer or AIOKafkaConsumer(
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
        self.ownership = Ownership(self)
        self.guard = FloodGuard(max_consecutive=settings.dlq_max_consecutive, max_ratio=settings.dlq_max_ratio,
                                window=settings.dlq_window)
        self.stopping = stopping or asyncio.Event()
        self._in_flight: collections.deque[asyncio.Task[None]] = collections.deque()
        self._written: dict[asyncio.Task[None], asyncio.Event] = {}
        """Per batch in flight: set once its transaction has committed (the next may start its own)."""

    async def run(self) -> None:
        """Poll and process batches until stopped, up to `batches_in_flight` of them at once."""
        self.consumer.subscribe(list(self.handler.topics), listener=self.ownership)
        await self.consumer.start()
        log.info("worker started", extra={"worker": self.handler.name, "topics": list(self.handler.topics)})
        pending = self._in_flight
        try:
            while not self.stopping.is_set():
                records = await self._poll()
                caught_up = self._caught_up(records)  # before any other await: as of this poll's fetches
                while pending and pending[0].done():
                    await self._finish_oldest()  # surfaces its failure
                if not records:
                    while pending:  # idle: let the batches in hand finish
                        await self._finish_oldest()
                    continue
                messages = [Message.from_record(r) for r in records]
                after = pending[-1] if pending else None
                written = asyncio.Event()
                task = asyncio.create_task(self._checkpoint(
                    messages, after=after, written_before=self._written.get(after) if after else None,
                    written=written, caught_up=caught_up))
                self._written[task] = written
                pending.append(task)
                while len(pending) >= max(1, self.settings.batches_in_flight):
                    await self._finish_oldest()
            while pending:
                await self._finish_oldest()
        finally:
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(BaseException):
                    await task
            pending.clear()
            self._written.clear()
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            log.info("worker stopped", extra={"worker": self.handler.name})

    async def _finish_oldest(self) -> None:
        """Await the oldest batch in flight; it stays listed (for `drain`) until it is done."""
        await self._in_flight[0]
        self._written.pop(self._in_flight.popleft(), None)

    async def drain(self, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) for the batches in flight to finish; failures surface in `run`."""
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=timeout_s)

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

    def _caught_up(self, records: Sequence[ConsumerRecord]) -> bool:
        """Whether `records` (sorted) end where each of their partitions ended at the consumer's last fetch
        (its last stable offset, read_committed, else its highwater): the batch leaves no backlog behind it in those
        partitions. False when unknown (a partition no longer assigned, no offset fetched yet)."""
        if not records:
            return False
        ends: dict[TopicPartition, int] = {}
        for r in records:
            ends[TopicPartition(r.topic, r.partition)] = r.offset + 1  # sorted: the last one stays
        assigned = self.consumer.assignment()
        for tp, end in ends.items():
            if tp not in assigned:
                return False
            stable = self.consumer.last_stable_offset(tp)
            log_end = stable if stable is not None and stable >= 0 else self.consumer.highwater(tp)
            if log_end is None or end < log_end:
                return False
        return True

    async def process(self, messages: Sequence[Message]) -> None:
        """One checkpoint on its own: decode, prepare, write, publish, commit offsets."""
        await self._checkpoint(messages, after=None)

    def decode(self, messages: Sequence[Message]) -> Batch[T]:
        """The decode step, with the flood guard watching its dead letters."""
        return self._guarded(messages, decode_batch(self.handler, messages))

    async def _decode_yielding(self, messages: Sequence[Message]) -> Batch[T]:
        """`decode`, with the event loop free between chunks (`decode_batch_yielding`)."""
        return self._guarded(messages, await decode_batch_yielding(self.handler, messages))

    def _guarded(self, messages: Sequence[Message], batch: Batch[T]) -> Batch[T]:
        dead_ids = {(d.message.topic, d.message.partition, d.message.offset) for d in batch.dead}
        self.guard.observe([(m.topic, m.partition, m.offset) in dead_ids for m in messages])
        return batch

    async def _checkpoint(self, messages: Sequence[Message], *, after: asyncio.Task[None] | None,
                          written_before: asyncio.Event | None = None, written: asyncio.Event | None = None,
                          caught_up: bool = False) -> None:
        """Decode, prepare; once the batch before (`after`) has committed its transaction
        (`written_before`): write; once it has committed its offsets: publish, commit offsets. `written`
        is set when this batch's transaction has committed; `caught_up` is the handler's
        `Resources.caught_up`."""
        started = asyncio.get_running_loop().time()
        owned = Owned(self.ownership, messages)
        resources = self._resources(owned, caught_up=caught_up)
        batch = await self._decode_yielding(messages)
        items, failed = await self.handler.prepare([(m, item) for m, item in batch.items if owned(m)], resources)
        if after is not None:
            await _written(after, written_before)  # its failure is this batch's too: nothing of it is written
        kept = [m for m in messages if owned(m)]
        if len(kept) < len(messages):
            REVOKED.labels(self.handler.name).inc(len(messages) - len(kept))
            log.info("dropped work of revoked partitions", extra={
                "worker": self.handler.name, "messages": len(messages) - len(kept)})
        batch = Batch(items=[(m, item) for m, item in items if owned(m)],
                      dead=[d for d in batch.dead + failed if owned(d.message)])
        await self._complete(kept, batch, resources, started=started, after=after, written=written)

    def _resources(self, owned: Callable[[Message], bool], *, caught_up: bool = False) -> Resources:
        return Resources(self.pool, self.producer, self.stopping, self.settings.db_retry_max_s, owned, caught_up)

    async def _complete(self, messages: Sequence[Message], batch: Batch[T], resources: Resources, *,
                        started: float, after: asyncio.Task[None] | None = None,
                        written: asyncio.Event | None = None) -> None:
        """The rest of a checkpoint, in its order: write (one transaction); once the batch before (`after`)
        is done, publish and commit offsets."""
        name = self.handler.name
        results, poison = await self._write(batch)
        if written is not None:
            written.set()  # the next batch may start its transaction
        if after is not None:
            await after  # its failure is this batch's too: nothing of it is published, no offset committed
        dead = batch.dead + poison
        await self._publish_dead_letters(dead)
        await self.handler.publish(results, resources)
        await self._commit(messages, resources.owned)

        MESSAGES.labels(name, "dead_letter").inc(len(dead))
        MESSAGES.labels(name, "processed").inc(len(messages) - len(dead))
        BATCH_SECONDS.labels(name).observe(asyncio.get_running_loop().time() - started)
        for d in dead:
            log.warning("dead-lettered a message", extra={
                "worker": name, "topic": d.message.topic, "partition": d.message.partition,
                "offset": d.message.offset, "reason": d.reason, "error": d.error[:300]})

    async def _write(self, batch: Batch[T]) -> tuple[list[R], list[DeadLetter]]:
        if not batch.items and not batch.dead:
            return [], []
        try:
            return await self._transaction(batch.items, batch.dead), []
        except Exception as exc:
            if is_transient(exc) or not batch.items:
                raise
            log.warning("batch failed; isolating the events that fail it",
                        extra={"worker": self.handler.name, "error_type": type(exc).__name__})
            failure = exc
        results: list[R] = []
        poison: list[DeadLetter] = []
        if len(batch.items) == 1:
            await self._dead_letter_poison(batch.items[0], failure, poison)
        else:
            middle = len(batch.items) // 2
            for half in (batch.items[:middle], batch.items[middle:]):
                await self._bisect(half, results, poison)
        await self._transaction([], batch.dead)
        return results, poison

    async def _bisect(self, items: list[tuple[Message, T]], results: list[R], poison: list[DeadLetter]) -> None:
        """Write `items` in one transaction; if that fails, each half on its own, down to single events,
        which are dead-lettered. One poison event among n costs about 2 log2(n) transactions, not n."""
        try:
            results.extend(await self._transaction(items, []))
            return
        except Exception as exc:
            if is_transient(exc):
                raise
            failure = exc
        if len(items) == 1:
            await self._dead_letter_poison(items[0], failure, poison)
            return
        middle = len(items) // 2
        await self._bisect(items[:middle], results, poison)
        await self._bisect(items[middle:], results, poison)

    async def _dead_letter_poison(self, entry: tuple[Message, T], failure: Exception,
                                  poison: list[DeadLetter]) -> None:
        message, item = entry
        ref = self.handler.identify(item)
        letter = DeadLetter(message, "processing_error", f"{type(failure).__name__}: {failure}"[:2000],
                            ref.event_id, ref.tenant_id)
        await self._transaction([], [letter])
        poison.append(letter)

    async def _transaction(self, items: list[tuple[Message, T]], dead: list[DeadLetter]) -> list[R]:
        """One transaction; transient database errors are retried with backoff until it commits."""

        async def attempt() -> list[R]:
            async with self.pool.acquire() as conn, conn.transaction():
                result = await self.handler.write(conn, items) if items else []
                await deadletters.record(conn, consumer=self.handler.name, rows=[
                    deadletters.Row(d.message.topic, d.message.partition, d.message.offset, d.message.key, d.reason,
                                    d.error[:2000], d.event_id, d.tenant_id) for d in dead])
                return result

        return await retry_transient(attempt, stopping=self.stopping, max_delay_s=self.settings.db_retry_max_s,
                                     worker=self.handler.name)

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

    async def _commit(self, messages: Sequence[Message], owned: Callable[[Message], bool]) -> None:
        """Commit the batch's offsets of the partitions this worker still owns."""
        ends: dict[tuple[str, int], int] = {}
        for m in messages:
            if owned(m):
                key = (m.topic, m.partition)
                ends[key] = max(ends.get(key, 0), m.offset + 1)
        if not ends:
            return
        offsets = {TopicPartition(*key): end for key, end in ends.items()}
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced mid-batch: the new owner gets these messages again. Effects are
            # idempotent, so that costs time, not correctness.
            log.warning("offset commit refused after a rebalance; the batch will be redelivered",
                        extra={"worker": self.handler.name, "error_type": type(exc).__name__})


async def _written(before: asyncio.Task[None], written: asyncio.Event | None) -> None:
    """Return once the batch `before` has committed its transaction (or finished); raise its failure."""
    if written is None:
        await before
        return
    if written.is_set():
        return
    waiter = asyncio.ensure_future(written.wait())
    try:
        await asyncio.wait((waiter, before), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not written.is_set():
        await before  # it ended before its transaction committed: it failed (raised here), or wrote nothing


HandlerFactory = Callable[[Resources], AbstractAsyncContextManager[BatchHandler[Any, Any]]]
"""Builds a service's handler from the worker's resources, and releases what it opened on exit."""


async def run_worker(settings: WorkerSettings, factory: HandlerFactory) -> int:
    """Run a worker until SIGTERM/SIGINT; the batches in hand are finished and committed first.

    A worker started while Postgres is unreachable waits for it (retrying, logged) rather than exit: a
    supervisor restarting a worker through an outage would otherwise see a crash loop and give up on it.
    Exit codes: 0 stopped on a signal; 3 stopped by a dead-letter flood.
    """
    from llmops_shared.db import create_pool
    from llmops_shared.kafka import durable_producer

    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr="127.0.0.1")
    pool = await retry_transient(lambda: create_pool(settings.database_url, max_size=4), stopping=None,
                                 max_delay_s=settings.db_retry_max_s, what="connect to Postgres", worker=settings.group)
    producer = durable_producer(settings.kafka_bootstrap, client_id=settings.group)
    await producer.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        async with factory(Resources(pool, producer, stopping, settings.db_retry_max_s)) as handler:
            worker = StreamWorker(handler, settings, pool=pool, producer=producer, stopping=stopping)
            await worker.run()
        return 0
    except DeadLetterFlood as exc:
        log.error("stopping: dead-letter flood; fix the producer, then restart", extra={
            "worker": settings.group, "error": str(exc)})
        return 3
    finally:
        with contextlib.suppress(KafkaError, Exception):
            await producer.stop()
        await pool.close()


@contextlib.asynccontextmanager
async def just(handler: BatchHandler[T, R]) -> AsyncIterator[BatchHandler[T, R]]:
    """A factory result for a handler that opens nothing of its own: `run_worker(s, lambda _: just(h))`."""
    yield handler
