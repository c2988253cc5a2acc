"""The evaluator's stream worker: interactions in, judge scores out. `python -m llmops_evaluator.worker`.

It is the suite's `StreamWorker` (poll, decode, one transaction per batch, publish, commit offsets last)
with one step added between decode and write, because judge calls are slow network I/O and must not
hold a database transaction open. Per batch:

  1. decode (pure): a message that is not a valid interaction is dead-lettered, under the flood guard;
  2. judge, outside any transaction: for each event x evaluator that selects it (filters + deterministic
     sample) x rubric, concurrently:
       - the row already stored, when it is `ok` (a redelivered batch is not judged twice);
       - else cache -> spend cap -> judge (retries, repair), at most `max_concurrency` HTTP calls of an
         evaluator in flight;
  3. one Postgres transaction: upsert the result rows (on (event, evaluator, rubric, version); an `ok`
     row is never replaced), queue review items, and a `dead_letters` row (`judge_error`) for every
     message with a failed judgment (error or unparseable): an explicit error row plus a dead letter,
     never a silent gap;
  4. publish, awaiting acks: dead letters to `llm.dead-letters`, the judge's usage events (deterministic
     ids) to `llm.interactions.raw` for billing, every result to `evaluations.scores`; then cache the new
     `ok` judgments;
  5. commit the offsets, last.

Batches are pipelined two deep: the next batch is polled and judged while the one before finishes its
slowest judgments, but it writes only after that one has committed its offsets (`EvaluatorWorker.run`).

A crash anywhere before 5 redelivers the batch: rows are upserted, stored `ok` rows are re-published
with the same usage event ids (billing keys on them) rather than judged again, and a judgment not yet
stored is judged again under the same usage event id. The judge's own usage events carry the tag
`llmops:judge` and are never judged.

Judge failures do not count towards the dead-letter flood guard: one tenant's broken judge (a revoked key)
must not stop the worker for every tenant; they are rows with status `error`, dead letters, and a metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import asyncpg
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from llmops_evaluator.cache import JudgmentCache
from llmops_evaluator.config import EvaluatorConfig, selects
from llmops_evaluator.evaluations import (
    Evaluation,
    judge_dead_letter,
    review_reason,
    score_message,
    stored_evaluation,
    unavailable,
    usage_id_for,
)
from llmops_evaluator.judge_client import EndpointCapabilities, JudgeClient, JudgeConfigError
from llmops_evaluator.result_store import existing_results, result_row, upsert_results
from llmops_evaluator.review_store import ReviewEntry, enqueue_for_review
from llmops_evaluator.rubrics import Rubric, resolve_rubric
from llmops_evaluator.scorer import Scorer
from llmops_evaluator.settings import EvaluatorSettings
from llmops_evaluator.spend import SpendLedger
from llmops_shared.contract import Interaction, decode_interaction
from llmops_shared.worker import (
    Batch,
    DeadLetter,
    DeadLetterFlood,
    Message,
    StreamWorker,
    is_transient,
)

log = logging.getLogger("llmops_evaluator.worker")

JUDGMENTS = Counter("llmops_evaluator_judgments_total", "Judgments by outcome (status, or cached/stored)",
                    ["outcome"])
EVALUATORS = Gauge("llmops_evaluator_active_evaluators", "Enabled evaluators loaded by the worker")

T = TypeVar("T")
_REDIS_TRANSIENT = (RedisConnectionError, RedisTimeoutError)


@dataclass(frozen=True)
class EventWork:
    """One decoded interaction and, once judged, its evaluations."""

    interaction: Interaction
    evaluations: tuple[Evaluation, ...] = ()

    @property
    def event_id(self) -> Any:
        return self.interaction.event_id

    @property
    def tenant_id(self) -> str:
        return self.interaction.tenant_id


@dataclass(eq=False)
class JudgeSlot:
    """One judge client and the gate of judgments in progress with it.

    Shared by successive versions of an evaluator whose judge and cap did not change, so that a config
    change (a sample rate, a rubric) never opens a second set of connections next to the first: the cap
    holds across it. A slot no longer used by the loaded configs is closed once no batch judges with it.
    """

    client: JudgeClient
    gate: asyncio.Semaphore
    users: int = 0  # batches judging with it now
    retired: bool = False  # no loaded config uses it any more


@dataclass(eq=False)
class ActiveEvaluator:
    config: EvaluatorConfig
    rubrics: list[Rubric]
    scorer: Scorer | None  # None: the judge cannot be set up (`problem` says why)
    problem: str | None
    slot: JudgeSlot | None


SlotKey = tuple[str, str, int]  # evaluator id, judge spec (JSON), cap


class EvaluatorRegistry:
    """The enabled evaluators, each with its judge client and scorer; re-read from Postgres periodically.

    A config that no longer validates is logged and the version loaded before it kept. A judge whose key
    variable is not set yields explicit `judge_unavailable` error results for what that evaluator selects.
    A new version of an evaluator applies from the next batch; a batch already judging finishes with the
    version it started with (`acquire` / `release`). If the new version changes the judge or its cap, the
    old client's last calls may overlap the new one's for the rest of that batch.
    """

    def __init__(self, settings: EvaluatorSettings, *, cache: JudgmentCache | None, ledger: SpendLedger | None,
                 environ: Mapping[str, str] | None = None, clock: Any = time.monotonic) -> None:
        self.settings = settings
        self.cache = cache
        self.ledger = ledger
        self.environ = environ
        self.capabilities = EndpointCapabilities()
        self._clock = clock
        self._by_id: dict[str, ActiveEvaluator] = {}
        self._by_tenant: dict[str, list[ActiveEvaluator]] = {}
        self._slots: dict[SlotKey, JudgeSlot] = {}
        self._loaded_at: float | None = None

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, evaluator_id: str) -> ActiveEvaluator | None:
        return self._by_id.get(evaluator_id)

    def selecting(self, interaction: Interaction) -> list[ActiveEvaluator]:
        return [a for a in self._by_tenant.get(interaction.tenant_id, ()) if selects(a.config, interaction)]

    async def refresh(self, pool: asyncpg.Pool | asyncpg.Connection, *, force: bool = False) -> None:
        now = self._clock()
        if not force and self._loaded_at is not None and now - self._loaded_at < self.settings.evaluators_refresh_s:
            return
        rows = await pool.fetch("SELECT evaluator_id, config FROM evaluators WHERE enabled ORDER BY evaluator_id")
        fresh: dict[str, ActiveEvaluator] = {}
        for row in rows:
            evaluator_id = row["evaluator_id"]
            try:
                raw = row["config"]
                config = EvaluatorConfig.model_validate(orjson.loads(raw) if isinstance(raw, str | bytes) else raw)
            except (ValidationError, ValueError) as exc:
                log.error("an evaluator's config does not validate; keeping the version loaded before, if any",
                          extra={"evaluator_id": evaluator_id, "error": str(exc)[:500]})
                if evaluator_id in self._by_id:
                    fresh[evaluator_id] = self._by_id[evaluator_id]
                continue
            current = self._by_id.get(config.id)
            fresh[config.id] = current if current is not None and current.config == config else self._build(config)
        self._by_id = fresh
        by_tenant: dict[str, list[ActiveEvaluator]] = defaultdict(list)
        for active in fresh.values():
            by_tenant[active.config.tenant_id].append(active)
        self._by_tenant = dict(by_tenant)
        in_use = {_slot_key(a.config) for a in fresh.values() if a.slot is not None}
        for key, slot in list(self._slots.items()):
            if key not in in_use:
                del self._slots[key]
                slot.retired = True
                if slot.users == 0:
                    await slot.client.close()
        self._loaded_at = now
        EVALUATORS.set(len(fresh))

    def _build(self, config: EvaluatorConfig) -> ActiveEvaluator:
        rubrics = [resolve_rubric(ref, config.custom_rubrics) for ref in config.rubrics]
        key = _slot_key(config)
        slot = self._slots.get(key)
        if slot is None:
            try:
                client = JudgeClient.from_spec(config.judge, max_concurrency=config.max_concurrency,
                                               policy=self.settings.retry_policy(), environ=self.environ,
                                               capabilities=self.capabilities)
            except JudgeConfigError as exc:
                log.error("an evaluator's judge cannot be set up; its judgments will be errors",
                          extra={"evaluator_id": config.id, "error": str(exc)})
                return ActiveEvaluator(config, rubrics, None, str(exc), None)
            in_progress = config.max_concurrency * max(1, self.settings.judgments_per_slot)
            slot = JudgeSlot(client, asyncio.Semaphore(in_progress))
            self._slots[key] = slot
        scorer = Scorer(config=config, judge=slot.client, cache=self.cache, ledger=self.ledger)
        log.info("evaluator loaded", extra={"evaluator_id": config.id, "tenant_id": config.tenant_id,
                                            "rubrics": list(config.rubrics), "sample_rate": config.sample_rate})
        return ActiveEvaluator(config, rubrics, scorer, None, slot)

    def acquire(self, actives: Iterable[ActiveEvaluator]) -> list[JudgeSlot]:
        """Mark the judge slots of `actives` in use by a batch (a refresh does not close them meanwhile)."""
        slots = list({id(a.slot): a.slot for a in actives if a.slot is not None}.values())
        for slot in slots:
            slot.users += 1
        return slots

    async def release(self, slots: Iterable[JudgeSlot]) -> None:
        for slot in slots:
            slot.users -= 1
            if slot.retired and slot.users == 0:
                await slot.client.close()

    async def close(self) -> None:
        for slot in self._slots.values():
            await slot.client.close()
        self._slots, self._by_id, self._by_tenant = {}, {}, {}


def _slot_key(config: EvaluatorConfig) -> SlotKey:
    return config.id, config.judge.model_dump_json(), config.max_concurrency


class EvaluatorHandler:
    """The worker's steps: `decode` (pure), `judge` (no transaction), `write` (in it), `publish` (after it)."""

    def __init__(self, settings: EvaluatorSettings, registry: EvaluatorRegistry, cache: JudgmentCache | None) -> None:
        self.settings = settings
        self.name = settings.evaluator_group
        self.topics: Sequence[str] = (settings.evaluator_source_topic,)
        self.registry = registry
        self.cache = cache

    def decode(self, message: Message) -> EventWork:
        return EventWork(decode_interaction(message.value))

    async def judge(self, pool: asyncpg.Pool, items: list[tuple[Message, EventWork]], *,
                    stopping: asyncio.Event | None = None) -> tuple[list[tuple[Message, EventWork]], list[DeadLetter]]:
        """Every judgment the batch asks for, and a dead letter for each message with a failed one."""
        await self._retrying(lambda: self.registry.refresh(pool), stopping)
        first_of: dict[Any, int] = {}  # an event delivered twice in one batch is judged once, for its first copy
        for index, (_, work) in enumerate(items):
            first_of.setdefault(work.event_id, index)
        plan = [(index, active, rubric)
                for index, (_, work) in enumerate(items) if first_of[work.event_id] == index
                for active in self.registry.selecting(work.interaction)
                for rubric in active.rubrics]
        if not plan:
            return items, []
        slots = self.registry.acquire(active for _, active, _ in plan)
        try:
            return await self._judge_plan(pool, items, plan, stopping)
        finally:
            await self.registry.release(slots)

    async def _judge_plan(self, pool: asyncpg.Pool, items: list[tuple[Message, EventWork]],
                          plan: list[tuple[int, ActiveEvaluator, Rubric]], stopping: asyncio.Event | None,
                          ) -> tuple[list[tuple[Message, EventWork]], list[DeadLetter]]:
        event_ids = sorted({items[index][1].event_id for index, _, _ in plan})
        existing = await self._retrying(lambda: existing_results(pool, event_ids), stopping)

        async def one(index: int, active: ActiveEvaluator, rubric: Rubric) -> Evaluation:
            interaction = items[index][1].interaction
            previous = existing.get((interaction.event_id, active.config.id, rubric.name, rubric.version))
            if previous is not None and previous["status"] == "ok":
                evaluation = stored_evaluation(interaction, active.config, rubric, previous)
            elif active.scorer is None or active.slot is None:
                evaluation = unavailable(interaction, active.config, rubric, active.problem or "judge unavailable")
            else:
                usage_id = usage_id_for(interaction.event_id, active.config.id, rubric, previous)
                async with active.slot.gate:
                    evaluation = await active.scorer.evaluate_rubric(interaction, rubric, usage_id=usage_id)
            outcome = ("stored" if evaluation.stored else "cached" if evaluation.result.from_cache
                       else evaluation.result.status.value)
            JUDGMENTS.labels(outcome).inc()
            return evaluation

        evaluations = await self._all(plan, one, stopping)
        by_index: dict[int, list[Evaluation]] = defaultdict(list)
        for (index, _, _), evaluation in zip(plan, evaluations, strict=True):
            by_index[index].append(evaluation)
        judged = [(message, replace(work, evaluations=tuple(by_index.get(index, ()))))
                  for index, (message, work) in enumerate(items)]
        dead = [letter for message, work in judged
                if (letter := judge_dead_letter(message, work.interaction, work.evaluations)) is not None]
        return judged, dead

    async def _retrying(self, step: Callable[[], Awaitable[T]], stopping: asyncio.Event | None) -> T:
        """A read outside the transaction, retried while the database is unavailable (as the write is)."""
        delay = 0.1
        while True:
            try:
                return await step()
            except Exception as exc:
                if not is_transient(exc) or (stopping is not None and stopping.is_set()):
                    raise
                log.warning("database unavailable while judging; retrying",
                            extra={"worker": self.name, "error_type": type(exc).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.db_retry_max_s)

    async def _all(self, plan: list[tuple[int, ActiveEvaluator, Rubric]], one: Any,
                   stopping: asyncio.Event | None) -> list[Evaluation]:
        """Run `one` for the whole plan; while Redis is unreachable, wait and start again (nothing is stored)."""
        delay = 0.2
        while True:
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(one(*step)) for step in plan]
                return [task.result() for task in tasks]
            except BaseExceptionGroup as failed:
                _, others = failed.split(_REDIS_TRANSIENT)
                if others is not None or (stopping is not None and stopping.is_set()):
                    raise
                log.warning("Redis unavailable while judging; retrying the batch",
                            extra={"worker": self.name, "retry_in_s": round(delay, 2)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.db_retry_max_s)

    async def write(self, conn: asyncpg.Connection, items: list[tuple[Message, EventWork]]) -> list[Evaluation]:
        """Inside the batch's transaction: result rows and review items. Returns what `publish` sends."""
        evaluations = [e for _, work in items for e in work.evaluations]
        await upsert_results(conn, [result_row(e) for e in evaluations if not e.stored])
        entries = []
        for e in evaluations:
            active = self.registry.get(e.evaluator_id)
            reason = review_reason(e, active.config) if active is not None else None
            if reason is not None:
                entries.append(ReviewEntry(e.interaction.tenant_id, e.interaction.event_id, e.evaluator_id,
                                           e.rubric.ref, *reason))
        await enqueue_for_review(conn, entries)
        return evaluations

    async def publish(self, producer: AIOKafkaProducer, result: list[Evaluation] | None) -> None:
        """After the commit: usage events and scores out (acks awaited), then new judgments cached."""
        if not result:
            return
        futures = []
        for e in result:
            if e.usage_event is not None:
                futures.append(await producer.send(self.settings.usage_topic, e.usage_event.to_json(),
                                                   key=e.usage_event.trace_id.encode()))
            futures.append(await producer.send(self.settings.scores_topic, score_message(e),
                                               key=str(e.interaction.event_id).encode()))
        await asyncio.gather(*futures)
        if self.cache is not None:
            await self.cache.put_many([(e.interaction.tenant_id, e.cache_key, e.result) for e in result
                                       if e.cache_key is not None and not e.stored])


class EvaluatorWorker(StreamWorker[EventWork]):
    """`StreamWorker` with the judge step between decode and write (see the module docstring)."""

    def __init__(self, handler: EvaluatorHandler, settings: EvaluatorSettings, *, pool: asyncpg.Pool,
                 producer: AIOKafkaProducer, consumer: AIOKafkaConsumer | None = None) -> None:
        super().__init__(handler, settings, pool=pool, producer=producer, consumer=consumer)
        self.evaluator = handler

    async def run(self) -> None:
        """Poll and process batches until stopped, judging the next batch while the last one finishes.

        At most two batches are in flight: batch N+1 is polled and judged while batch N finishes its
        slowest judgments, then writes, publishes and commits; N+1 writes only after N has committed its
        offsets, so offsets are still committed in order and only for work that is stored. This keeps the
        judge's cap busy across batch boundaries instead of idling through each batch's tail.
        """
        await self.consumer.start()
        log.info("worker started", extra={"worker": self.handler.name, "topics": list(self.handler.topics)})
        in_flight: asyncio.Task[None] | None = None
        try:
            while not self.stopping.is_set():
                records = await self._poll()
                if not records:
                    if in_flight is not None:  # idle: let the batch in hand finish, and surface its failure
                        task, in_flight = in_flight, None
                        await task
                    continue
                batch = asyncio.create_task(self._checkpoint([Message.from_record(r) for r in records],
                                                             after=in_flight))
                if in_flight is not None:
                    task, in_flight = in_flight, batch
                    await task
                else:
                    in_flight = batch
            if in_flight is not None:
                task, in_flight = in_flight, None
                await task
        finally:
            if in_flight is not None and not in_flight.done():
                in_flight.cancel()
                with contextlib.suppress(BaseException):
                    await in_flight
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            log.info("worker stopped", extra={"worker": self.handler.name})

    async def process(self, messages: Sequence[Message]) -> None:
        """One checkpoint on its own: decode, judge, write, publish, commit offsets."""
        await self._checkpoint(messages, after=None)

    async def _checkpoint(self, messages: Sequence[Message], *, after: asyncio.Task[None] | None) -> None:
        """Decode, judge; once `after` (the batch before) has committed: write, publish, commit offsets."""
        started = asyncio.get_running_loop().time()
        decoded = self.decode(messages)
        judged, failed = await self.evaluator.judge(self.pool, decoded.items, stopping=self.stopping)
        if after is not None:
            await after  # its failure is this batch's too: nothing of it is written
        await self.complete(messages, Batch(items=judged, dead=decoded.dead + failed), started=started)


@dataclass
class Runtime:
    """What a running worker holds; `open_runtime` builds it, `close` releases it."""

    settings: EvaluatorSettings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    producer: AIOKafkaProducer
    registry: EvaluatorRegistry
    handler: EvaluatorHandler
    worker: EvaluatorWorker = field(init=False)

    def __post_init__(self) -> None:
        self.worker = EvaluatorWorker(self.handler, self.settings, pool=self.pool, producer=self.producer)

    async def close(self) -> None:
        await self.registry.close()
        with contextlib.suppress(KafkaError, Exception):
            await self.producer.stop()
        await self.redis.aclose()
        await self.pool.close()


async def open_runtime(settings: EvaluatorSettings, *, environ: Mapping[str, str] | None = None) -> Runtime:
    from llmops_shared.db import create_pool
    from llmops_shared.kafka import durable_producer

    pool = await create_pool(settings.database_url, max_size=4)
    # A blocking pool: more concurrent judgments than connections wait for one instead of failing.
    redis = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=64, timeout=30, socket_timeout=5, socket_connect_timeout=5))
    cache = JudgmentCache(redis, ttl_s=settings.judgment_cache_ttl_s)
    registry = EvaluatorRegistry(settings, cache=cache, ledger=SpendLedger(redis), environ=environ)
    handler = EvaluatorHandler(settings, registry, cache)
    producer = durable_producer(settings.kafka_bootstrap, client_id=settings.evaluator_group)
    await producer.start()
    return Runtime(settings, pool, redis, producer, registry, handler)


async def run(settings: EvaluatorSettings) -> int:
    """Run until SIGTERM/SIGINT (the batch in hand is finished first). Exit codes: 0, or 3 on a flood."""
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr="127.0.0.1")
    runtime = await open_runtime(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runtime.worker.stopping.set)
    try:
        await runtime.registry.refresh(runtime.pool, force=True)
        log.info("evaluator worker starting", extra={"topic": settings.evaluator_source_topic,
                                                     "group": settings.evaluator_group,
                                                     "evaluators": len(runtime.registry), "pid": os.getpid()})
        await runtime.worker.run()
        return 0
    except DeadLetterFlood as exc:
        log.error("stopping: dead-letter flood; fix the producer, then restart",
                  extra={"worker": settings.evaluator_group, "error": str(exc)})
        return 3
    finally:
        await runtime.close()


def main() -> None:
    from llmops_shared.logging import configure_logging

    settings = EvaluatorSettings()
    configure_logging("evaluator-worker", settings.log_level)
    raise SystemExit(asyncio.run(run(settings)))


if __name__ == "__main__":
    main()
