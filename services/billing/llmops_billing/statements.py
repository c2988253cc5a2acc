"""Monthly statements: a tenant's line items for one UTC month, adding up exactly to the ledger.

One line item per provider, model, price version, line (`input`, `cache_read`, `cache_write`, `output`,
`reasoning`, `request`) and unit price; `quantity x unit_price = amount` exactly for every item, and the
total (the sum of the items) equals `SUM(cost_total)` over the ledger for the month, read in one snapshot
(`store.usage.statement_records`). A statement where either would not hold is refused
(`StatementMismatch`, answered 500 and logged) rather than sent wrong.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from llmops_billing.cost import Line
from llmops_billing.money import EXACT, ZERO, money_str, round_money
from llmops_billing.store import usage as usage_store
from llmops_billing.usage_query import iso_utc
from llmops_shared.problems import Invalid

LINE_ORDER = {line.value: i for i, line in enumerate(Line)}


def cents(amount: Decimal) -> str:
    """An invoice figure: rounded half-even to cents, always with two decimals (`0.00`, not `0`)."""
    return format(round_money(amount, 2), "f")


def parse_month(text: str) -> date:
    """The first day of a `YYYY-MM` month; `Invalid` (the path's `month`) otherwise."""
    try:
        year, month = text.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError(text)
        return date(int(year), int(month), 1)
    except ValueError:
        raise Invalid("month", f"{text!r} is not a month like 2026-11", location="path") from None


class StatementMismatch(RuntimeError):
    """Line items do not add up to the ledger: never expected; the statement is refused rather than wrong."""

    def __init__(self, message: str, *, tenant_id: str, month: date) -> None:
        super().__init__(message)
        self.tenant_id = tenant_id
        self.month = f"{month.year:04d}-{month.month:02d}"


async def statement(conn: asyncpg.Connection, *, tenant_id: str, month: date,
                    now: datetime | None = None) -> dict[str, Any]:
    """The month's statement: line items (quantity x unit price = amount, exactly), and a total that
    equals SUM(cost_total) over the ledger for the month. Read in one repeatable-read snapshot."""
    now = now or datetime.now(UTC)
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = (start + timedelta(days=32)).replace(day=1)
    found = await usage_store.statement_records(conn, tenant_id=tenant_id, start=start, end=end)
    item_rows, totals, unpriced_rows = found.items, found.totals, found.unpriced
    items = []
    total = ZERO
    for r in sorted(item_rows, key=lambda r: (r["provider"], r["model_key"], r["price_version"],
                                              LINE_ORDER[r["line"]], r["unit_price"])):
        quantity, unit_price, amount = int(r["quantity"]), r["unit_price"], r["amount"]
        if r["line"] == Line.REQUEST.value and amount == 0:
            continue  # no per-request fee: not a line anyone needs to read
        if EXACT.multiply(Decimal(quantity), unit_price) != amount:
            raise StatementMismatch(f"{r['model_key']} {r['line']}: {quantity} x {unit_price} != {amount}",
                                    tenant_id=tenant_id, month=month)
        items.append({
            "provider": r["provider"], "model": r["model_key"], "price_version": r["price_version"],
            "line": r["line"], "quantity": quantity, "unit": "request" if r["line"] == "request" else "token",
            "unit_price": money_str(unit_price), "amount": money_str(amount),
            "amount_rounded": cents(amount), "events": int(r["events"]),
        })
        total = EXACT.add(total, amount)
    ledger_total = totals["ledger_total"]
    if total != ledger_total:
        raise StatementMismatch(f"line items add up to {total}, the ledger to {ledger_total}", tenant_id=tenant_id,
                                month=month)
    return {
        "tenant_id": tenant_id, "month": f"{month.year:04d}-{month.month:02d}", "currency": "USD",
        "period": {"from": iso_utc(start), "to": iso_utc(end)},
        "status": "closed" if end <= now else "open",
        "items": items,
        "total": money_str(total), "total_rounded": cents(total),
        "ledger_total": money_str(ledger_total),
        "events": int(totals["events"]), "unpriced_events": int(totals["unpriced_events"]),
        "input_tokens": int(totals["input_tokens"]), "output_tokens": int(totals["output_tokens"]),
        "unpriced": [
            {"provider": r["provider"], "model": r["model"], "reason": r["unpriced_reason"], "events": int(r["events"]),
             "input_tokens": int(r["input_tokens"]), "output_tokens": int(r["output_tokens"])}
            for r in unpriced_rows
        ],
    }
