"""Evaluator tables (deploy/migrations/evaluator) with the real Postgres."""

from __future__ import annotations

from typing import Any

import pytest

from llmops_evaluator.config import EvaluatorConfig
from llmops_evaluator.evaluations import Evaluation
from llmops_evaluator.evaluator_store import (
    config_json,
    disable_evaluator,
    enabled_evaluator_rows,
    load_evaluators,
    save_evaluator,
)
from llmops_evaluator.judge_client import JudgeResult, JudgeStatus
from llmops_evaluator.result_store import result_row, upsert_results
from llmops_evaluator.rubrics import BUILTIN
from llmops_shared.contract import Interaction
from tests.support.events import make_event

pytestmark = pytest.mark.integration

RUBRIC = BUILTIN["relevance@1"]


def make_config(tenant: str) -> EvaluatorConfig:
    return EvaluatorConfig.model_validate({
        "id": f"ev-{tenant}", "tenant_id": tenant, "rubrics": ["relevance@1"], "sample_rate": 0.1,
        "judge": {"model": "gpt-4o-mini", "base_url": "https://api.openai.com/v1", "api_key_env": "JUDGE_KEY"},
        "daily_spend_cap_usd": "2.50",
    })


OUTCOMES: dict[str, dict[str, Any]] = {
    "ok": {"score": 0.75, "raw_score": 4, "label": "mostly_relevant", "reasoning": "answers it",
           "input_tokens": 200, "output_tokens": 30, "attempts": 1},
    "error": {"error_type": "http_500", "error": "gave up after 4 failed attempts", "attempts": 4},
    "unparseable": {"error_type": "unparseable", "error": "not JSON", "attempts": 2},
    "skipped": {"error_type": "spend_cap", "error": "cap reached"},
}


def evaluation(config: EvaluatorConfig, event: Interaction, status: JudgeStatus, **fields: Any) -> Evaluation:
    result = JudgeResult(status=status, rubric=RUBRIC.ref, judge_model="gpt-4o-mini",
                         **{**OUTCOMES[status.value], **fields})
    return Evaluation(event, config.id, RUBRIC, result)


async def test_results_are_upserted_and_an_ok_row_is_never_replaced(pg_pool: Any, tenant: str) -> None:
    config = make_config(tenant)
    judged = Interaction.model_validate({**make_event(), "tenant_id": tenant})
    failed = Interaction.model_validate({**make_event(), "tenant_id": tenant})
    async with pg_pool.acquire() as conn:
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
        await save_evaluator(conn=conn, config=config)
        assert await load_evaluators(conn=conn, tenant_id=tenant) == [config]

        async with conn.transaction():
            written = await upsert_results(conn, [result_row(evaluation(config, judged, JudgeStatus.OK)),
                                                  result_row(evaluation(config, failed, JudgeStatus.ERROR))])
        assert written == 2

        # A redelivery: the ok row stays as it is, the error row is replaced by the new outcome.
        async with conn.transaction():
            written = await upsert_results(conn, [
                result_row(evaluation(config, judged, JudgeStatus.UNPARSEABLE)),
                result_row(evaluation(config, failed, JudgeStatus.OK, score=0.25, raw_score=2,
                                      label="mostly_irrelevant")),
            ])
        assert written == 1
        rows = await conn.fetch(
            "SELECT event_id, status, score, label, rubric, rubric_version, error_type, attempts"
            " FROM evaluation_results WHERE evaluator_id = $1", config.id)
    by_event = {row["event_id"]: dict(row) for row in rows}
    assert by_event[judged.event_id]["status"] == "ok" and by_event[judged.event_id]["score"] == 0.75
    assert by_event[failed.event_id]["status"] == "ok" and by_event[failed.event_id]["label"] == "mostly_irrelevant"
    assert {(r["rubric"], r["rubric_version"]) for r in rows} == {("relevance", 1)}


async def test_every_outcome_is_a_row(pg_pool: Any, tenant: str) -> None:
    config = make_config(tenant)
    async with pg_pool.acquire() as conn:
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
        await save_evaluator(conn=conn, config=config)
        rows = [result_row(evaluation(config, Interaction.model_validate({**make_event(), "tenant_id": tenant}),
                                      status)) for status in JudgeStatus]
        assert await upsert_results(conn, rows) == 4
        found = await conn.fetch("SELECT status, error_type FROM evaluation_results WHERE evaluator_id = $1"
                                 " ORDER BY status", config.id)
    assert [(r["status"], r["error_type"]) for r in found] == [
        ("error", "http_500"), ("ok", None), ("skipped", "spend_cap"), ("unparseable", "unparseable")]


async def test_an_evaluator_id_belongs_to_one_tenant(pg_pool: Any, tenant: str) -> None:
    config = make_config(tenant)
    other = config.model_copy(update={"tenant_id": f"{tenant}-b"})
    async with pg_pool.acquire() as conn:
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1), ($2, $2)", tenant, other.tenant_id)
        await save_evaluator(conn=conn, config=config)
        with pytest.raises(ValueError, match="belongs to another tenant"):
            await save_evaluator(conn=conn, config=other)
        stored = await conn.fetchval("SELECT config->>'daily_spend_cap_usd' FROM evaluators WHERE evaluator_id = $1",
                                     config.id)
    assert stored == "2.50"


async def test_enabled_evaluators_of_every_tenant_are_read_raw_and_a_disabled_one_is_not(pg_pool: Any,
                                                                                        tenant: str) -> None:
    config = make_config(tenant)
    async with pg_pool.acquire() as conn:
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
        await save_evaluator(conn=conn, config=config)
        rows = {r["evaluator_id"]: r["config"] for r in await enabled_evaluator_rows(conn=conn)}
        assert EvaluatorConfig.model_validate(config_json(rows[config.id])) == config
        assert await disable_evaluator(conn=conn, tenant_id=tenant, evaluator_id=config.id)
        assert not await disable_evaluator(conn=conn, tenant_id=f"{tenant}-other", evaluator_id=config.id)
        assert config.id not in {r["evaluator_id"] for r in await enabled_evaluator_rows(conn=conn)}
        assert await load_evaluators(conn=conn, tenant_id=tenant) == []
