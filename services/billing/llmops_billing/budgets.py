"""Budgets: a spending limit per tenant (or one app of it) and UTC calendar period, with thresholds.

Evaluation runs inside the worker's batch transaction, right after the batch's rows reached the daily
rollup, so spend is as fresh as the ledger:

1. the active budgets of the tenants in the batch, and the periods (day or month) the batch's priced
   events fall in; periods that ended more than `max_age` ago are skipped, so a backfill does not page;
2. one transaction-scoped advisory lock per budget, in id order. Two workers writing the same tenant's
   events then evaluate one after the other, and the second one's spend query (a new snapshot under
   READ COMMITTED) sees the first one's committed rows: no crossing falls between two workers;
3. spend = SUM(cost_total) of `usage_daily` over the period (the budget's app, or every app);
4. every threshold reached (spend * 100 >= amount * threshold) is inserted into `budget_alerts_sent`
   with ON CONFLICT DO NOTHING RETURNING: only the rows that come back are new crossings, so each
   crossing alerts once per budget, period and threshold, however often it is evaluated.

Spend covers priced events only; unpriced events raise their own alert and are counted in the alert's
details. `enforcement` (`soft` or `hard`) travels in the alert (a hard budget pages as critical from
80%) and in the budget's status (`blocked`), for a gateway that enforces it.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import asyncpg

from llmops_billing.alerts import Alert, budget_alert
from llmops_billing.money import EXACT, check_scale, money_str, to_decimal

_LOCK_CLASS = 0x0B1D6E7  # advisory lock namespace of budget evaluation
MAX_THRESHOLD = 1000
DEFAULT_THRESHOLDS = (50, 80, 100)


class Period(StrEnum):
    DAY = "day"
    MONTH = "month"


class Enforcement(StrEnum):
    SOFT = "soft"
    HARD = "hard"


def period_bounds(period: Period | str, at: datetime) -> tuple[datetime, datetime]:
    """The UTC day or month containing `at`: `[start, end)`."""
    utc = at.astimezone(UTC)
    if Period(period) is Period.DAY:
        start = utc.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    start = utc.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(start.year, start.month)[1]
    return start, start + timedelta(days=days)


def reached(spent: Decimal, amount: Decimal, thresholds: Iterable[int]) -> list[int]:
    """The thresholds (percent) that `spent` has reached, ascending. Exact: no rounding at the edge."""
    return sorted(t for t in set(thresholds)
                  if EXACT.multiply(spent, Decimal(100)) >= EXACT.multiply(amount, Decimal(t)))


def validate_thresholds(values: Sequence[int]) -> tuple[int, ...]:
    if not values:
        raise ValueError("thresholds: at least one is needed")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_THRESHOLD:
            raise ValueError(f"thresholds: each is a whole percent from 1 to {MAX_THRESHOLD} (got {value!r})")
    return tuple(sorted(set(values)))


def validate_amount(value: Decimal | str | int) -> Decimal:
    amount = check_scale(to_decimal(value, what="amount"), what="amount")
    if amount <= 0:
        raise ValueError("amount: must be more than 0")
    if amount >= Decimal(10) ** 18:
        raise ValueError("amount: too large")
    return amount


@dataclass(frozen=True, slots=True)
class Budget:
    id: int
    tenant_id: str
    app_id: str  # '' : every app of the tenant
    period: Period
    amount: Decimal
    thresholds: tuple[int, ...]
    enforcement: Enforcement
    name: str
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None

    def covers(self, tenant_id: str, app_id: str) -> bool:
        return self.tenant_id == tenant_id and (not self.app_id or self.app_id == app_id)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "app_id": self.app_id or None, "period": self.period.value,
            "amount": money_str(self.amount), "currency": "USD", "thresholds": list(self.thresholds),
            "enforcement": self.enforcement.value, "name": self.name,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "archived_at": None if self.archived_at is None else self.archived_at.isoformat(),
        }


_BUDGET_COLUMNS = ("id, tenant_id, app_id, period, amount, thresholds, enforcement, name, created_at, updated_at, "
                   "archived_at")


def _budget(record: Mapping[str, Any]) -> Budget:
    return Budget(
        id=record["id"], tenant_id=record["tenant_id"], app_id=record["app_id"], period=Period(record["period"]),
        amount=record["amount"], thresholds=tuple(sorted(record["thresholds"])),
        enforcement=Enforcement(record["enforcement"]), name=record["name"], created_at=record["created_at"],
        updated_at=record["updated_at"], archived_at=record["archived_at"],
    )


# --------------------------------------------------------------------------------------------------
# Evaluation (in the worker's transaction)


@dataclass(frozen=True, slots=True)
class PeriodSpend:
    spent: Decimal
    unpriced_events: int
    event_count: int


async def active_budgets(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_ids: Iterable[str]) -> list[Budget]:
    tenants = sorted(set(tenant_ids))
    if not tenants:
        return []
    rows = await conn.fetch(
        f"SELECT {_BUDGET_COLUMNS} FROM budgets WHERE tenant_id = ANY($1::text[]) AND archived_at IS NULL "  # noqa: S608
        "ORDER BY id", tenants)
    return [_budget(r) for r in rows]


async def period_spend(conn: asyncpg.Connection | asyncpg.Pool,
                       pairs: Sequence[tuple[Budget, datetime]]) -> list[PeriodSpend]:
    """Spend of each (budget, period start), from the daily rollup (UTC days tile UTC periods exactly)."""
    if not pairs:
        return []
    bounds = [period_bounds(b.period, start) for b, start in pairs]
    rows = await conn.fetch(
        """SELECT i.idx, coalesce(sum(d.cost_total), 0) AS spent, coalesce(sum(d.unpriced_count), 0) AS unpriced,
                  coalesce(sum(d.event_count), 0) AS events
           FROM unnest($1::int[], $2::text[], $3::text[], $4::date[], $5::date[]) AS i(idx, tenant_id, app_id, d0, d1)
           LEFT JOIN usage_daily d ON d.tenant_id = i.tenant_id AND (i.app_id = '' OR d.app_id = i.app_id)
                                  AND d.bucket >= i.d0 AND d.bucket < i.d1
           GROUP BY i.idx""",
        list(range(len(pairs))), [b.tenant_id for b, _ in pairs], [b.app_id for b, _ in pairs],
        [_date(s) for s, _ in bounds], [_date(e) for _, e in bounds],
    )
    by_idx = {r["idx"]: PeriodSpend(r["spent"], int(r["unpriced"]), int(r["events"])) for r in rows}
    return [by_idx[i] for i in range(len(pairs))]


def _date(at: datetime) -> date:
    return at.astimezone(UTC).date()


async def evaluate_touched(conn: asyncpg.Connection, touched: Iterable[tuple[str, str, datetime]], *,
                           now: datetime, max_age: timedelta) -> list[Alert]:
    """New threshold crossings caused by events of (tenant, app, occurred_at) `touched` (see the module
    docstring); the caller's transaction must already hold those events' rollups."""
    touched = set(touched)
    if not touched:
        return []
    budgets = await active_budgets(conn, tenant_ids={t for t, _a, _at in touched})
    if not budgets:
        return []
    oldest_end = now - max_age
    pairs: set[tuple[int, datetime]] = set()
    by_id = {b.id: b for b in budgets}
    apps_at: dict[str, set[tuple[str, datetime]]] = {}
    for tenant, app, at in touched:
        apps_at.setdefault(tenant, set()).add((app, at))
    for budget in budgets:
        for app, at in apps_at.get(budget.tenant_id, ()):
            if budget.app_id and budget.app_id != app:
                continue
            start, end = period_bounds(budget.period, at)
            if end >= oldest_end:
                pairs.add((budget.id, start))
    return await evaluate(conn, [(by_id[i], start) for i, start in sorted(pairs)], now=now)


async def evaluate(conn: asyncpg.Connection, pairs: Sequence[tuple[Budget, datetime]], *,
                   now: datetime) -> list[Alert]:
    """Record and return the new crossings of each (budget, period start), in the caller's transaction."""
    if not pairs:
        return []
    for budget_id in sorted({b.id for b, _ in pairs}):  # one lock order: no deadlock between workers
        await conn.execute("SELECT pg_advisory_xact_lock($1::int, $2::int)", _LOCK_CLASS, budget_id % 2_147_483_647)
    spends = await period_spend(conn, pairs)
    candidates: list[tuple[Budget, datetime, int, PeriodSpend]] = []
    for (budget, start), spend in zip(pairs, spends, strict=True):
        for threshold in reached(spend.spent, budget.amount, budget.thresholds):
            candidates.append((budget, start, threshold, spend))
    if not candidates:
        return []
    rows = await conn.fetch(
        """INSERT INTO budget_alerts_sent (budget_id, period_start, threshold, spent, amount)
           SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::int[], $4::numeric[], $5::numeric[])
           ON CONFLICT DO NOTHING
           RETURNING budget_id, period_start, threshold""",
        [c[0].id for c in candidates], [c[1] for c in candidates], [c[2] for c in candidates],
        [c[3].spent for c in candidates], [c[0].amount for c in candidates],
    )
    new = {(r["budget_id"], r["period_start"], r["threshold"]) for r in rows}
    alerts = []
    for budget, start, threshold, spend in candidates:
        if (budget.id, start, threshold) not in new:
            continue
        _, end = period_bounds(budget.period, start)
        alerts.append(budget_alert(
            budget_id=budget.id, tenant_id=budget.tenant_id, app_id=budget.app_id, period=budget.period.value,
            period_start=start, period_end=end, threshold=threshold, spent=spend.spent, amount=budget.amount,
            enforcement=budget.enforcement.value, name=budget.name, unpriced_events=spend.unpriced_events,
            decided_at=now))
    return alerts


