"""What the charts draw, pure: service answers in, uPlot's data out (`[xs, ys_1, ys_2, ...]`, x in Unix
seconds, a missing point `None`), with the series' labels. The page embeds it as JSON; `console.js` draws it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def pivot(rows: Iterable[Mapping[str, Any]], *, x: str, group: str, value: str) -> dict[str, Any]:
    """Rows with an instant `x`, a group and a value, as one series per group (sorted by name) over the
    union of instants; a group without a row at an instant has `None` there."""
    cells: dict[tuple[int, str], float] = {}
    for row in rows:
        if row.get(value) is None:
            continue
        key = (_epoch(str(row[x])), str(row.get(group) or "(none)"))
        cells[key] = cells.get(key, 0.0) + float(row[value])
    xs = sorted({k[0] for k in cells})
    names = sorted({k[1] for k in cells})
    return {"labels": names, "data": [xs, *[[cells.get((t, n)) for t in xs] for n in names]]}


def series(points: Iterable[Mapping[str, Any]], *, x: str, values: Mapping[str, str]) -> dict[str, Any]:
    """Points with an instant `x` as one series per entry of `values` (label -> field)."""
    ordered = sorted(points, key=lambda p: _epoch(str(p[x])))
    return {"labels": list(values),
            "data": [[_epoch(str(p[x])) for p in ordered],
                     *[[None if p.get(f) is None else float(p[f]) for p in ordered] for f in values.values()]]}


def totals(rows: Iterable[Mapping[str, Any]], *, group: str, value: str) -> list[tuple[str, float]]:
    """Each group's sum, largest first (the table under a chart)."""
    out: dict[str, float] = {}
    for row in rows:
        name = str(row.get(group) or "(none)")
        out[name] = out.get(name, 0.0) + float(row.get(value) or 0)
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True, slots=True)
class Ranked:
    """A group of a ranking: its `label` as pages show it, its `stored` value (as billing's queries take it:
    '' for no user or no tag) and its value."""

    label: str
    stored: str
    value: float


def ranked(rows: Iterable[Mapping[str, Any]], *, group: str, value: str) -> list[Ranked]:
    """One row per group (a usage query without buckets; money as decimal text), largest exact value first,
    ties by the stored value: the order in which billing ranks a top query's groups (in a database of the C
    collation), so a page's first N rows are the groups billing's top N would name."""
    def key(row: Mapping[str, Any]) -> tuple[Decimal, str]:
        return -Decimal(str(row.get(value) or 0)), str(row.get(group) or "")

    return [Ranked(str(row.get(group) or "(none)"), str(row.get(group) or ""), float(row.get(value) or 0))
            for row in sorted(rows, key=key)]


def waterfall(roots: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A span tree (the trace store's `tree`) as rows in depth-first order, each with its `depth` and its bar:
    `offset_pct` and `width_pct` of the trace's time, from the first start to the last end."""
    flat: list[tuple[int, Mapping[str, Any]]] = []

    def walk(nodes: Iterable[Mapping[str, Any]], depth: int) -> None:
        for node in nodes:
            flat.append((depth, node))
            walk(node.get("children") or [], depth + 1)

    walk(roots, 0)
    if not flat:
        return []
    starts = [_epoch_ms(n["occurred_at"]) for _, n in flat]
    ends = [s + float(n.get("latency_ms") or 0) for s, (_, n) in zip(starts, flat, strict=True)]
    first, span = min(starts), max(max(ends) - min(starts), 1.0)
    return [{"depth": depth, "span": node, "offset_pct": round((start - first) * 100 / span, 2),
             "width_pct": max(round((end - start) * 100 / span, 2), 0.5)}
            for (depth, node), start, end in zip(flat, starts, ends, strict=True)]


def _epoch_ms(text: str) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp() * 1000


def interval(low: float, high: float, point: float) -> dict[str, float]:
    """A 95% interval drawn on its own axis, which always shows zero (no difference): the positions, in percent
    of the axis, of the interval's ends, the point estimate and zero. The axis spans them all, 10% wider."""
    lo, hi = min(low, high, point, 0.0), max(low, high, point, 0.0)
    pad = (hi - lo) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad

    def at(value: float) -> float:
        return round((value - lo) * 100 / (hi - lo), 2)

    return {"low": at(min(low, high)), "high": at(max(low, high)), "point": at(point), "zero": at(0.0)}


def diff_lines(lines: Iterable[str]) -> list[tuple[str, str]]:
    """A unified diff's lines, each with its kind: `meta` (the file names), `hunk`, `add`, `del` or `same`."""
    out: list[tuple[str, str]] = []
    for line in lines:
        if line.startswith(("+++", "---")):
            kind = "meta"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        out.append((kind, line))
    return out


def fold_others(rows: Iterable[Mapping[str, Any]], *, group: str, keep: set[str]) -> list[dict[str, Any]]:
    """Rows whose group is not in `keep` relabelled `(others)`, so a chart has a few series."""
    return [{**row, group: row.get(group) if str(row.get(group) or "(none)") in keep else "(others)"}
            for row in rows]


def burn_down(rows: Iterable[Mapping[str, Any]], *, amount: float, start: datetime, end: datetime,
              step: timedelta, until: datetime) -> dict[str, Any]:
    """A budget's burn-down from its period's cost per bucket (`bucket`, `cost_total`, buckets `step` long):
    what is left at the end of each bucket that has begun by `until` (at the period's start, the whole
    amount; a bucket without cost leaves it as it was), and the even pace: the amount at the start to zero
    at the end (two points; the chart joins them)."""
    cost = {_epoch(str(r["bucket"])): float(r.get("cost_total") or 0) for r in rows}
    first, last, width = int(start.timestamp()), int(min(until, end).timestamp()), int(step.total_seconds())
    left, spent = {first: amount}, 0.0
    for bucket in range(first, max(last, first + 1), width):
        spent += cost.get(bucket, 0.0)
        left[bucket + width] = amount - spent
    pace = {first: amount, int(end.timestamp()): 0.0}
    xs = sorted(set(left) | set(pace))
    return {"labels": ["left", "even pace"], "data": [xs, [left.get(x) for x in xs], [pace.get(x) for x in xs]]}


def spend_windows(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """The overview's cost comparisons, each `[start, end)` in UTC, cut at the next whole hour after `now`:
    `today` so far, `yesterday_so_far` (to the same hour), all of `yesterday`, the `month` so far and
    `last_month_so_far` (as many days and hours into last month, at most all of it)."""
    utc = now.astimezone(UTC)
    cut = utc.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    day = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    last_month = (month - timedelta(days=1)).replace(day=1)
    return {"today": (day, cut), "yesterday_so_far": (day - timedelta(days=1), cut - timedelta(days=1)),
            "yesterday": (day - timedelta(days=1), day), "month": (month, cut),
            "last_month_so_far": (last_month, min(last_month + (cut - month), month))}


def change(now: float, before: float) -> float | None:
    """The relative change from `before` to `now` (0.25: 25% more); None when there was nothing before."""
    return None if before == 0 else (now - before) / before
