"""The evaluator's stream worker: interactions in, judge scores out. `python -m llmops_evaluator.worker`.

A `BatchHandler` for the suite's `StreamWorker` (poll, decode, one transaction per batch, publish, commit
offsets last) with a `prepare` step between decode and write, because judge calls are slow network I/O
and must not hold a database transaction open. The evaluators come from `registry`. Per batch:

  1. decode (pure): a message that is not a valid interaction is dead-lettered, under the flood guard;
  2. judge, outside any transaction: for each event x evaluator that selects it (filters + deterministic
     sample) x rubric, concurrently:
       - the row already stored, when it is `ok` (a redelivered batch is not judged twice);
       - else cache -> spend cap -> judge (retries, repair), at most `max_concurrency` HTTP calls of an
         evaluator in flight;
  3. one Postgres transaction: upsert the result rows (on (tenant, event, evaluator, rubric, version); an `ok`
     row is never replaced), queue review items, and a `dead_letters` row (`judge_error`) for every
     message with a failed judgment (error or unparseable): an explicit error row plus a dead letter,
     never a silent gap;
  4. publish, awaiting acks: dead letters to `llm.dead-letters`, the judge's usage events (deterministic
     ids) to `llm.interactions.raw` for billing, every result to `evaluations.scores`; then cache the new
     `ok` judgments;
  5. commit the offsets, last.

Batches are pipelined two deep (`batches_in_flight`): the next batch is polled and judged while the one
before finishes its slowest judgments, but it writes only after that one has committed its offsets. The
judge step is the shared worker's `prepare`; when a rebalance takes a partition away mid-batch, its
judgments not yet started are skipped and its results dropped (the new owner judges them).

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
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from llmops_evaluator.cache import JudgmentCache
from llmops_evaluator.evaluations import (
    Evaluation,
    judge_dead_letter,
    review_reason,
    score_message,
    stored_evaluation,
    unavailable,
    usage_id_for,
)
from llmops_evaluator.registry import ActiveEvaluator, EvaluatorRegistry
from llmops_evaluator.result_store import existing_results, result_row, upsert_results
from llmops_evaluator.review_store import ReviewEntry, enqueue_for_review
from llmops_evaluator.rubrics import Rubric
from llmops_evaluator.settings import EvaluatorSettings
from llmops_evaluator.spend import SpendLedger
from llmops_shared.config_changes import ConfigWatcher
from llmops_shared.contract import Interaction, decode_interaction
from llmops_shared.worker import (
    BatchHandler,
    DeadLetter,
    EventRef,
    Message,
    Resources,
    StreamWorker,
    retry_transient,
    run_worker,
)

log = logging.getLogger("llmops_evaluator.worker")

JUDGMENTS = Counter("llmops_evaluator_judgments_total", "Judgments by outcome (status, or cached/stored)",
                    ["outcome"])

CACHE_WRITES_LOST = Counter("llmops_evaluator_cache_writes_lost_total",
                            "Judgments not cached because Redis was unreachable after they were published")

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

    @property
    def event_key(self) -> tuple[str, Any]:
        """What identifies the event: an event id is its tenant's own (two tenants' events may share one)."""
        return self.interaction.tenant_id, self.interaction.event_id


class EvaluatorHandler(BatchHandler[EventWork, Evaluation]):
    """The worker's steps: `decode` (pure), `prepare` = `judge` (no transaction), `write` (in it), `publish`."""

    def __init__(self, settings: EvaluatorSettings, registry: EvaluatorRegistry, cache: JudgmentCache | None) -> None:
        self.settings = settings
        self.name = settings.group
        self.topics: Sequence[str] = (settings.topic,)
        self.registry = registry
        self.cache = cache

    def decode(self, message: Message) -> EventWork:
        return EventWork(decode_interaction(message.value))

    def identify(self, item: EventWork) -> EventRef:
        return EventRef(str(item.event_id), item.tenant_id)

    async def prepare(self, items: list[tuple[Message, EventWork]], resources: Resources
                      ) -> tuple[list[tuple[Message, EventWork]], list[DeadLetter]]:
        return await self.judge(resources.pool, items, stopping=resources.stopping, owned=resources.owned)

    async def judge(self, pool: asyncpg.Pool, items: list[tuple[Message, EventWork]], *,
                    stopping: asyncio.Event | None = None, owned: Callable[[Message], bool] = lambda _m: True,
                    ) -> tuple[list[tuple[Message, EventWork]], list[DeadLetter]]:
        """Every judgment the batch asks for, and a dead letter for each message with a failed one.

        A message that stops being `owned` (its partition was revoked) gets no further judge calls. The
        evaluators are re-read first if they changed since the last batch (the registry's watcher)."""
        await self._retrying(lambda: self.registry.refresh(pool), stopping)
        # An event delivered twice in one batch is judged once, for its first copy; an event id is its tenant's
        # own, so another tenant's event with the same id is judged too.
        first_of: dict[tuple[str, Any], int] = {}
        for index, (_, work) in enumerate(items):
            first_of.setdefault(work.event_key, index)
        plan = [(index, active, rubric)
                for index, (_, work) in enumerate(items) if first_of[work.event_key] == index
                for active in self.registry.selecting(work.interaction)
                for rubric in active.rubrics]
        if not plan:
            return items, []
        slots = self.registry.acquire(active for _, active, _ in plan)
        try:
            return await self._judge_plan(pool, items, plan, stopping, owned)
        finally:
            await self.registry.release(slots)

    async def _judge_plan(self, pool: asyncpg.Pool, items: list[tuple[Message, EventWork]],
                          plan: list[tuple[int, ActiveEvaluator, Rubric]], stopping: asyncio.Event | None,
                          owned: Callable[[Message], bool],
                          ) -> tuple[list[tuple[Message, EventWork]], list[DeadLetter]]:
        event_ids = sorted({items[index][1].event_id for index, _, _ in plan})
        existing = await self._retrying(lambda: existing_results(pool, event_ids), stopping)
        usage_id_key = self.settings.usage_id_secret()

        async def one(index: int, active: ActiveEvaluator, rubric: Rubric) -> Evaluation | None:
            message, work = items[index]
            if not owned(message):
                return None  # revoked: the partition's new owner judges it
            interaction = work.interaction
            previous = existing.get((interaction.tenant_id, interaction.event_id, active.config.id, rubric.name,
                                     rubric.version))
            if previous is not None and previous["status"] == "ok":
                evaluation = stored_evaluation(interaction, active.config, rubric, previous)
            elif active.scorer is None or active.slot is None:
                evaluation = unavailable(interaction, active.config, rubric, active.problem or "judge unavailable")
            else:
                usage_id = usage_id_for(interaction.tenant_id, interaction.event_id, active.config.id, rubric, previous,
                                        key=usage_id_key)
                async with active.slot.gate:
                    if not owned(message):
                        return None
                    evaluation = await active.scorer.evaluate_rubric(interaction, rubric, usage_id=usage_id)
            outcome = ("stored" if evaluation.stored else "cached" if evaluation.result.from_cache
                       else evaluation.result.status.value)
            JUDGMENTS.labels(outcome).inc()
            return evaluation

        evaluations = await self._all(plan, one, stopping)
        by_index: dict[int, list[Evaluation]] = defaultdict(list)
        for (index, _, _), evaluation in zip(plan, evaluations, strict=True):
            if evaluation is not None:
                by_index[index].append(evaluation)
        judged = [(message, replace(work, evaluations=tuple(by_index.get(index, ()))))
                  for index, (message, work) in enumerate(items)]
        dead = [letter for message, work in judged
                if (letter := judge_dead_letter(message, work.interaction, work.evaluations)) is not None]
        return judged, dead

    async def _retrying(self, step: Callable[[], Awaitable[T]], stopping: asyncio.Event | None) -> T:
        """A read outside the transaction, retried while the database is unavailable (as the write is)."""
        return await retry_transient(step, stopping=stopping, max_delay_s=self.settings.db_retry_max_s,
                                     what="a read while judging", worker=self.name)

    async def _all(self, plan: list[tuple[int, ActiveEvaluator, Rubric]], one: Any,
                   stopping: asyncio.Event | None) -> list[Evaluation | None]:
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
            active = self.registry.get(e.interaction.tenant_id, e.evaluator_id)
            reason = review_reason(e, active.config) if active is not None else None
            if reason is not None:
                entries.append(ReviewEntry(e.interaction.tenant_id, e.interaction.event_id, e.evaluator_id,
                                           e.rubric.ref, *reason))
        await enqueue_for_review(conn, entries)
        return evaluations

    async def publish(self, results: list[Evaluation], resources: Resources) -> None:
        """After the commit: usage events and scores out (acks awaited), then new judgments cached (best
        effort: Redis gone at this point loses cache entries, never the batch)."""
        if not results:
            return
        producer = resources.producer
        futures = []
        for e in results:
            if e.usage_event is not None:
                futures.append(await producer.send(self.settings.usage_topic, e.usage_event.to_json(),
                                                   key=e.usage_event.trace_id.encode()))
            futures.append(await producer.send(self.settings.scores_topic, score_message(e),
                                               key=str(e.interaction.event_id).encode()))
        await asyncio.gather(*futures)
        if self.cache is None:
            return
        try:
            await self.cache.put_many([(e.interaction.tenant_id, e.cache_key, e.result) for e in results
                                       if e.cache_key is not None and not e.stored])
        except _REDIS_TRANSIENT as exc:
            # Committed and published: a lost cache entry costs one judge call for a later identical
            # interaction, while raising here would crash the worker and redeliver the whole batch.
            CACHE_WRITES_LOST.inc(len(results))
            log.warning("Redis unavailable after publishing; judgments not cached",
                        extra={"worker": self.name, "judgments": len(results), "error": type(exc).__name__})


