"""Golden-dataset runs in Postgres (`eval_runs`, `eval_run_items`): start, finish, load as a baseline. All their SQL.

A run is recorded `running` when it starts, so a run that dies is visible; `finish_run` writes its items,
the per-rubric summary and the verdict (`passed` / `failed`) in one transaction. Only the tenant's own
runs can be loaded. Item texts are not stored (the dataset file has them), only ids, scores and reasoning.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence

import asyncpg

from llmops_evaluator.golden import GoldenRunConfig, ItemResult, RubricSummary, RunResult, item_passed
from llmops_evaluator.judge_client import JudgeStatus
from llmops_evaluator.rubrics import parse_rubric_ref


async def ensure_tenant(*, conn: asyncpg.Connection, tenant_id: str) -> None:
    """Create the tenant if it does not exist yet (a run may be the tenant's first row)."""
    await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1) ON CONFLICT (tenant_id) DO NOTHING",
                       tenant_id)


async def start_run(*, conn: asyncpg.Connection, run_id: uuid.UUID, tenant_id: str, config: GoldenRunConfig,
                    dataset_sha256: str, baseline_run_id: uuid.UUID | None) -> None:
    await conn.execute(
        """INSERT INTO eval_runs (run_id, tenant_id, dataset, dataset_sha256, target_model, judge_model, rubrics,
                                  baseline_run_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        run_id, tenant_id, config.dataset, dataset_sha256, config.target.model, config.judge.model,
        list(config.rubrics), baseline_run_id)


async def finish_run(*, conn: asyncpg.Connection, run: RunResult, config: GoldenRunConfig,
                     summaries: Sequence[RubricSummary]) -> str:
    """Store the items and the verdict; returns the status written (`passed` or `failed`)."""
    status = "passed" if all(s.ok for s in summaries) else "failed"
    rows = []
    for r in run.items:
        name, version = parse_rubric_ref(r.rubric)
        passed = None if r.status is JudgeStatus.SKIPPED else item_passed(r, config.threshold(r.rubric))
        rows.append((run.run_id, r.item_id, name, version, r.status.value, r.score, r.label, r.reasoning, passed,
                     r.input_tokens, r.output_tokens, r.error_type, r.error))
    summary = {s.rubric: dataclasses.asdict(s) for s in summaries}
    async with conn.transaction():
        await conn.executemany(
            """INSERT INTO eval_run_items (run_id, item_id, rubric, rubric_version, status, score, label, reasoning,
                                           passed, input_tokens, output_tokens, error_type, error)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
               ON CONFLICT (run_id, item_id, rubric, rubric_version) DO NOTHING""", rows)
        await conn.execute(
            "UPDATE eval_runs SET status = $2, summary = $3::jsonb, finished_at = now() WHERE run_id = $1",
            run.run_id, status, json.dumps(summary))
    return status


async def fail_run(*, conn: asyncpg.Connection, run_id: uuid.UUID, error: str) -> None:
    """Record a run that could not finish, with the error (cut to 1,000 characters)."""
    await conn.execute(
        """UPDATE eval_runs SET status = 'error', finished_at = now(),
               summary = jsonb_build_object('error', $2::text) WHERE run_id = $1""", run_id, error[:1000])


async def load_run(*, conn: asyncpg.Connection, tenant_id: str, run_id: uuid.UUID) -> RunResult | None:
    run = await conn.fetchrow("SELECT * FROM eval_runs WHERE run_id = $1 AND tenant_id = $2", run_id, tenant_id)
    if run is None:
        return None
    items = await conn.fetch("SELECT * FROM eval_run_items WHERE run_id = $1 ORDER BY item_id, rubric", run_id)
    return RunResult(
        run_id=run["run_id"], dataset=run["dataset"], dataset_sha256=run["dataset_sha256"],
        target_model=run["target_model"], judge_model=run["judge_model"], started_at=run["started_at"],
        items=[ItemResult(item_id=i["item_id"], rubric=f"{i['rubric']}@{i['rubric_version']}",
                          status=JudgeStatus(i["status"]), score=i["score"], label=i["label"],
                          reasoning=i["reasoning"], error_type=i["error_type"], error=i["error"],
                          input_tokens=i["input_tokens"], output_tokens=i["output_tokens"]) for i in items])


async def latest_passed_run(*, conn: asyncpg.Connection, tenant_id: str, dataset: str) -> uuid.UUID | None:
    run_id: uuid.UUID | None = await conn.fetchval(
        """SELECT run_id FROM eval_runs WHERE tenant_id = $1 AND dataset = $2 AND status = 'passed'
           ORDER BY started_at DESC LIMIT 1""", tenant_id, dataset)
    return run_id


async def list_runs(*, conn: asyncpg.Connection, tenant_id: str, dataset: str | None,
                    limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT run_id, dataset, target_model, judge_model, status, started_at, finished_at, baseline_run_id
           FROM eval_runs WHERE tenant_id = $1 AND ($2::text IS NULL OR dataset = $2)
           ORDER BY started_at DESC LIMIT $3""", tenant_id, dataset, limit)
