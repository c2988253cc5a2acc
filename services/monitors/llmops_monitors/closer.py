"""Closing windows: when a window's end (plus `lateness_s`) has passed, its monitors are evaluated.

`WindowCloser.close_due()` is one pass, run every `close_interval_s` by the worker (and by tests with an
injected clock and a plain dict for the pane table). For each window spec, the windows that closed since
the last pass are summed from their 1-minute panes and evaluated in order of their end, one Postgres
transaction per window end:

    for each enabled monitor of the spec (its tenant's fine keys summed into its groups, plus the groups it
    has firing, which are evaluated in every window, with data or not):
        record the evaluation (monitor, group, window)    -- already there: evaluated before, skip
        lock the group's state, step it (evaluation.step)
        open a firing (unique per monitor, group, window) / resolve it
        put the alert message in the outbox

After the commit the messages are sent to the alerts topic and marked published (a crash in between
leaves them pending: the relay sends them). A pane is removed once every window over it has closed. After
a start or a rebalance the first pass goes back to the oldest pane in the table (recovered from its
changelog): a window evaluated before finds its evaluations recorded and decides nothing again; one that
was not (the crash came first) is evaluated now. So each firing is decided once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from llmops_monitors import metrics, panes
from llmops_monitors.evaluation import Monitor, State, alert_message, baseline_of, group_aggregates, read, step, utc
from llmops_monitors.settings import MonitorsSettings
from llmops_monitors.store import firings, outbox
from llmops_monitors.store import monitors as monitors_store
from llmops_monitors.windows import PANE_S, SPECS, WindowSpec
from llmops_shared.alerts import AlertMessage
from llmops_shared.config_changes import ConfigWatcher
from llmops_shared.worker import retry_transient

log = logging.getLogger("llmops_monitors.closer")

TableData = MutableMapping[Any, Any]  # (fine key, (start, end)) -> sparse vector: the pane table's store
DAY_S = 86_400


class MonitorCache:
    """The enabled monitors, reloaded when the `monitors` table changes (LISTEN/NOTIFY) or every `refresh_s`."""

    def __init__(self, pool: asyncpg.Pool, watcher: ConfigWatcher | None, *, refresh_s: float = 30.0) -> None:
        self.pool = pool
        self.watcher = watcher
        self.refresh_s = refresh_s
        self._stamp: tuple[int, ...] | None = None
        self._loaded_at = 0.0
        self._by_spec: dict[WindowSpec, list[Monitor]] = {}

    async def get(self) -> dict[WindowSpec, list[Monitor]]:
        stamp = self.watcher.stamp(["monitors"]) if self.watcher is not None else None
        if stamp != self._stamp or time.monotonic() - self._loaded_at > self.refresh_s or self._stamp is None:
            rows = await monitors_store.enabled_monitors(self.pool)
            by_spec: dict[WindowSpec, list[Monitor]] = {}
            for r in rows:
                m = Monitor.from_record(r)
                by_spec.setdefault(m.window, []).append(m)
            self._by_spec, self._stamp, self._loaded_at = by_spec, stamp, time.monotonic()
        return self._by_spec


class WindowCloser:
    """Closes windows over the pane table: `panes` maps (fine key, faust window range of a 1-minute pane) to
    a sparse vector; every window spec's window is the sum of the panes it covers. `forget` removes a pane
    once every window that covers it has closed (the worker also writes a changelog tombstone)."""

    def __init__(self, settings: MonitorsSettings, *, pool: asyncpg.Pool, producer: AIOKafkaProducer,
                 panes: TableData, monitors: MonitorCache, clock: Callable[[], float],
                 owns: Callable[[str], bool] = lambda _group: True,
                 forget: Callable[[Any], None] | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.producer = producer
        self.panes = panes
        self.monitors = monitors
        self.clock = clock
        self.owns = owns
        self.forget = forget or (lambda key: panes.pop(key, None))
        self.closed_through: dict[WindowSpec, int] = {}  # the last window end closed, per spec
        self.closed_windows = 0

    def reset(self) -> None:
        """After a rebalance: panes of partitions this worker just took may hold windows it passed already."""
        self.closed_through.clear()

    async def close_due(self) -> list[AlertMessage]:
        """One pass: evaluate every window that closed; returns the alert messages sent."""
        horizon = self.clock() - self.settings.lateness_s
        by_spec = await self.monitors.get()
        sent: list[AlertMessage] = []
        index: dict[int, list[Any]] | None = None
        for spec in SPECS:
            last = self.closed_through.get(spec)
            if last is not None and last + spec.step_s > horizon:
                continue  # nothing new closed for this spec
            if index is None:
                index = panes.index(self.panes)
            # Windows that ended before the table's expiry horizon have no panes left: never walked (an event
            # clock still at zero before the first event, then at the event's time, would walk from 1970).
            floor = int(horizon - self.settings.table_expires_s) - 1
            if last is None:  # first pass (start, rebalance): from the oldest pane there is
                last = min(index, default=int(horizon)) - 1
            last = max(last, floor)
            monitors = by_spec.get(spec, [])
            firing = await self._firing(monitors, horizon) if monitors else {}
            for end in sorted(set(spec.closing(last, horizon)) | set(firing)):
                window = panes.window_sum(self.panes, index, end - spec.size_s, end)
                if monitors and (window or firing.get(end)):
                    alerts = await self._evaluate(spec, end, window, monitors, firing.get(end, []))
                    sent += await self.publish([a.message_id for a in alerts])
                self.closed_windows += 1
                self.closed_through[spec] = max(self.closed_through.get(spec, end), end)
            self.closed_through.setdefault(spec, last)
        if index is not None and len(self.closed_through) == len(SPECS):
            done = min(self.closed_through.values()) - max(spec.size_s for spec in SPECS)
            for start in [s for s in index if s + PANE_S <= done]:  # every window over this pane closed
                for table_key in index[start]:
                    self.forget(table_key)
        return sent

    async def _firing(self, monitors: list[Monitor], horizon: float) -> dict[int, list[tuple[Monitor, str]]]:
        """The window ends at which firing groups are due (with data or not), from their last evaluated one."""
        by_id = {m.monitor_id: m for m in monitors}
        oldest = horizon - self.settings.table_expires_s
        out: dict[int, list[tuple[Monitor, str]]] = {}
        for r in await firings.firing_groups(self.pool, monitor_ids=list(by_id)):
            monitor = by_id[r["monitor_id"]]
            if not self.owns(r["group_key"]):
                continue
            last = r["last_window_end"].timestamp()
            for end in monitor.window.closing(int(max(last, oldest)), horizon):
                out.setdefault(end, []).append((monitor, r["group_key"]))
        return out

    async def _evaluate(self, spec: WindowSpec, end: int, window: Mapping[str, metrics.Agg],
                        monitors: Iterable[Monitor], firing: list[tuple[Monitor, str]]) -> list[AlertMessage]:
        window_end = utc(end)

        async def attempt() -> list[AlertMessage]:
            alerts: list[AlertMessage] = []
            async with self.pool.acquire() as conn, conn.transaction():
                for monitor in monitors:
                    groups = group_aggregates(monitor, window)
                    for m, group in firing:
                        if m.monitor_id == monitor.monitor_id and group not in groups:
                            groups[group] = metrics.empty()
                    for group, agg in sorted(groups.items()):
                        alert = await self._evaluate_group(conn, monitor, group, agg, window_end)
                        if alert is not None:
                            alerts.append(alert)
                await outbox.add(conn, alerts=alerts)
            return alerts

        # Retried while the database is unavailable (the window stays in its table meanwhile). Any other
        # error goes to the worker's loop, which logs it and tries the window again on its next pass:
        # nothing raises out of the loop, and no window is dropped unevaluated.
        return await retry_transient(attempt, stopping=None, max_delay_s=5.0, what="evaluate a window")

    async def _evaluate_group(self, conn: asyncpg.Connection, monitor: Monitor, group: str, agg: metrics.Agg,
                              window_end: datetime) -> AlertMessage | None:
        baseline = None
        if monitor.relative:
            days = int(monitor.condition.get("days", self.settings.baseline_days))
            previous = await firings.previous_values(
                conn, monitor_id=monitor.monitor_id, group_key=group,
                window_ends=[window_end - timedelta(days=d) for d in range(1, days + 1)],
                min_samples=monitor.min_samples)
            baseline = baseline_of(previous)
        reading = read(monitor, agg, baseline)
        if not await firings.record_evaluation(conn, monitor_id=monitor.monitor_id, group_key=group,
                                               window_end=window_end, value=reading.value, samples=reading.samples,
                                               breaching=reading.breaching):
            return None  # evaluated before (a window closed again after a restart)
        row = await firings.lock_state(conn, monitor_id=monitor.monitor_id, group_key=group,
                                       tenant_id=monitor.tenant_id, window_end=window_end)
        if row["last_window_end"] >= window_end:
            return None  # a later window was evaluated already
        state, transition = step(State(row["status"], row["clear_streak"]), reading.breaching, monitor.resolve_after)
        firing_id = row["firing_id"]
        alert = None
        if transition == "open":
            firing_id = await firings.open_firing(conn, monitor_id=monitor.monitor_id, tenant_id=monitor.tenant_id,
                                                  group_key=group, window_end=window_end, value=reading.value,
                                                  reference=reading.reference)
            assert firing_id is not None  # the evaluation row is new, so is the firing
            alert = alert_message(monitor, group, firing_id=firing_id, status="open", window_end=window_end,
                                  reading=reading)
        elif transition == "resolve" and firing_id is not None:
            await firings.resolve_firing(conn, firing_id=firing_id, window_end=window_end)
            alert = alert_message(monitor, group, firing_id=firing_id, status="resolved", window_end=window_end,
                                  reading=reading)
            firing_id = None
        await firings.save_state(conn, monitor_id=monitor.monitor_id, group_key=group, status=state.status,
                                 firing_id=firing_id, clear_streak=state.clear_streak, window_end=window_end)
        if alert is not None:
            log.info("monitor %s", "firing" if transition == "open" else "resolved", extra={
                "monitor_id": monitor.monitor_id, "tenant_id": monitor.tenant_id, "window_end": window_end.isoformat(),
                "value": reading.value, "reference": reading.reference})
        return alert

    async def publish(self, message_ids: list[str] | None, *, min_age_s: float = 0.0) -> list[AlertMessage]:
        """Claim pending outbox messages (these, or any older than `min_age_s`), send them, mark them published.
        A failure leaves them pending for the relay."""
        if message_ids is not None and not message_ids:
            return []
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await outbox.claim(conn, message_ids=message_ids, min_age_s=min_age_s)
                if not rows:
                    return []
                futures = [await self.producer.send(self.settings.alerts_topic, r["payload"].encode(),
                                                    key=r["fingerprint"].encode()) for r in rows]
                await asyncio.gather(*futures)
                await outbox.mark_published(conn, message_ids=[r["message_id"] for r in rows])
        except Exception as exc:
            log.warning("could not send alert messages; the relay sends them", extra={
                "error_type": type(exc).__name__})
            return []
        return [AlertMessage.model_validate_json(r["payload"]) for r in rows]
