"""A four-level agent run (agent -> chain -> retriever -> LLM -> tool) arrives through Kafka, is stored by
the span writer, and reads back from the API as one tree with billing's costs, the guardrail findings
(types and rules, never values) and the judge's scores joined."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import asyncpg
import httpx
import pytest

from llmops_shared.clock import fixed
from llmops_shared.settings import CommonSettings
from llmops_traces.api import create_app
from tests.integration.traces.traces_support import (
    NOW,
    RunningWriter,
    add_finding,
    add_score,
    agent_trace,
    bill,
    span_count,
    traces_settings,
    wait_for,
)
from tests.support.servers import serve

pytestmark = pytest.mark.integration


async def test_an_agent_trace_from_kafka_reads_back_as_a_tree_with_costs_findings_and_scores(
        stack: CommonSettings, span_writer: RunningWriter, pg_pool: asyncpg.Pool, make_key: object,
        tenant: str) -> None:
    key = await make_key(tenant, ["traces:read"])  # type: ignore[operator]
    spans = agent_trace(tenant, at=NOW - timedelta(minutes=30))
    await span_writer.send(*reversed(spans))  # children before parents: the tree does not care

    async def stored() -> bool:
        return await span_count(pg_pool, tenant) == 5

    await wait_for(stored, what="five spans stored")
    await bill(pg_pool, spans)
    llm, tool = spans[3], spans[4]
    await add_finding(pg_pool, llm, entity_type="EMAIL", rule_id="pii-email")
    await add_finding(pg_pool, tool, entity_type="AWS_KEY", rule_id="secrets", finding_no=0)
    await add_score(pg_pool, llm, 0.25)

    with serve(create_app(traces_settings(stack), clock=fixed(NOW))) as url:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
            resp = await client.get(f"/v1/traces/{spans[0]['trace_id']}", params={"fields": "usage,io"})
            assert resp.status_code == 200, resp.text
            listed = await client.get("/v1/traces", params={"from": (NOW - timedelta(hours=1)).isoformat(),
                                                            "to": NOW.isoformat(), "score_below": "0.5"})
    detail = resp.json()
    chain = []
    node = detail["spans"][0]
    while node is not None:
        chain.append(node)
        node = node["children"][0] if node["children"] else None
    assert [n["span_kind"] for n in chain] == ["agent", "chain", "retriever", "llm", "tool"]
    assert [n["parent_span_id"] for n in chain[1:]] == [n["span_id"] for n in chain[:-1]]
    llm_node, tool_node = chain[3], chain[4]
    assert Decimal(llm_node["cost_lines"][0]["cost_total"]) > 0 and llm_node["cost_lines"][0]["input_tokens"] == 1000
    assert [(f["entity_type"], f["rule_id"]) for f in llm_node["findings"]] == [("EMAIL", "pii-email")]
    assert [(f["entity_type"], f["rule_id"]) for f in tool_node["findings"]] == [("AWS_KEY", "secrets")]
    assert [s["score"] for s in llm_node["scores"]] == [0.25]
    assert llm_node["input"] == "step llm asked about parcel 3"
    assert (detail["finding_count"], detail["lowest_score"]) == (2, 0.25)
    assert Decimal(detail["cost_total"]) == Decimal(llm_node["cost_total"])
    (row,) = listed.json()["items"]
    assert (row["trace_id"], row["span_count"], row["lowest_score"]) == (spans[0]["trace_id"], 5, 0.25)