async def evaluate_current(conn: asyncpg.Connection, budget: Budget, *, now: datetime) -> list[Alert]:
    """The budget's current period, evaluated now (after it was created or changed)."""
    start, _ = period_bounds(budget.period, now)
    return await evaluate(conn, [(budget, start)], now=now)


# --------------------------------------------------------------------------------------------------
# Management (the API), always within one tenant


class BudgetConflict(ValueError):
    """An active budget already exists for this tenant, app and period."""


async def list_budgets(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str,
                       include_archived: bool = False) -> list[Budget]:
    rows = await conn.fetch(
        f"SELECT {_BUDGET_COLUMNS} FROM budgets WHERE tenant_id = $1 AND ($2 OR archived_at IS NULL) "  # noqa: S608
        "ORDER BY id", tenant_id, include_archived)
    return [_budget(r) for r in rows]


async def get_budget(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str, budget_id: int) -> Budget | None:
    row = await conn.fetchrow(
        f"SELECT {_BUDGET_COLUMNS} FROM budgets WHERE tenant_id = $1 AND id = $2", tenant_id, budget_id)  # noqa: S608
    return None if row is None else _budget(row)


async def create_budget(conn: asyncpg.Connection, *, tenant_id: str, app_id: str, period: Period,
                        amount: Decimal, thresholds: Sequence[int], enforcement: Enforcement,
                        name: str) -> Budget:
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO budgets (tenant_id, app_id, period, amount, thresholds, enforcement, name)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_BUDGET_COLUMNS}""",  # noqa: S608
            tenant_id, app_id, period.value, validate_amount(amount), list(validate_thresholds(thresholds)),
            enforcement.value, name)
    except asyncpg.UniqueViolationError as exc:
        raise BudgetConflict(f"an active {period.value} budget already exists for "
                             f"{'app ' + app_id if app_id else 'all apps'}") from exc
    assert row is not None
    return _budget(row)


async def update_budget(conn: asyncpg.Connection, *, tenant_id: str, budget_id: int,
                        amount: Decimal | None = None, thresholds: Sequence[int] | None = None,
                        enforcement: Enforcement | None = None, name: str | None = None) -> Budget | None:
    row = await conn.fetchrow(
        f"""UPDATE budgets SET amount = coalesce($3, amount), thresholds = coalesce($4, thresholds),
                   enforcement = coalesce($5, enforcement), name = coalesce($6, name), updated_at = now()
            WHERE tenant_id = $1 AND id = $2 AND archived_at IS NULL
            RETURNING {_BUDGET_COLUMNS}""",  # noqa: S608
        tenant_id, budget_id, None if amount is None else validate_amount(amount),
        None if thresholds is None else list(validate_thresholds(thresholds)),
        None if enforcement is None else enforcement.value, name)
    return None if row is None else _budget(row)


async def archive_budget(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str, budget_id: int) -> bool:
    done = await conn.fetchval(
        "UPDATE budgets SET archived_at = now(), updated_at = now() WHERE tenant_id = $1 AND id = $2 "
        "AND archived_at IS NULL RETURNING id", tenant_id, budget_id)
    return done is not None


async def budget_status(conn: asyncpg.Connection | asyncpg.Pool, budgets: Sequence[Budget], *,
                        now: datetime) -> list[dict[str, Any]]:
    """Each budget with its current period's spend, the thresholds reached and whether it blocks."""
    pairs = [(b, period_bounds(b.period, now)[0]) for b in budgets]
    spends = await period_spend(conn, pairs)
    sent = await conn.fetch(
        "SELECT budget_id, period_start, threshold FROM budget_alerts_sent WHERE budget_id = ANY($1::bigint[])",
        [b.id for b in budgets])
    sent_by = {(r["budget_id"], r["period_start"], r["threshold"]) for r in sent}
    out = []
    for (budget, start), spend in zip(pairs, spends, strict=True):
        _, end = period_bounds(budget.period, start)
        hit = reached(spend.spent, budget.amount, budget.thresholds)
        percent = spend.spent * 100 / budget.amount
        out.append({
            **budget.as_json(),
            "current_period": {
                "start": start.isoformat(), "end": end.isoformat(), "spent": money_str(spend.spent),
                "percent": money_str(percent.quantize(Decimal("0.01"))), "events": spend.event_count,
                "unpriced_events": spend.unpriced_events, "thresholds_reached": hit,
                "alerts_sent": sorted(t for t in budget.thresholds if (budget.id, start, t) in sent_by),
                "state": "exceeded" if spend.spent >= budget.amount else ("warning" if hit else "ok"),
                "blocked": budget.enforcement is Enforcement.HARD and spend.spent >= budget.amount,
            },
        })
    return out