@asynccontextmanager
async def evaluator_handler(settings: EvaluatorSettings, *, environ: Mapping[str, str] | None = None
                            ) -> AsyncIterator[EvaluatorHandler]:
    """The handler with what it holds open (Redis, the judge clients, the process's `ConfigWatcher`), closed
    on exit. The watcher is started before the evaluators are first read, so no change is missed."""
    watcher = ConfigWatcher(settings.database_url)
    await watcher.start()  # waits a few seconds for Postgres at most; until connected, the periodic refresh
    # A blocking pool: more concurrent judgments than connections wait for one instead of failing.
    redis = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=64, timeout=30, socket_timeout=5, socket_connect_timeout=5))
    cache = JudgmentCache(redis, ttl_s=settings.judgment_cache_ttl_s)
    registry = EvaluatorRegistry(settings, cache=cache, ledger=SpendLedger(redis), environ=environ,
                                 watcher=watcher)
    try:
        yield EvaluatorHandler(settings, registry, cache)
    finally:
        try:
            await registry.close()
            await redis.aclose()
        finally:
            await watcher.close()


@dataclass
class Runtime:
    """A worker running in this process with its own pool and producer (tests and benchmarks)."""

    settings: EvaluatorSettings
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    handler: EvaluatorHandler
    exit_stack: contextlib.AsyncExitStack
    worker: StreamWorker[EventWork, Evaluation] = field(init=False)

    def __post_init__(self) -> None:
        self.worker = StreamWorker(self.handler, self.settings, pool=self.pool, producer=self.producer)

    @property
    def registry(self) -> EvaluatorRegistry:
        return self.handler.registry

    async def close(self) -> None:
        await self.exit_stack.aclose()
        with contextlib.suppress(KafkaError, Exception):
            await self.producer.stop()
        await self.pool.close()


