"""The budget days a batch touches (`worker._touched`): each priced row's tenant, app and UTC day, as a midnight."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from llmops_billing.ledger import LedgerRow, ledger_row
from llmops_billing.worker import _touched
from llmops_shared.contract import Interaction
from tests.support.events import make_event
from tests.unit.billing.test_ledger import CATALOGUE, PRICED_AT


def row(occurred_at: datetime, *, app: str = "app-1", tenant: str = "t1", unpriced: bool = False) -> LedgerRow:
    made = ledger_row(Interaction.model_validate({**make_event(occurred_at=occurred_at.isoformat(), app_id=app,
                                                               model="gpt-4o-mini", provider="openai"),
                                                  "tenant_id": tenant}), CATALOGUE, priced_at=PRICED_AT)
    assert made is not None
    return replace(made, unpriced=unpriced)


def test_each_priced_row_touches_its_tenant_app_and_utc_day_as_a_utc_midnight() -> None:
    east, west = timezone(timedelta(hours=9)), timezone(timedelta(hours=-7))
    rows = [
        row(datetime(2026, 11, 25, 3, 0, tzinfo=east)),  # 2026-11-24 18:00 UTC
        row(datetime(2026, 11, 24, 20, 0, tzinfo=west)),  # 2026-11-25 03:00 UTC
        row(datetime(2026, 11, 24, 23, 59, 59, 999_999, tzinfo=UTC)),
        row(datetime(2026, 11, 24, 0, 0, tzinfo=UTC), app="app-2"),
        row(datetime(2026, 11, 24, 12, 0, tzinfo=UTC), tenant="t2"),
        row(datetime(2026, 11, 26, 12, 0, tzinfo=UTC), unpriced=True),  # not priced: no budget spend
    ]
    day = datetime(2026, 11, 24, tzinfo=UTC)
    touched = _touched(rows)
    assert touched == {("t1", "app-1", day), ("t1", "app-1", day + timedelta(days=1)), ("t1", "app-2", day),
                       ("t2", "app-1", day)}
    assert all(at.tzinfo is UTC and at.utcoffset() == timedelta(0) for _, _, at in touched)
    # What the set held before it was built from dates first (a `replace` of each row's time).
    assert touched == {(r.tenant_id, r.app_id, r.occurred_at.astimezone(UTC).replace(hour=0, minute=0, second=0,
                                                                                      microsecond=0))
                       for r in rows if not r.unpriced}
