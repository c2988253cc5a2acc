"""The report's reads of an experiment's calls from billing's ledger go through the index of experiment calls
(billing/0013), not through every ledger row of the range, and read the same costs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from llmops_prompts.store import calls
from tests.integration.traces.traces_support import NOW, bill, span_event

pytestmark = pytest.mark.integration

START, END = NOW - timedelta(hours=6), NOW


def _events(tenant: str) -> list[dict[str, Any]]:
    out = []
    for i in range(60):
        at = START + timedelta(minutes=5 * i)
        prompt = {"name": "answer", "version": "1", "variant": ("a", "b")[i % 2]} if i % 3 == 0 else (
            {"name": "answer", "version": "1"} if i % 3 == 1 else {"name": "other", "version": "2"})
        out.append(span_event(tenant, at=at, model="gpt-4o-mini", trace_id=f"t-{i}", span_id=f"s-{i}",
                              parent_span_id=None, usage={"input_tokens": 100 + i, "output_tokens": 50},
                              prompt=prompt))
    return out


def _scans(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(relation, index) of every scan node of a plan."""
    found = [(plan["Relation Name"], plan.get("Index Name"))] if "Relation Name" in plan else []
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


async def test_the_costs_of_an_experiment_are_read_from_the_index_of_experiment_calls(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    events = _events(tenant)
    await bill(pg_pool, events)
    async with pg_pool.acquire() as conn, conn.transaction():
        await calls.prepare(conn)
        await conn.execute("SET LOCAL enable_seqscan = off")
        got = await calls.costs(conn, tenant_id=tenant, prompt="answer", variants=["a", "b"], start=START, end=END)
        plan = orjson.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {calls._COSTS}", tenant, "answer",
                                                ["a", "b"], START, END))[0]["Plan"]
        children = {r["i"] for r in await conn.fetch(
            "SELECT inhrelid::regclass::text AS i FROM pg_inherits "
            "WHERE inhparent = 'usage_ledger_experiment_calls'::regclass")}
    scans = [(rel, index) for rel, index in _scans(plan) if rel.startswith("usage_ledger")]
    assert scans and all(index in children for _, index in scans), scans
    # the same costs as the ledger rows of the experiment's calls, in event-id order
    rows = await pg_pool.fetch("SELECT prompt_variant, cost_total::float8 AS c FROM usage_ledger WHERE tenant_id = $1 "
                               "AND prompt_name = 'answer' AND prompt_variant <> '' ORDER BY event_id", tenant)
    assert {v: list(c) for v, c in got.items()} == {
        v: [r["c"] for r in rows if r["prompt_variant"] == v] for v in ("a", "b")}
    assert sum(len(c) for c in got.values()) == 20