async def open_runtime(settings: EvaluatorSettings, *, environ: Mapping[str, str] | None = None) -> Runtime:
    from llmops_shared.db import create_pool
    from llmops_shared.kafka import durable_producer

    pool = await create_pool(settings.database_url, max_size=4)
    producer = durable_producer(settings.kafka_bootstrap, client_id=settings.group)
    await producer.start()
    stack = contextlib.AsyncExitStack()
    handler = await stack.enter_async_context(evaluator_handler(settings, environ=environ))
    return Runtime(settings, pool, producer, handler, stack)


async def run(settings: EvaluatorSettings) -> int:
    """Run until SIGTERM/SIGINT (the batches in hand are finished first). Exit codes: 0, or 3 on a flood."""

    @asynccontextmanager
    async def handler(resources: Resources) -> AsyncIterator[EvaluatorHandler]:
        async with evaluator_handler(settings) as evaluator:
            await evaluator.registry.refresh(resources.pool, force=True)
            log.info("evaluator worker starting", extra={
                "topic": settings.topic, "group": settings.group,
                "evaluators": len(evaluator.registry), "pid": os.getpid()})
            yield evaluator

    return await run_worker(settings, handler)


def main() -> None:
    from llmops_shared.logging import configure_logging

    settings = EvaluatorSettings()
    configure_logging("evaluator-worker", settings.log_level)
    sys.exit(asyncio.run(run(settings)))


if __name__ == "__main__":
    main()
