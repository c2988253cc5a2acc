"""A pane's value in the pane table: its aggregate and, per origin, the highest offset applied: pure.

    {"v": {"<index>": value, ...}, "o": {"<origin>": offset, ...}}

`v` is the sparse window vector (`metrics.Stored`); `o` maps an origin (a source topic's code and partition,
`observe.Observation.origin`) to the highest offset of it whose observation this pane counted. Both are in
the one value, so in one changelog record: a pane recovered after a crash has exactly the counts its marks
say it has. An observation at or below its origin's mark was counted already (a source message
redelivered after a crash, observed again) and is skipped. That is exact because a pane sees each origin's
observations in offset order with nothing missing below a mark: an origin is one source partition, read in
order by one route agent at a time; a batch's observations for one observations partition travel as one
message, whole or not at all, and the next batch is sent only after the broker acknowledged the last one;
after a crash the source is read again from its committed offset, below which everything had been sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmops_monitors import metrics
from llmops_monitors.observe import Observation
from llmops_monitors.windows import PANE_S, table_window_start

PaneValue = dict[str, dict[str, float]]


def vector(value: PaneValue | metrics.Stored | None) -> metrics.Stored:
    """A pane value's sparse vector (a bare vector is a pane written before the marks)."""
    if not value:
        return {}
    if "v" in value and isinstance(value["v"], dict):
        return value["v"]
    return value  # type: ignore[return-value]


class Working:
    """A batch's panes being updated: a copy of each touched pane, written back once per batch (`values`)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.panes: dict[Any, tuple[metrics.Stored, dict[str, float]]] = {}

    def apply(self, pane: Any, obs: Observation) -> bool:
        """Add `obs` to `pane` unless its origin's mark says it is counted already; True if added."""
        work = self.panes.get(pane)
        if work is None:
            stored = self.table.get(pane)
            marks = dict(stored["o"]) if stored and isinstance(stored.get("o"), dict) else {}
            work = self.panes[pane] = (dict(vector(stored)), marks)
        v, marks = work
        if obs.origin:
            if obs.offset <= marks.get(obs.origin, -1):
                return False
            marks[obs.origin] = obs.offset
        for i, x in obs.delta.items():
            k = str(i)
            v[k] = v.get(k, 0.0) + x
        return True

    def values(self) -> dict[Any, PaneValue]:
        return {pane: {"v": v, "o": marks} for pane, (v, marks) in self.panes.items()}


def apply(value: PaneValue | None, obs: Observation) -> PaneValue:
    """One observation into one pane value (a new value; unchanged content if it was counted already)."""
    working = Working({0: value} if value else {})
    working.apply(0, obs)
    return working.values()[0]


def index(table: Mapping[Any, Any]) -> dict[int, list[Any]]:
    """Pane start -> the table keys (fine key, faust window range) of its panes."""
    out: dict[int, list[Any]] = {}
    for item in list(table.keys()):
        out.setdefault(table_window_start(item[1]), []).append(item)
    return out


def window_sum(table: Mapping[Any, Any], by_start: Mapping[int, list[Any]], start: int, end: int
               ) -> dict[str, metrics.Agg]:
    """Fine key -> the window [start, end) summed over its panes (`by_start`: `index(table)`). Exact for every
    aggregate: each is a sum (counts, token and cost sums, the latency histogram's bucket counts, score sums),
    an event is in exactly one pane, and every window's bounds are pane bounds."""
    out: dict[str, metrics.Agg] = {}
    for pane in range(start, end, PANE_S):
        for table_key in by_start.get(pane, ()):
            value = table.get(table_key)
            if value is not None:
                out[table_key[0]] = metrics.add(out.get(table_key[0]), metrics.dense(vector(value)))
    return out
