"""Judgment results in Postgres (`evaluation_results`): the worker's writes, the API's reads. All their SQL.

`result_row` is pure (an `Evaluation` to the row's values); `upsert_results` writes a batch in one
statement. The upsert never replaces an `ok` row (a redelivered event changes nothing that was judged) and
replaces any other (a retried or replayed event fixes an error row). Call it inside the batch's
transaction, before committing offsets. `existing_results` is the worker's redelivery check; `is_judged`
and `result_page` serve the API (feedback needs a judged event; results are paged by key). The table is
partitioned by month of `occurred_at` (migration evaluator/0004): its key includes it, and the upsert
makes sure the rows' month partitions exist first (`llmops_shared.partitions`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from llmops_evaluator.evaluations import Evaluation
from llmops_shared.partitions import ensure_month_partitions

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
_KEY = ("tenant_id", "event_id", "evaluator_id", "rubric", "rubric_version", "occurred_at")  # with the partition key


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
RETURNING tenant_id, event_id, evaluator_id, rubric, rubric_version
"""  # noqa: S608 - built from the constant column list above, values are parameters


async def upsert_results(conn: asyncpg.Connection, rows: list[ResultRow]) -> int:
    """Write `rows`; returns how many were inserted or replaced (an `ok` row already there is kept)."""
    if not rows:
        return 0
    columns = [[getattr(row, name) for row in rows] for name, _ in _COLUMNS]
    await ensure_month_partitions(conn, "evaluation_results", (row.occurred_at for row in rows))
    written = await conn.fetch(_UPSERT, *columns)
    return len(written)


async def existing_results(conn: asyncpg.Connection | asyncpg.Pool, event_ids: list[uuid.UUID]
                           ) -> dict[tuple[str, uuid.UUID, str, str, int], asyncpg.Record]:
    """The rows already stored for these events, by primary key (tenant, event, evaluator, rubric, version):
    the worker's redelivery check. Two tenants' events may share an id; their rows never stand for each other."""
    if not event_ids:
        return {}
    rows = await conn.fetch(
        f"""SELECT {", ".join(name for name, _ in _COLUMNS)}, updated_at FROM evaluation_results
            WHERE event_id = ANY($1::uuid[])""",  # noqa: S608 - constant column list
        event_ids,
    )
    return {(r["tenant_id"], r["event_id"], r["evaluator_id"], r["rubric"], r["rubric_version"]): r for r in rows}


async def is_judged(*, conn: asyncpg.Connection, tenant_id: str, event_id: uuid.UUID) -> bool:
    """Whether the tenant has any result for `event_id` (whatever its status)."""
    found = await conn.fetchval("SELECT 1 FROM evaluation_results WHERE event_id = $1 AND tenant_id = $2 LIMIT 1",
                                event_id, tenant_id)
    return found is not None


ResultKey = tuple[datetime, uuid.UUID, str, str, int]  # (occurred_at, event, evaluator, rubric, version): the page key
PAGE_FIELDS = ("event_id", "evaluator_id", "rubric", "rubric_version", "tenant_id", "app_id", "occurred_at",
               "status", "score", "raw_score", "label", "reasoning", "judge_model", "input_tokens",
               "output_tokens", "attempts", "from_cache", "error_type", "error", "judged_at", "created_at",
               "updated_at")

_PAGE = f"""
SELECT {", ".join(PAGE_FIELDS)} FROM evaluation_results
WHERE tenant_id = $1
  AND ($2::uuid IS NULL OR event_id = $2) AND ($3::text IS NULL OR evaluator_id = $3)
  AND ($4::text IS NULL OR rubric = $4) AND ($5::int IS NULL OR rubric_version = $5)
  AND ($6::text IS NULL OR status = $6)
  AND ($7::timestamptz IS NULL OR occurred_at >= $7) AND ($8::timestamptz IS NULL OR occurred_at < $8)
  AND ($9::timestamptz IS NULL
       OR (occurred_at, event_id, evaluator_id, rubric, rubric_version) < ($9, $10, $11, $12, $13))
ORDER BY occurred_at DESC, event_id DESC, evaluator_id DESC, rubric DESC, rubric_version DESC
LIMIT $14
"""  # noqa: S608 - constant column list; values are parameters


async def result_page(*, conn: asyncpg.Connection, tenant_id: str, event_id: uuid.UUID | None = None,
                      evaluator_id: str | None = None, rubric: str | None = None, rubric_version: int | None = None,
                      status: str | None = None, since: datetime | None = None, until: datetime | None = None,
                      after: ResultKey | None = None, limit: int) -> list[asyncpg.Record]:
    """Up to `limit` results of the tenant, newest judged interaction first, after the key `after`.

    Every filter is optional: `rubric` is a name (any version unless `rubric_version`), `since` is
    inclusive and `until` exclusive (the judged interaction's time). Columns: `PAGE_FIELDS`.
    """
    rows: list[asyncpg.Record] = await conn.fetch(
        _PAGE, tenant_id, event_id, evaluator_id, rubric, rubric_version, status, since, until,
        *(after or (None, None, None, None, None)), limit)
    return rows
