"""Evaluating monitors over closed windows: pure.

When a window closes, each monitor of its spec is evaluated for each of its groups: the windows' vectors
of the fine keys (tenant, app, environment, model, prompt) are summed per monitor group (tenant, app and
the monitor's `group_by`), the metric is computed, compared with the threshold or the baseline, and the
(monitor, group) steps through its states:

    ok --breach--> firing (opens a firing: an `open` alert)
    firing --clear for `resolve_after` windows in a row--> ok (resolves it: a `resolved` alert)

A window with fewer than `min_samples` observations does not breach (it counts as clear). A relative
condition without any baseline (no history yet) does not breach either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from llmops_monitors import metrics
from llmops_monitors.observe import SEP, split_key
from llmops_monitors.windows import WindowSpec, parse_window
from llmops_shared.alerts import AlertMessage

_DIM_INDEX = {"environment": 2, "model": 3, "prompt": 4}


@dataclass(frozen=True)
class Monitor:
    monitor_id: int
    tenant_id: str
    name: str
    metric: str
    aggregation: str
    window: WindowSpec
    app_id: str | None
    group_by: tuple[str, ...]
    condition: Mapping[str, Any]
    min_samples: int
    severity: str
    channel_ids: tuple[int, ...]
    resolve_after: int

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> Monitor:
        return cls(r["monitor_id"], r["tenant_id"], r["name"], r["metric"], r["aggregation"],
                   parse_window(r["window_spec"]), r["app_id"], tuple(r["group_by"]), dict(r["condition"]),
                   r["min_samples"], r["severity"], tuple(r["channel_ids"]), r["resolve_after"])

    def group_of(self, fine_key: str) -> str | None:
        """The monitor's group of a fine key (None: not this monitor's tenant or app)."""
        parts = fine_key.split(SEP)
        if parts[0] != self.tenant_id or (self.app_id is not None and parts[1] != self.app_id):
            return None
        kept = [parts[0], parts[1]] + [parts[i] if d in self.group_by else "*" for d, i in _DIM_INDEX.items()]
        return SEP.join(kept)

    @property
    def relative(self) -> bool:
        return self.condition.get("baseline") is not None


def group_aggregates(monitor: Monitor, windows: Mapping[str, metrics.Agg]) -> dict[str, metrics.Agg]:
    """Fine key -> vector, summed into the monitor's groups."""
    out: dict[str, metrics.Agg] = {}
    for key, agg in windows.items():
        group = monitor.group_of(key)
        if group is not None:
            out[group] = metrics.add(out.get(group), agg)
    return out


@dataclass(frozen=True)
class Reading:
    value: float | None
    samples: float
    reference: float | None  # the threshold, or factor x baseline; None: no baseline yet
    breaching: bool


def read(monitor: Monitor, agg: Sequence[float], baseline: float | None = None) -> Reading:
    """The monitor's metric over one group's window, and whether it breaches."""
    value = metrics.value(monitor.metric, monitor.aggregation, agg)
    samples = metrics.samples(monitor.metric, agg)
    cond = monitor.condition
    if monitor.relative:
        reference = None if baseline is None else float(cond.get("factor", 1.0)) * baseline
    else:
        reference = float(cond["threshold"])
    breaching = (value is not None and reference is not None and samples >= monitor.min_samples
                 and compare(cond["op"], value, reference))
    return Reading(value, samples, reference, breaching)


def compare(op: str, value: float, reference: float) -> bool:
    return {">": value > reference, ">=": value >= reference, "<": value < reference, "<=": value <= reference}[op]


def baseline_of(values: Iterable[float | None]) -> float | None:
    """The mean of the previous days' values (those that had one); None without any."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


@dataclass(frozen=True)
class State:
    status: Literal["ok", "firing"] = "ok"
    clear_streak: int = 0


Transition = Literal["open", "resolve"] | None


def step(state: State, breaching: bool, resolve_after: int) -> tuple[State, Transition]:
    """The next state of a (monitor, group) after one window, and what it sends."""
    if state.status == "ok":
        return (State("firing", 0), "open") if breaching else (State("ok", 0), None)
    if breaching:
        return State("firing", 0), None
    streak = state.clear_streak + 1
    if streak >= resolve_after:
        return State("ok", 0), "resolve"
    return State("firing", streak), None


def fingerprint(monitor: Monitor, group: str) -> str:
    """The alert group: one per (monitor, group). PagerDuty's dedup_key, so a resolve closes its incident."""
    digest = hashlib.sha256(group.encode()).hexdigest()[:16]
    return f"monitors:{monitor.monitor_id}:{digest}"


def alert_message(monitor: Monitor, group: str, *, firing_id: int, status: Literal["open", "resolved"],
                  window_end: datetime, reading: Reading) -> AlertMessage:
    """The message the notifier delivers; ids and numbers only."""
    parts = split_key(group)
    labels = ", ".join(f"{d}={parts[d] or '-'}" for d in monitor.group_by)
    where = f"{parts['app_id']}" + (f" ({labels})" if labels else "")
    shown = "no data" if reading.value is None else f"{reading.value:.6g}"
    op = monitor.condition["op"]
    reference = "no baseline" if reading.reference is None else f"{reading.reference:.6g}"
    metric = f"{monitor.metric} {monitor.aggregation}"
    if status == "open":
        title = f"{monitor.name}: {metric} {shown} {op} {reference} on {where}"
    else:
        title = f"{monitor.name} resolved on {where}: {metric} {shown}"
    return AlertMessage(
        alert_id=f"monitor:{monitor.monitor_id}:firing:{firing_id}", source="monitors", tenant_id=monitor.tenant_id,
        app_id=parts["app_id"], rule=monitor.name[:200], detector=monitor.metric, severity=monitor.severity,
        fingerprint=fingerprint(monitor, group), status=status, title=title[:300],
        summary=(f"{metric} over the {monitor.window.name} window ending {window_end.isoformat()}: {shown} "
                 f"({reading.samples:g} samples; condition {op} {reference})"),
        occurred_at=window_end, count=1,
        details={"monitor_id": monitor.monitor_id, "firing_id": firing_id, "group": parts,
                 "window": monitor.window.name, "window_end": window_end.isoformat(), "value": reading.value,
                 "reference": reading.reference, "samples": reading.samples,
                 "channel_ids": list(monitor.channel_ids)})


def utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)
