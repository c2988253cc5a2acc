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
from llmops_billing.store import budgets as budget_store
from llmops_billing.store import outbox
from llmops_shared.problems import NotFound

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


def _budget(record: Mapping[str, Any]) -> Budget:
    """A `Budget` from a `store.budgets` record."""
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


async def period_spend(conn: asyncpg.Connection | asyncpg.Pool,
                       pairs: Sequence[tuple[Budget, datetime]]) -> list[PeriodSpend]:
    """Spend of each (budget, period start), from the daily rollup (UTC days tile UTC periods exactly)."""
    bounds = [period_bounds(b.period, start) for b, start in pairs]
    spends = await budget_store.period_spend(conn, periods=[
        (b.tenant_id, b.app_id, _date(start), _date(end)) for (b, _), (start, end) in zip(pairs, bounds, strict=True)])
    return [PeriodSpend(*spend) for spend in spends]


def _date(at: datetime) -> date:
    return at.astimezone(UTC).date()


async def evaluate_touched(conn: asyncpg.Connection, touched: Iterable[tuple[str, str, datetime]], *,
                           now: datetime, max_age: timedelta) -> list[Alert]:
    """New threshold crossings caused by events of (tenant, app, occurred_at) `touched` (see the module
    docstring); the caller's transaction must already hold those events' rollups."""
    touched = set(touched)
    if not touched:
        return []
    budgets = [_budget(r) for r in await budget_store.active_budgets(conn, tenant_ids={t for t, _a, _at in touched})]
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
    await budget_store.lock_for_evaluation(conn, budget_ids=[b.id for b, _ in pairs])
    spends = await period_spend(conn, pairs)
    candidates: list[tuple[Budget, datetime, int, PeriodSpend]] = []
    for (budget, start), spend in zip(pairs, spends, strict=True):
        for threshold in reached(spend.spent, budget.amount, budget.thresholds):
            candidates.append((budget, start, threshold, spend))
    if not candidates:
        return []
    new = await budget_store.record_crossings(conn, crossings=[
        (budget.id, start, threshold, spend.spent, budget.amount) for budget, start, threshold, spend in candidates])
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


async def list_budgets(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str,
                       include_archived: bool = False) -> list[Budget]:
    records = await budget_store.list_budgets(conn, tenant_id=tenant_id, include_archived=include_archived)
    return [_budget(r) for r in records]


async def get_budget(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str, budget_id: int) -> Budget:
    """The tenant's budget (active or archived); `NotFound` otherwise (another tenant's included)."""
    record = await budget_store.get_budget(conn, tenant_id=tenant_id, budget_id=budget_id)
    if record is None:
        raise NotFound("no such budget")
    return _budget(record)


async def create_budget(conn: asyncpg.Connection, *, tenant_id: str, app_id: str, period: Period,
                        amount: Decimal, thresholds: Sequence[int], enforcement: Enforcement,
                        name: str) -> Budget:
    """A new active budget; `Conflict` when one exists for this tenant, app and period."""
    return _budget(await budget_store.insert_budget(
        conn, tenant_id=tenant_id, app_id=app_id, period=period.value, amount=validate_amount(amount),
        thresholds=validate_thresholds(thresholds), enforcement=enforcement.value, name=name))


async def update_budget(conn: asyncpg.Connection, *, tenant_id: str, budget_id: int,
                        amount: Decimal | None = None, thresholds: Sequence[int] | None = None,
                        enforcement: Enforcement | None = None, name: str | None = None) -> Budget:
    """Change what is given of an active budget; `NotFound` when the tenant has no such active budget."""
    record = await budget_store.update_budget(
        conn, tenant_id=tenant_id, budget_id=budget_id, amount=None if amount is None else validate_amount(amount),
        thresholds=None if thresholds is None else validate_thresholds(thresholds),
        enforcement=None if enforcement is None else enforcement.value, name=name)
    if record is None:
        raise NotFound("no such active budget")
    return _budget(record)


async def archive_budget(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str, budget_id: int) -> None:
    """Archive an active budget; `NotFound` when the tenant has no such active budget."""
    if not await budget_store.archive_budget(conn, tenant_id=tenant_id, budget_id=budget_id):
        raise NotFound("no such active budget")


async def add_budget(conn: asyncpg.Connection, *, tenant_id: str, app_id: str, period: Period, amount: Decimal,
                     thresholds: Sequence[int], enforcement: Enforcement, name: str,
                     now: datetime) -> dict[str, Any]:
    """Create a budget and evaluate its current period at once, in one transaction (a budget created below
    what is already spent alerts now: the alert goes to the outbox, the worker's relay sends it); the
    budget with its status."""
    async with conn.transaction():
        created = await create_budget(conn, tenant_id=tenant_id, app_id=app_id, period=period, amount=amount,
                                      thresholds=thresholds, enforcement=enforcement, name=name)
        await outbox.add(conn, alerts=await evaluate_current(conn, created, now=now))
        return (await budget_status(conn, [created], now=now))[0]


async def change_budget(conn: asyncpg.Connection, *, tenant_id: str, budget_id: int, amount: Decimal | None,
                        thresholds: Sequence[int] | None, enforcement: Enforcement | None, name: str | None,
                        now: datetime) -> dict[str, Any]:
    """`update_budget`, then its current period evaluated again (as `add_budget`); the budget with its status."""
    async with conn.transaction():
        updated = await update_budget(conn, tenant_id=tenant_id, budget_id=budget_id, amount=amount,
                                      thresholds=thresholds, enforcement=enforcement, name=name)
        await outbox.add(conn, alerts=await evaluate_current(conn, updated, now=now))
        return (await budget_status(conn, [updated], now=now))[0]


async def budget_status(conn: asyncpg.Connection | asyncpg.Pool, budgets: Sequence[Budget], *,
                        now: datetime) -> list[dict[str, Any]]:
    """Each budget with its current period's spend, the thresholds reached and whether it blocks."""
    pairs = [(b, period_bounds(b.period, now)[0]) for b in budgets]
    spends = await period_spend(conn, pairs)
    sent_by = await budget_store.crossings_recorded(conn, budget_ids=[b.id for b in budgets])
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


async def tenant_budget_status(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str, now: datetime,
                               include_archived: bool = False) -> list[dict[str, Any]]:
    """The tenant's budgets (active ones, or all), each with its status."""
    found = await list_budgets(conn, tenant_id=tenant_id, include_archived=include_archived)
    return await budget_status(conn, found, now=now)


async def budget_with_status(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str, budget_id: int,
                             now: datetime) -> dict[str, Any]:
    """One of the tenant's budgets with its status; `NotFound` otherwise."""
    found = await get_budget(conn, tenant_id=tenant_id, budget_id=budget_id)
    return (await budget_status(conn, [found], now=now))[0]
