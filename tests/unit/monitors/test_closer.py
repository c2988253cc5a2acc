"""The window closer's walk over window ends, without monitors (so without Postgres): bounded by the pane
table's expiry however far its clock jumps."""

from __future__ import annotations

from typing import Any

from llmops_monitors.closer import WindowCloser
from llmops_monitors.evaluation import Monitor
from llmops_monitors.settings import MonitorsSettings
from llmops_monitors.windows import SPECS, WindowSpec

T = 1_796_299_800.0


class NoMonitors:
    async def get(self) -> dict[WindowSpec, list[Monitor]]:
        return {}


def closer(now: list[float], panes: dict[Any, Any] | None = None) -> WindowCloser:
    settings = MonitorsSettings(lateness_s=0.0, table_expires_s=7200.0)
    return WindowCloser(settings, pool=None, producer=None, panes={} if panes is None else panes,
                        monitors=NoMonitors(), clock=lambda: now[0])  # type: ignore[arg-type]


async def test_an_event_clock_that_jumps_from_zero_walks_only_the_windows_the_table_can_still_hold() -> None:
    """The worker's event clock is 0 until its first event (an empty table, a fresh start); its first event
    then moves it to today. The closer walked every window end since 1970 (72 million, 91 s with the event
    loop blocked, the worker's heartbeats with it) and the monitors kill test timed out."""
    now = [0.0]
    c = closer(now)
    await c.close_due()
    now[0] = T + 61
    await c.close_due()
    most = sum(int(7200 // spec.step_s) + 1 for spec in SPECS)
    assert 0 < c.closed_windows <= most
    assert c.closed_through[WindowSpec(60, 60)] == T + 60


async def test_the_first_pass_starts_at_the_oldest_pane_and_later_passes_where_the_last_ended() -> None:
    now = [T + 30]
    pane = ("t\x1fapp\x1f", (T - 600, T - 600 + 59.9))
    c = closer(now, {pane: {"v": {}, "o": {}}})
    await c.close_due()
    assert c.closed_through[WindowSpec(60, 60)] == T  # T - 540 ... T: from the oldest pane's window on
    assert c.closed_windows >= 10
    before = c.closed_windows
    now[0] = T + 90
    await c.close_due()
    # the 1-minute and the 5-minute-every-minute windows that end at T + 60
    assert c.closed_windows - before == 2 and c.closed_through[WindowSpec(60, 60)] == T + 60
