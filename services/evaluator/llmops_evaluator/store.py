"""Postgres edge of the evaluator: evaluator configs in, judgment rows out (tables: 0001_evaluator.sql).

`result_row` is pure (an `Evaluation` to the row's values); `upsert_results` writes a batch in one
statement. The upsert never replaces an `ok` row (a redelivered event changes nothing that was judged) and
replaces any other (a retried or replayed event fixes an error row). Call it inside the batch's
transaction, before committing offsets.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from llmops_evaluator.config import EvaluatorConfig
from llmops_evaluator.evaluations import Evaluation

MAX_ERROR_CHARS = 1_000


@dataclass(frozen=True)
class ResultRow:
    event_id: uuid.UUID
    evaluator_id: str
    rubric: str
    rubric_version: int
    tenant_id: str
    app_id: str
    occurred_at: datetime
    status: str
    score: float | None
    raw_score: int | None
    label: str | None
    reasoning: str | None
    judge_model: str
    input_tokens: int
    output_tokens: int
    attempts: int
    from_cache: bool
    error_type: str | None
    error: str | None
    judged_at: datetime | None = None
    latency_ms: float | None = None
    usage_event_id: uuid.UUID | None = None


def result_row(evaluation: Evaluation) -> ResultRow:
    interaction, result, rubric = evaluation.interaction, evaluation.result, evaluation.rubric
    return ResultRow(
        event_id=interaction.event_id,
        evaluator_id=evaluation.evaluator_id,
        rubric=rubric.name,
        rubric_version=rubric.version,
        tenant_id=interaction.tenant_id,
        app_id=interaction.app_id,
        occurred_at=interaction.occurred_at,
        status=result.status.value,
        score=result.score,
        raw_score=result.raw_score,
        label=result.label,
        reasoning=result.reasoning,
        judge_model=result.judge_model,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        attempts=result.attempts,
        from_cache=result.from_cache,
        error_type=result.error_type,
        error=result.error[:MAX_ERROR_CHARS] if result.error else None,
        judged_at=evaluation.judged_at,
        latency_ms=result.latency_ms if evaluation.judged_at is not None else None,
        usage_event_id=evaluation.usage_event.event_id if evaluation.usage_event is not None else None,
    )


_COLUMNS = (
    ("event_id", "uuid"), ("evaluator_id", "text"), ("rubric", "text"), ("rubric_version", "int"),
    ("tenant_id", "text"), ("app_id", "text"), ("occurred_at", "timestamptz"), ("status", "text"),
    ("score", "float8"), ("raw_score", "int"), ("label", "text"), ("reasoning", "text"),
    ("judge_model", "text"), ("input_tokens", "int"), ("output_tokens", "int"), ("attempts", "int"),
    ("from_cache", "bool"), ("error_type", "text"), ("error", "text"), ("judged_at", "timestamptz"),
    ("latency_ms", "float8"), ("usage_event_id", "uuid"),
)
_KEY = ("event_id", "evaluator_id", "rubric", "rubric_version")


def _set(name: str) -> str:
    # A row keeps the id of the last usage event published for its key, so that judging it again after a
    # failure that spent tokens gets a new id (`evaluations.usage_id_for`).
    if name == "usage_event_id":
        return "usage_event_id = COALESCE(EXCLUDED.usage_event_id, evaluation_results.usage_event_id)"
    return f"{name} = EXCLUDED.{name}"

_UPSERT = f"""
INSERT INTO evaluation_results ({", ".join(name for name, _ in _COLUMNS)})
SELECT * FROM unnest({", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(_COLUMNS, 1))})
ON CONFLICT ({", ".join(_KEY)}) DO UPDATE SET
    {", ".join(_set(name) for name, _ in _COLUMNS if name not in _KEY)},
    updated_at = now()
WHERE evaluation_results.status <> 'ok'
RETURNING event_id, evaluator_id, rubric, rubric_version
"""  # noqa: S608 - built from the constant column list above, values are parameters


async def upsert_results(conn: asyncpg.Connection, rows: list[ResultRow]) -> int:
    """Write `rows`; returns how many were inserted or replaced (an `ok` row already there is kept)."""
    if not rows:
        return 0
    columns = [[getattr(row, name) for row in rows] for name, _ in _COLUMNS]
    written = await conn.fetch(_UPSERT, *columns)
    return len(written)


async def existing_results(conn: asyncpg.Connection | asyncpg.Pool,
                           event_ids: list[uuid.UUID]) -> dict[tuple[uuid.UUID, str, str, int], asyncpg.Record]:
    """The rows already stored for these events, by primary key (the worker's redelivery check)."""
    if not event_ids:
        return {}
    rows = await conn.fetch(
        f"""SELECT {", ".join(name for name, _ in _COLUMNS)}, updated_at FROM evaluation_results
            WHERE event_id = ANY($1::uuid[])""",  # noqa: S608 - constant column list
        event_ids,
    )
    return {(r["event_id"], r["evaluator_id"], r["rubric"], r["rubric_version"]): r for r in rows}


@dataclass(frozen=True)
class ReviewEntry:
    tenant_id: str
    event_id: uuid.UUID
    evaluator_id: str
    rubric: str  # name@version
    reason: str
    priority: int


async def enqueue_for_review(conn: asyncpg.Connection | asyncpg.Pool, entries: list[ReviewEntry]) -> int:
    """Add items to the human review queue; one per (tenant, event, rubric): a second is ignored."""
    if not entries:
        return 0
    rows = await conn.fetch(
        """INSERT INTO review_queue (tenant_id, event_id, evaluator_id, rubric, reason, priority)
           SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[])
           ON CONFLICT (tenant_id, event_id, rubric) DO NOTHING RETURNING item_id""",
        [e.tenant_id for e in entries], [e.event_id for e in entries], [e.evaluator_id for e in entries],
        [e.rubric for e in entries], [e.reason for e in entries], [e.priority for e in entries],
    )
    return len(rows)


async def save_evaluator(conn: asyncpg.Connection, config: EvaluatorConfig) -> None:
    """Create or replace an evaluator; an id already used by another tenant is refused."""
    saved = await conn.fetchval(
        """
        INSERT INTO evaluators (evaluator_id, tenant_id, config, enabled) VALUES ($1, $2, $3::jsonb, $4)
        ON CONFLICT (evaluator_id) DO UPDATE SET config = EXCLUDED.config, enabled = EXCLUDED.enabled,
            updated_at = now()
        WHERE evaluators.tenant_id = EXCLUDED.tenant_id
        RETURNING evaluator_id
        """,
        config.id, config.tenant_id, config.model_dump_json(), config.enabled,
    )
    if saved is None:
        raise ValueError(f"evaluator id {config.id!r} belongs to another tenant")


async def load_evaluators(conn: asyncpg.Connection, *, tenant_id: str | None = None) -> list[EvaluatorConfig]:
    """The enabled evaluators (of one tenant, or all). A config that no longer validates raises."""
    rows = await conn.fetch(
        "SELECT config FROM evaluators WHERE enabled AND ($1::text IS NULL OR tenant_id = $1) ORDER BY evaluator_id",
        tenant_id,
    )
    return [EvaluatorConfig.model_validate(_json(row["config"])) for row in rows]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
