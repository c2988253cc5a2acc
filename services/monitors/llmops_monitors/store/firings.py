"""`monitor_evaluations`, `monitor_states`, `monitor_firings`: what each closed window decided.

An evaluation of (monitor, group, window) is recorded once (`record_evaluation` returns False when it was
recorded already: a window closed again after a restart changes nothing); the state row is locked while
the evaluation decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from llmops_monitors.store import Executor


async def record_evaluation(conn: asyncpg.Connection, *, monitor_id: int, group_key: str, window_end: datetime,
                            value: float | None, samples: float, breaching: bool) -> bool:
    done = await conn.fetchval(
        """INSERT INTO monitor_evaluations (monitor_id, group_key, window_end, value, samples, breaching)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true""",
        monitor_id, group_key, window_end, value, samples, breaching)
    return bool(done)


async def lock_state(conn: asyncpg.Connection, *, monitor_id: int, group_key: str, tenant_id: str,
                     window_end: datetime) -> asyncpg.Record:
    """The (monitor, group)'s state, locked for this transaction (created `ok` if new)."""
    await conn.execute(
        """INSERT INTO monitor_states (monitor_id, group_key, tenant_id, status, last_window_end)
           VALUES ($1, $2, $3, 'ok', 'epoch') ON CONFLICT DO NOTHING""",
        monitor_id, group_key, tenant_id)
    row = await conn.fetchrow("SELECT * FROM monitor_states WHERE monitor_id = $1 AND group_key = $2 FOR UPDATE",
                              monitor_id, group_key)
    assert row is not None
    return row


async def save_state(conn: asyncpg.Connection, *, monitor_id: int, group_key: str, status: str,
                     firing_id: int | None, clear_streak: int, window_end: datetime) -> None:
    await conn.execute(
        """UPDATE monitor_states SET status = $3, firing_id = $4, clear_streak = $5,
                  last_window_end = greatest(last_window_end, $6)
           WHERE monitor_id = $1 AND group_key = $2""",
        monitor_id, group_key, status, firing_id, clear_streak, window_end)


async def open_firing(conn: asyncpg.Connection, *, monitor_id: int, tenant_id: str, group_key: str,
                      window_end: datetime, value: float | None, reference: float | None) -> int | None:
    """A new firing; None if this (monitor, group, window) has one already."""
    return await conn.fetchval(
        """INSERT INTO monitor_firings (monitor_id, tenant_id, group_key, window_end, value, reference)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (monitor_id, group_key, window_end) DO NOTHING
           RETURNING firing_id""",
        monitor_id, tenant_id, group_key, window_end, value, reference)


async def resolve_firing(conn: asyncpg.Connection, *, firing_id: int, window_end: datetime) -> None:
    await conn.execute("UPDATE monitor_firings SET resolved_window_end = $2, resolved_at = now() "
                       "WHERE firing_id = $1 AND resolved_at IS NULL", firing_id, window_end)


async def close_firing_states(conn: asyncpg.Connection, *, monitor_id: int) -> list[asyncpg.Record]:
    """Every firing group of the monitor set back to ok (locked, in the caller's transaction): what they were."""
    return await conn.fetch(
        """WITH firing AS (SELECT monitor_id, group_key, firing_id, last_window_end FROM monitor_states
                           WHERE monitor_id = $1 AND status = 'firing' FOR UPDATE)
           UPDATE monitor_states s SET status = 'ok', firing_id = NULL, clear_streak = 0 FROM firing f
           WHERE s.monitor_id = f.monitor_id AND s.group_key = f.group_key
           RETURNING f.group_key, f.firing_id, f.last_window_end""", monitor_id)


async def firing_groups(db: Executor, *, monitor_ids: Sequence[int]) -> list[asyncpg.Record]:
    """(monitor, group, last window end) of the groups that are firing: evaluated in every window, data or not."""
    if not monitor_ids:
        return []
    return await db.fetch("SELECT monitor_id, group_key, last_window_end FROM monitor_states "
                          "WHERE status = 'firing' AND monitor_id = ANY($1::bigint[])", list(monitor_ids))


async def previous_values(db: Executor, *, monitor_id: int, group_key: str,
                          window_ends: Sequence[datetime], min_samples: int) -> list[float | None]:
    """The values of the same group in the given earlier windows (a baseline), those with enough samples."""
    rows = await db.fetch(
        "SELECT value FROM monitor_evaluations WHERE monitor_id = $1 AND group_key = $2 "
        "AND window_end = ANY($3::timestamptz[]) AND samples >= $4",
        monitor_id, group_key, list(window_ends), min_samples)
    return [r["value"] for r in rows]


async def list_firings(db: Executor, *, tenant_id: str, monitor_id: int, limit: int) -> list[dict[str, Any]]:
    rows = await db.fetch(
        """SELECT firing_id, monitor_id, group_key, window_end, value, reference, resolved_window_end, opened_at,
                  resolved_at FROM monitor_firings WHERE tenant_id = $1 AND monitor_id = $2
           ORDER BY firing_id DESC LIMIT $3""", tenant_id, monitor_id, limit)
    return [dict(r) for r in rows]


async def purge_evaluations(db: Executor, *, before: datetime) -> int:
    done = await db.execute("DELETE FROM monitor_evaluations WHERE evaluated_at < $1", before)
    return int(done.split()[-1])


async def monitor_states(db: Executor, *, tenant_id: str, monitor_ids: Sequence[int]) -> list[asyncpg.Record]:
    """Per monitor of the tenant: its groups evaluated, those firing, and the end of the last window closed."""
    if not monitor_ids:
        return []
    return await db.fetch(
        """SELECT monitor_id, count(*) AS groups, count(*) FILTER (WHERE status = 'firing') AS firing,
                  max(last_window_end) AS last_window_end
           FROM monitor_states WHERE tenant_id = $1 AND monitor_id = ANY($2::bigint[]) GROUP BY monitor_id""",
        tenant_id, list(monitor_ids))
