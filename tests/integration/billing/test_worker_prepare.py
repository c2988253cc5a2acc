"""The billing worker prices a batch in `prepare`, outside its transaction (while the batch before waits on
Postgres), and an event whose pricing fails there is still isolated and dead-lettered by the write."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
import pytest

from llmops_billing import worker as billing_worker
from llmops_billing.settings import BillingSettings
from llmops_billing.store.ledger import stage
from llmops_billing.usage_messages import UsageBatch
from llmops_billing.worker import Priced, UsageLedgerHandler
from llmops_shared.clock import fixed
from llmops_shared.settings import CommonSettings
from llmops_shared.worker import Batch, Message, Resources, StreamWorker
from tests.integration.billing.conftest import WORKER_NOW
from tests.support.billing_rollups import rollups_equal_ledger
from tests.support.events import make_event

pytestmark = pytest.mark.integration


def messages_of(tenant: str, n: int) -> tuple[list[dict[str, Any]], list[Message]]:
    events = [{**make_event(occurred_at="2026-11-24T10:15:00Z", user_id=f"u-{i % 3}", model="gpt-4o-mini",
                            usage={"input_tokens": 100 + i, "output_tokens": 10}), "tenant_id": tenant}
              for i in range(n)]
    return events, [Message("raw", 0, i, None, orjson.dumps(e), 0) for i, e in enumerate(events)]


def handler_and_worker(stack: CommonSettings, pool: asyncpg.Pool, group: str,
                       ) -> tuple[UsageLedgerHandler, StreamWorker[Any, Any], Resources]:
    settings = BillingSettings(**stack.model_dump(), group=group, price_refresh_s=3600)
    handler = UsageLedgerHandler(settings, clock=fixed(WORKER_NOW))
    worker: StreamWorker[Any, Any] = StreamWorker(handler, settings, pool=pool, producer=None,  # type: ignore[arg-type]
                                                  consumer=object())  # type: ignore[arg-type]
    return handler, worker, Resources(pool, None, asyncio.Event())  # type: ignore[arg-type]


async def test_a_batch_is_priced_before_its_transaction_and_written_as_priced(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    handler, worker, resources = handler_and_worker(stack, pg_pool, f"billing-prepare-{tenant}")
    _events, messages = messages_of(tenant, 6)
    items, dead = await handler.prepare(worker.decode(messages).items, resources)
    assert dead == [] and all(isinstance(item, Priced) and item.row is not None for _, item in items)
    priced = {item.row.event_id: item.row for _, item in items if isinstance(item, Priced) and item.row}
    # staged too (COPY record, usage message): the transaction waits on Postgres only
    assert [item.staged for _, item in items if isinstance(item, Priced)] == [
        stage(row, usage_outbox=True) for row in priced.values()]

    results, poison = await worker._write(Batch(items=items))
    [usage] = results  # the batch's usage messages, in one outbox row (billing/0018)
    assert poison == [] and isinstance(usage, UsageBatch) and len(usage.messages) == 6
    stored = await pg_pool.fetch("SELECT event_id, cost_total, priced_at FROM usage_ledger WHERE tenant_id = $1",
                                 tenant)
    assert {(r["event_id"], r["cost_total"], r["priced_at"]) for r in stored} == {
        (row.event_id, row.cost_total, WORKER_NOW) for row in priced.values()}
    await rollups_equal_ledger(pg_pool, tenant)


async def test_an_event_whose_pricing_fails_is_dead_lettered_and_the_others_are_billed(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    handler, worker, resources = handler_and_worker(stack, pg_pool, f"billing-prepare-{tenant}")
    events, messages = messages_of(tenant, 8)
    poisoned = events[5]["event_id"]
    price = billing_worker.ledger_row

    def failing(event: Any, *args: Any, **kwargs: Any) -> Any:
        if str(event.event_id) == poisoned:
            raise ArithmeticError("a price the event cannot be billed at")
        return price(event, *args, **kwargs)

    monkeypatch.setattr(billing_worker, "ledger_row", failing)
    items, dead = await handler.prepare(worker.decode(messages).items, resources)
    assert dead == [] and sum(isinstance(item, Priced) for _, item in items) == 7  # the 8th is priced in `write`
    _results, poison = await worker._write(Batch(items=items))

    assert [(p.message.offset, p.event_id, p.reason) for p in poison] == [(5, poisoned, "processing_error")]
    assert await pg_pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant) == 7
    await rollups_equal_ledger(pg_pool, tenant)


async def test_pricing_a_batch_lets_the_loop_run_between_chunks(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    """`prepare` yields to the event loop every `PRICE_CHUNK` events, so the batch before (its transaction
    waiting on Postgres) is not held up for the whole batch's pricing; what it returns is unchanged."""
    handler, worker, resources = handler_and_worker(stack, pg_pool, f"billing-prepare-{tenant}")
    n = 5 * billing_worker.PRICE_CHUNK
    _events, messages = messages_of(tenant, n)
    decoded = worker.decode(messages).items
    await handler.catalogues.get(pg_pool)  # loaded: pricing is all the prepare below does
    turns: list[int] = []
    progress = {"priced": 0}
    pricing = billing_worker._priced

    def counting(*args: Any) -> Any:
        progress["priced"] += 1
        return pricing(*args)

    async def other_task() -> None:
        while True:
            turns.append(progress["priced"])
            await asyncio.sleep(0)

    billing_worker._priced = counting  # type: ignore[assignment]
    try:
        task = asyncio.create_task(other_task())
        await asyncio.sleep(0)
        items, dead = await handler.prepare(decoded, resources)
        task.cancel()
    finally:
        billing_worker._priced = pricing  # type: ignore[assignment]
    # The other task ran while the batch was part priced, after each chunk.
    assert {t for t in turns if 0 < t < n} >= {k * billing_worker.PRICE_CHUNK for k in range(1, 5)}
    expected = [billing_worker._priced(e, await handler.catalogues.get(pg_pool), WORKER_NOW,
                                       handler.settings.pseudonym_secret()) for _, e in decoded]
    assert dead == [] and [item for _, item in items] == expected
