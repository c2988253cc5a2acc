"""Helpers of the traces service's integration tests: events around a fixed `NOW`, topics, sending, waiting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from llmops_shared.worker import StreamWorker
from llmops_traces.settings import TracesSettings
from tests.support.events import make_event

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
"""The traces worker's and API's "now" in these tests; their events happen around it."""


def span_event(tenant: str, *, at: datetime | None = None, **overrides: Any) -> dict[str, Any]:
    """A clean event of `tenant` at `at` (default: ten minutes before `NOW`)."""
    return {**make_event(occurred_at=(at or NOW - timedelta(minutes=10)).isoformat()), "tenant_id": tenant,
            **overrides}


def traces_settings(stack: CommonSettings, **overrides: Any) -> TracesSettings:
    topic = f"{TOPIC_PREFIX}traces.{uuid.uuid4().hex[:8]}"
    values: dict[str, Any] = {**stack.model_dump(), "topic": topic, "group": f"traces-test-{topic[-8:]}",
                              "batch_max_events": 50, "batch_max_wait_ms": 50, "requests_per_s": None}
    values.update(overrides)
    return TracesSettings(**values)


async def create_topic(settings: TracesSettings, partitions: int = 2) -> None:
    await ensure_topics(settings.kafka_bootstrap, (TopicSpec(settings.topic, partitions=partitions,
                                                             retention_ms=3_600_000),))


async def send(bootstrap: str, topic: str, events: list[dict[str, Any] | bytes]) -> None:
    producer = durable_producer(bootstrap, client_id="traces-test")
    await producer.start()
    try:
        futures = []
        for event in events:
            if isinstance(event, bytes):
                futures.append(await producer.send(topic, event, key=b"k"))
            else:
                futures.append(await producer.send(topic, orjson.dumps(event), key=event["trace_id"].encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout_s:g} s")
        await asyncio.sleep(0.05)


async def span_count(pool: asyncpg.Pool, tenant: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM trace_spans WHERE tenant_id = $1", tenant))


@dataclass
class RunningWriter:
    settings: TracesSettings
    worker: StreamWorker[Any, Any]
    task: asyncio.Task[None]
    producer: AIOKafkaProducer

    async def send(self, *events: dict[str, Any] | bytes) -> None:
        await send(self.settings.kafka_bootstrap, self.settings.topic, list(events))




async def store_directly(pool: asyncpg.Pool, events: list[dict[str, Any]], *, now: datetime = NOW) -> None:
    """Store clean events through the worker's own write step (no Kafka), as one batch."""
    from llmops_shared.worker import Message
    from llmops_traces.worker import SpanWriter

    writer = SpanWriter(TracesSettings(), clock=lambda: now)
    messages = [Message("t", 0, i, None, orjson.dumps(e), 0) for i, e in enumerate(events)]
    items = [(m, writer.decode(m)) for m in messages]
    async with pool.acquire() as conn, conn.transaction():
        await writer.write(conn, items)


async def bill(pool: asyncpg.Pool, events: list[dict[str, Any]], *, now: datetime = NOW) -> None:
    """Billing's ledger rows for `events`, by billing's own code (built-in prices)."""
    from llmops_billing.builtin_prices import builtin_catalogue
    from llmops_billing.ledger import ledger_row
    from llmops_billing.store.ledger import write_batch
    from llmops_shared.contract import Interaction

    rows = [r for e in events if (r := ledger_row(Interaction.model_validate(e), builtin_catalogue(),
                                                  priced_at=now)) is not None]
    async with pool.acquire() as conn, conn.transaction():
        await write_batch(conn, rows=rows, now=now)


async def add_finding(pool: asyncpg.Pool, event: dict[str, Any], *, entity_type: str = "EMAIL",
                      rule_id: str | None = "pii-email", finding_no: int = 0) -> None:
    """A guardrail finding of `event`, as the guardrails worker stores it (a value hash, never the value)."""
    await pool.execute(
        """INSERT INTO guardrail_findings (event_id, finding_no, tenant_id, app_id, occurred_at, message_index, part,
                                           role, detector, entity_type, rule_id, start_offset, end_offset, score,
                                           value_hash)
           VALUES ($1::uuid, $2, $3, $4, $5::timestamptz, 1, 'input', 'user', 'pii', $6, $7, 0, 5, 0.9, 'hash')""",
        event["event_id"], finding_no, event["tenant_id"], event["app_id"],
        datetime.fromisoformat(event["occurred_at"]), entity_type, rule_id)


async def add_score(pool: asyncpg.Pool, event: dict[str, Any], score: float, *, evaluator_id: str = "quality",
                    feedback: float | None = None) -> None:
    """A judge's `ok` result (and a person's feedback) for `event`."""
    tenant = event["tenant_id"]
    await pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", tenant)
    await pool.execute("INSERT INTO evaluators (evaluator_id, tenant_id, config) VALUES ($1, $2, '{}') "
                       "ON CONFLICT DO NOTHING", evaluator_id, tenant)
    await pool.execute(
        """INSERT INTO evaluation_results (event_id, evaluator_id, rubric, rubric_version, tenant_id, app_id,
                                           occurred_at, status, score, raw_score, label, reasoning, judge_model)
           VALUES ($1::uuid, $2, 'relevance', 1, $3, $4, $5, 'ok', $6, 3, 'ok', 'the judge reasoned', 'gpt-4o-mini')""",
        event["event_id"], evaluator_id, tenant, event["app_id"], datetime.fromisoformat(event["occurred_at"]), score)
    if feedback is not None:
        await pool.execute("""INSERT INTO human_feedback (tenant_id, event_id, rubric, score, reviewer)
                              VALUES ($1, $2::uuid, 'relevance', $3, 'key-1')""", tenant, event["event_id"], feedback)


def agent_trace(tenant: str, *, at: datetime, user: str = "u-1", session: str = "s-1",
                app: str = "agent-app") -> list[dict[str, Any]]:
    """A four-level agent run: agent -> chain -> retriever -> llm -> tool (five spans, one trace)."""
    trace = f"tr-{uuid.uuid4().hex[:12]}"
    kinds = ("agent", "chain", "retriever", "llm", "tool")
    spans: list[dict[str, Any]] = []
    parent = None
    for depth, kind in enumerate(kinds):
        span_id = f"{kind}-{uuid.uuid4().hex[:6]}"
        spans.append(span_event(
            tenant, at=at + timedelta(milliseconds=10 * depth), trace_id=trace, span_id=span_id,
            parent_span_id=parent, span_kind=kind, name=f"{kind} step", app_id=app, user_id=user, session_id=session,
            latency_ms=1000.0 - 100 * depth, model="gpt-4o-mini" if kind == "llm" else None,
            provider="openai" if kind == "llm" else None,
            usage={"input_tokens": 1000, "output_tokens": 200} if kind == "llm" else None,
            input=f"step {kind} asked about parcel {depth}", output=f"{kind} answered",
            metadata={"guardrails": {"findings": 1, "by_type": {"EMAIL": 1}}} if kind == "llm" else {}))
        parent = span_id
    return spans
