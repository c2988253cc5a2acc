"""What the charts draw, pure: service answers in, uPlot's data out (`[xs, ys_1, ys_2, ...]`, x in Unix
seconds, a missing point `None`), with the series' labels. The page embeds it as JSON; `console.js` draws it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
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
