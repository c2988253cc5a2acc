"""Evaluator tables (deploy/migrations/evaluator) with the real Postgres."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from llmops_evaluator.config import EvaluatorConfig
from llmops_evaluator.evaluations import Evaluation
from llmops_evaluator.evaluator_store import (
    config_json,
    disable_evaluator,
    enabled_evaluator_rows,
    insert_evaluator,
    load_evaluators,
    save_evaluator,
)
from llmops_evaluator.judge_client import JudgeResult, JudgeStatus
from llmops_evaluator.result_store import existing_results, result_row, upsert_results
from llmops_evaluator.rubrics import BUILTIN
from llmops_shared.contract import Interaction
from tests.support.events import make_event

pytestmark = pytest.mark.integration

RUBRIC = BUILTIN["relevance@1"]


def make_config(tenant: str) -> EvaluatorConfig:
    return EvaluatorConfig.model_validate({
        "id": f"ev-{tenant}", "tenant_id": tenant, "rubrics": ["relevance@1"], "sample_rate": 0.1,
        "judge": {"model": "gpt-4o-mini", "base_url": "https://api.openai.com/v1", "credential": "openai"},
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


async def test_two_tenants_may_have_the_same_evaluator_id_and_their_results_stay_apart(pg_pool: Any,
                                                                                        tenant: str) -> None:
    config = make_config(tenant)
    other = config.model_copy(update={"tenant_id": f"{tenant}-b", "daily_spend_cap_usd": Decimal("9")})
    # Two tenants' events may share an id too (ids are the producers'): neither's row stands for the other's.
    event = Interaction.model_validate({**make_event(), "tenant_id": tenant})
    theirs = event.model_copy(update={"tenant_id": other.tenant_id})
    async with pg_pool.acquire() as conn:
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1), ($2, $2)", tenant, other.tenant_id)
        await save_evaluator(conn=conn, config=config)
        await save_evaluator(conn=conn, config=other)  # refused on main: "belongs to another tenant"
        assert await insert_evaluator(conn=conn, config=config) is None  # the tenant's own id: taken
        caps = dict(await conn.fetch("SELECT tenant_id, config->>'daily_spend_cap_usd' FROM evaluators "
                                     "WHERE evaluator_id = $1", config.id))
        assert caps == {tenant: "2.50", other.tenant_id: "9"}
        assert await load_evaluators(conn=conn, tenant_id=other.tenant_id) == [other]

        await upsert_results(conn, [result_row(evaluation(config, event, JudgeStatus.OK)),
                                    result_row(evaluation(other, theirs, JudgeStatus.ERROR))])
        existing = await existing_results(conn, [event.event_id])
    assert {(key[0], row["status"]) for key, row in existing.items()} == {(tenant, "ok"), (other.tenant_id, "error")}
    assert (tenant, event.event_id, config.id, "relevance", 1) in existing


async def test_a_stored_config_naming_a_key_variable_is_moved_to_a_credential_of_that_name(pg_pool: Any,
                                                                                          tenant: str) -> None:
    """Migration evaluator/0005: `judge.api_key_env` becomes `judge.credential` with the same text, which no
    key is sent for until the operator declares a credential of that name for the tenant."""
    sql = (Path(__file__).parents[3] / "deploy/migrations/evaluator/0005_judge_credentials.sql").read_text()
    legacy = make_config(tenant).model_dump(mode="json")
    legacy["judge"] = {**{k: v for k, v in legacy["judge"].items() if k != "credential"},
                       "api_key_env": "LLMOPS_DATABASE_URL"}
    async with pg_pool.acquire() as conn:
        rolled_back = conn.transaction()  # nothing of this test stays for the session's workers to load
        await rolled_back.start()
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
        await conn.execute("INSERT INTO evaluators (evaluator_id, tenant_id, config) VALUES ($1, $2, $3::jsonb)",
                           legacy["id"], tenant, json.dumps(legacy))
        try:
            with pytest.raises(ValidationError, match="api_key_env"):
                await load_evaluators(conn=conn, tenant_id=tenant)  # as stored before: refused
            await conn.execute(sql)
            [moved] = await load_evaluators(conn=conn, tenant_id=tenant)
            assert moved.judge.credential == "LLMOPS_DATABASE_URL"
            assert "api_key_env" not in await conn.fetchval(
                "SELECT config->'judge' FROM evaluators WHERE tenant_id = $1", tenant)
        finally:
            await rolled_back.rollback()


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
