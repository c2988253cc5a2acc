"""`budgets` and `budget_alerts_sent`, the spend of a budget's period (from `usage_daily`), and the lock
that serialises evaluations of one budget.

Rows come back as records (`BUDGET_COLUMNS`); `budgets.py` maps them to `Budget`s. Every read and change
of a budget names its tenant: a budget id of another tenant finds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal

import asyncpg

from llmops_shared.problems import Conflict

BUDGET_COLUMNS = ("id, tenant_id, app_id, period, amount, thresholds, enforcement, name, created_at, updated_at, "
                  "archived_at")
_LOCK_CLASS = 0x0B1D6E7  # advisory lock namespace of budget evaluation


async def active_budgets(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_ids: Iterable[str]) -> list[asyncpg.Record]:
    """The active budgets of these tenants, in id order."""
    tenants = sorted(set(tenant_ids))
    if not tenants:
        return []
    return await conn.fetch(
        f"SELECT {BUDGET_COLUMNS} FROM budgets WHERE tenant_id = ANY($1::text[]) AND archived_at IS NULL "  # noqa: S608
        "ORDER BY id", tenants)


async def list_budgets(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str,
                       include_archived: bool = False) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {BUDGET_COLUMNS} FROM budgets WHERE tenant_id = $1 AND ($2 OR archived_at IS NULL) "  # noqa: S608
        "ORDER BY id", tenant_id, include_archived)


async def get_budget(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str,
                     budget_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {BUDGET_COLUMNS} FROM budgets WHERE tenant_id = $1 AND id = $2", tenant_id, budget_id)  # noqa: S608


async def insert_budget(conn: asyncpg.Connection, *, tenant_id: str, app_id: str, period: str, amount: Decimal,
                        thresholds: Sequence[int], enforcement: str, name: str) -> asyncpg.Record:
    """A new active budget; `Conflict` when the tenant has an active one for that app and period."""
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO budgets (tenant_id, app_id, period, amount, thresholds, enforcement, name)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {BUDGET_COLUMNS}""",  # noqa: S608
            tenant_id, app_id, period, amount, list(thresholds), enforcement, name)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"an active {period} budget already exists for "
                       f"{'app ' + app_id if app_id else 'all apps'}") from exc
    assert row is not None
    return row


async def update_budget(conn: asyncpg.Connection, *, tenant_id: str, budget_id: int, amount: Decimal | None,
                        thresholds: Sequence[int] | None, enforcement: str | None,
                        name: str | None) -> asyncpg.Record | None:
    """Change what is not None of an active budget; None when the tenant has no such active budget."""
    return await conn.fetchrow(
        f"""UPDATE budgets SET amount = coalesce($3, amount), thresholds = coalesce($4, thresholds),
                   enforcement = coalesce($5, enforcement), name = coalesce($6, name), updated_at = now()
            WHERE tenant_id = $1 AND id = $2 AND archived_at IS NULL
            RETURNING {BUDGET_COLUMNS}""",  # noqa: S608
        tenant_id, budget_id, amount, None if thresholds is None else list(thresholds), enforcement, name)


async def archive_budget(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str, budget_id: int) -> bool:
    """Archive an active budget; False when the tenant has no such active budget."""
    done = await conn.fetchval(
        "UPDATE budgets SET archived_at = now(), updated_at = now() WHERE tenant_id = $1 AND id = $2 "
        "AND archived_at IS NULL RETURNING id", tenant_id, budget_id)
    return done is not None


async def period_spend(conn: asyncpg.Connection | asyncpg.Pool, *,
                       periods: Sequence[tuple[str, str, date, date]]) -> list[tuple[Decimal, int, int]]:
    """For each (tenant, app or '' for every app, first day, end day exclusive): the priced spend, the
    unpriced events and all events, from the daily rollup (UTC days tile UTC periods exactly)."""
    if not periods:
        return []
    rows = await conn.fetch(
        """SELECT i.idx, coalesce(sum(d.cost_total), 0) AS spent, coalesce(sum(d.unpriced_count), 0) AS unpriced,
                  coalesce(sum(d.event_count), 0) AS events
           FROM unnest($1::int[], $2::text[], $3::text[], $4::date[], $5::date[]) AS i(idx, tenant_id, app_id, d0, d1)
           LEFT JOIN usage_daily d ON d.tenant_id = i.tenant_id AND (i.app_id = '' OR d.app_id = i.app_id)
                                  AND d.bucket >= i.d0 AND d.bucket < i.d1
           GROUP BY i.idx""",
        list(range(len(periods))), [p[0] for p in periods], [p[1] for p in periods], [p[2] for p in periods],
        [p[3] for p in periods],
    )
    by_idx = {r["idx"]: (r["spent"], int(r["unpriced"]), int(r["events"])) for r in rows}
    return [by_idx[i] for i in range(len(periods))]


async def lock_for_evaluation(conn: asyncpg.Connection, *, budget_ids: Iterable[int]) -> None:
    """One transaction-scoped advisory lock per budget, in id order (one lock order: no deadlock between
    workers); evaluations of one budget then run one after the other."""
    for budget_id in sorted(set(budget_ids)):
        await conn.execute("SELECT pg_advisory_xact_lock($1::int, $2::int)", _LOCK_CLASS, budget_id % 2_147_483_647)


Crossing = tuple[int, datetime, int]  # budget id, period start, threshold


async def record_crossings(conn: asyncpg.Connection, *,
                           crossings: Sequence[tuple[int, datetime, int, Decimal, Decimal]]) -> set[Crossing]:
    """Record (budget id, period start, threshold, spent, amount) crossings; returns the (budget id, period
    start, threshold) of those recorded now (the others were recorded before: they alerted already)."""
    if not crossings:
        return set()
    rows = await conn.fetch(
        """INSERT INTO budget_alerts_sent (budget_id, period_start, threshold, spent, amount)
           SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::int[], $4::numeric[], $5::numeric[])
           ON CONFLICT DO NOTHING
           RETURNING budget_id, period_start, threshold""",
        [c[0] for c in crossings], [c[1] for c in crossings], [c[2] for c in crossings],
        [c[3] for c in crossings], [c[4] for c in crossings],
    )
    return {(r["budget_id"], r["period_start"], r["threshold"]) for r in rows}


async def crossings_recorded(conn: asyncpg.Connection | asyncpg.Pool, *,
                             budget_ids: Sequence[int]) -> set[Crossing]:
    """(budget id, period start, threshold) of every crossing recorded for these budgets."""
    rows = await conn.fetch(
        "SELECT budget_id, period_start, threshold FROM budget_alerts_sent WHERE budget_id = ANY($1::bigint[])",
        list(budget_ids))
    return {(r["budget_id"], r["period_start"], r["threshold"]) for r in rows}
