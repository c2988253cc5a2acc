"""The months a batch writer asks partitions for (`partitions.window_sql`): each instant's UTC month, once, in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from llmops_shared.partitions import month_start, window_sql

NOW = datetime(2026, 12, 5, 8, tzinfo=UTC)
EAST, WEST = timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))


def months_in(sql: str) -> list[str]:
    array = sql.split("]::timestamptz[]", maxsplit=1)[0].removeprefix("ARRAY[")
    return [literal.split("'")[1] for literal in array.split(", ")]


def test_each_instant_counts_in_its_utc_month_once_and_in_order() -> None:
    instants = [
        datetime(2027, 1, 1, 3, 0, tzinfo=EAST),  # 2026-12-31 21:30 UTC: December
        datetime(2026, 11, 30, 20, 0, tzinfo=WEST),  # 2026-12-01 04:00 UTC: December
        datetime(2026, 11, 30, 15, 59, 59, 999_999, tzinfo=WEST),  # 23:59:59.999999 UTC: November
        datetime(2026, 12, 5, 7, 33, 6, 399_534, tzinfo=UTC),
        datetime(2024, 2, 29, 23, 0, tzinfo=WEST),  # 2024-03-01 07:00 UTC: March
        datetime(2027, 1, 1, 0, 0, tzinfo=UTC),
    ]
    assert months_in(window_sql(instants, now=NOW)) == [
        "2024-03-01T00:00:00+00:00", "2026-11-01T00:00:00+00:00", "2026-12-01T00:00:00+00:00",
        "2027-01-01T00:00:00+00:00"]
    # The same as `month_start` of each instant (what the writers asked for before, one `replace` an instant).
    assert months_in(window_sql(instants, now=NOW)) == [m.isoformat() for m in sorted({month_start(at)
                                                                                       for at in instants})]


def test_a_batch_of_one_month_asks_for_that_month_only() -> None:
    instants = [NOW - timedelta(minutes=i) for i in range(2_000)]
    assert months_in(window_sql(instants, now=NOW)) == ["2026-12-01T00:00:00+00:00"]
