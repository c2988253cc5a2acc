"""`monitors`: the definitions. Soft-deleted (`deleted_at`), so firings keep naming their monitor."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from llmops_monitors.store import Executor
from llmops_shared.problems import Conflict

COLUMNS = ("monitor_id, tenant_id, name, metric, aggregation, window_spec, app_id, group_by, condition, min_samples, "
           "severity, channel_ids, resolve_after, enabled, created_at, updated_at")


def _record(r: asyncpg.Record) -> dict[str, Any]:
    out = dict(r)
    out["condition"] = json.loads(out["condition"]) if isinstance(out["condition"], str) else out["condition"]
    return out


async def list_monitors(db: Executor, *, tenant_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(f"SELECT {COLUMNS} FROM monitors WHERE tenant_id = $1 AND deleted_at IS NULL "  # noqa: S608
                          "ORDER BY monitor_id", tenant_id)
    return [_record(r) for r in rows]


async def get_monitor(db: Executor, *, tenant_id: str, monitor_id: int) -> dict[str, Any] | None:
    row = await db.fetchrow(f"SELECT {COLUMNS} FROM monitors WHERE tenant_id = $1 AND monitor_id = $2 "  # noqa: S608
                            "AND deleted_at IS NULL", tenant_id, monitor_id)
    return None if row is None else _record(row)


async def count_monitors(db: Executor, *, tenant_id: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM monitors WHERE tenant_id = $1 AND deleted_at IS NULL",
                                 tenant_id))


async def enabled_monitors(db: Executor) -> list[dict[str, Any]]:
    """Every enabled monitor of every tenant (the worker's cache)."""
    rows = await db.fetch(f"SELECT {COLUMNS} FROM monitors WHERE deleted_at IS NULL AND enabled "  # noqa: S608
                          "ORDER BY monitor_id")
    return [_record(r) for r in rows]


def _values(d: dict[str, Any]) -> tuple[Any, ...]:
    return (d["name"], d["metric"], d["aggregation"], d["window"], d["app_id"], list(d["group_by"]),
            json.dumps(d["condition"]), d["min_samples"], d["severity"], list(d["channels"]), d["resolve_after"],
            d["enabled"])


async def insert_monitor(db: Executor, *, tenant_id: str, definition: dict[str, Any]) -> dict[str, Any]:
    try:
        row = await db.fetchrow(
            f"""INSERT INTO monitors (tenant_id, name, metric, aggregation, window_spec, app_id, group_by, condition,
                                      min_samples, severity, channel_ids, resolve_after, enabled)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13) RETURNING {COLUMNS}""",  # noqa: S608
            tenant_id, *_values(definition))
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"the tenant has a monitor named {definition['name']!r}") from exc
    assert row is not None
    return _record(row)


async def replace_monitor(db: Executor, *, tenant_id: str, monitor_id: int,
                          definition: dict[str, Any]) -> dict[str, Any] | None:
    try:
        row = await db.fetchrow(
            f"""UPDATE monitors SET name = $3, metric = $4, aggregation = $5, window_spec = $6, app_id = $7,
                       group_by = $8, condition = $9::jsonb, min_samples = $10, severity = $11, channel_ids = $12,
                       resolve_after = $13, enabled = $14, updated_at = now()
                WHERE tenant_id = $1 AND monitor_id = $2 AND deleted_at IS NULL RETURNING {COLUMNS}""",  # noqa: S608
            tenant_id, monitor_id, *_values(definition))
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"the tenant has a monitor named {definition['name']!r}") from exc
    return None if row is None else _record(row)


async def delete_monitor(db: Executor, *, tenant_id: str, monitor_id: int) -> bool:
    done = await db.fetchval("UPDATE monitors SET deleted_at = now(), updated_at = now() WHERE tenant_id = $1 "
                             "AND monitor_id = $2 AND deleted_at IS NULL RETURNING monitor_id", tenant_id, monitor_id)
    return done is not None


async def unknown_channels(db: Executor, *, tenant_id: str, channel_ids: Sequence[int]) -> list[int]:
    """The ids among `channel_ids` that are not notification channels of the tenant."""
    if not channel_ids:
        return []
    found = await db.fetch("SELECT channel_id FROM notification_channels WHERE tenant_id = $1 "
                           "AND channel_id = ANY($2::bigint[])", tenant_id, list(channel_ids))
    known = {r["channel_id"] for r in found}
    return [c for c in channel_ids if c not in known]
