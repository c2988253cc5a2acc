"""`prompt_experiments`: one row per experiment, keyed by (tenant, id); at most one running per prompt label."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import orjson

from llmops_shared.problems import Conflict

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool

_COLUMNS = ("id, prompt_name, label, unit, variants, holdout, status, description, created_by, created_at, "
            "started_at, stopped_at")


def _decode(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out["variants"] = orjson.loads(out["variants"])
    return out


async def insert(db: Db, *, tenant_id: str, experiment_id: str, prompt: str, label: str, unit: str,
                 variants: list[dict[str, Any]], holdout: float, description: str, created_by: str) -> dict[str, Any]:
    try:
        row = await db.fetchrow(
            f"""INSERT INTO prompt_experiments (tenant_id, id, prompt_name, label, unit, variants, holdout, description,
                                                created_by)
                VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9) RETURNING {_COLUMNS}""",  # noqa: S608
            tenant_id, experiment_id, prompt, label, unit, orjson.dumps(variants).decode(), holdout, description,
            created_by)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"experiment {experiment_id!r} exists") from exc
    assert row is not None
    return _decode(row)


async def get(db: Db, *, tenant_id: str, experiment_id: str) -> dict[str, Any] | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM prompt_experiments WHERE tenant_id = $1 AND id = $2",  # noqa: S608
                            tenant_id, experiment_id)
    return None if row is None else _decode(row)


async def list_all(db: Db, *, tenant_id: str, prompt: str | None = None) -> list[dict[str, Any]]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM prompt_experiments WHERE tenant_id = $1 AND ($2::text IS NULL OR prompt_name = $2) "  # noqa: S608
        "ORDER BY created_at DESC, id", tenant_id, prompt)
    return [_decode(r) for r in rows]


async def running(db: Db, *, tenant_id: str, prompt: str, label: str) -> dict[str, Any] | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM prompt_experiments "  # noqa: S608
        "WHERE tenant_id = $1 AND prompt_name = $2 AND label = $3 AND status = 'running'", tenant_id, prompt, label)
    return None if row is None else _decode(row)


async def start(db: Db, *, tenant_id: str, experiment_id: str) -> dict[str, Any] | None:
    """draft -> running; None when it is not a draft. `Conflict` when another one runs on that label."""
    try:
        row = await db.fetchrow(
            f"UPDATE prompt_experiments SET status = 'running', started_at = now() "  # noqa: S608
            f"WHERE tenant_id = $1 AND id = $2 AND status = 'draft' RETURNING {_COLUMNS}", tenant_id, experiment_id)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("another experiment is running on this prompt's label; stop it first") from exc
    return None if row is None else _decode(row)


async def stop(db: Db, *, tenant_id: str, experiment_id: str) -> dict[str, Any] | None:
    """running -> stopped; None when it is not running."""
    row = await db.fetchrow(
        f"UPDATE prompt_experiments SET status = 'stopped', stopped_at = now() "  # noqa: S608
        f"WHERE tenant_id = $1 AND id = $2 AND status = 'running' RETURNING {_COLUMNS}", tenant_id, experiment_id)
    return None if row is None else _decode(row)


async def all_running(db: Db, *, tenants: list[str] | None = None) -> list[dict[str, Any]]:
    """Every running experiment's tenant, prompt, unit and start (of every tenant, or of `tenants`): what the
    report's warmer keeps warm. The background reader of the prompts API, not a route: it never answers a key."""
    rows = await db.fetch(
        "SELECT tenant_id, id, prompt_name, unit, started_at FROM prompt_experiments "
        "WHERE status = 'running' AND ($1::text[] IS NULL OR tenant_id = ANY($1::text[])) "
        "ORDER BY tenant_id, prompt_name, unit, id", tenants)
    return [dict(r) for r in rows]
