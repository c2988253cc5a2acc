"""`llmops traces tail`: live spans in the terminal, one line each, for on-call.

    12:04:07.118  acme  support-bot  llm   chat         gpt-4o-mini  ok     812 ms   1200+210 tok  $0.00031  tr-9f/sp-2
    12:04:07.402  acme  support-bot  tool  lookup                    ERROR  timeout  ...            findings: EMAIL

`line` is pure (a stored span -> one line, coloured or not). `follow` polls the store for spans stored
since the last poll (with an overlap, since a transaction that began earlier may commit later: lines are
never printed twice, because the event ids of the overlap are remembered) and prints them oldest first.
It reads the database directly, as the operator's commands do; it shows no text, only metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from llmops_shared.clock import Clock
from llmops_traces.store import reads
from llmops_traces.views import money

RESET, RED, YELLOW, GREEN, DIM, BOLD = "\033[0m", "\033[31m", "\033[33m", "\033[32m", "\033[2m", "\033[1m"
OVERLAP = timedelta(seconds=10)
"""How far back each poll looks again: longer than a writer's transaction takes to commit."""


def _paint(text: str, colour: str, on: bool) -> str:
    return f"{colour}{text}{RESET}" if on else text


def line(span: Mapping[str, Any], *, colour: bool) -> str:
    """One span as a line of the tail."""
    at = span["occurred_at"].strftime("%H:%M:%S.%f")[:-3]
    latency = f"{span['latency_ms']:.0f} ms" if span["latency_ms"] is not None else "-"
    tokens = f"{span['input_tokens']}+{span['output_tokens']} tok"
    cost = span["cost_total"]
    status = span["status"]
    parts = [
        _paint(at, DIM, colour), span["tenant_id"], _paint(span["app_id"], BOLD, colour),
        f"{span['span_kind']:<9}", f"{(span['name'] or '-')[:24]:<24}", f"{(span['model'] or '-')[:28]:<28}",
        _paint("ERROR", RED, colour) if status == "error" else _paint("ok", GREEN, colour),
        (span["error_type"] or latency) if status == "error" else latency, tokens,
        f"${money(cost)}" if isinstance(cost, Decimal) else "$-", _paint(f"{span['trace_id']}/{span['span_id']}", DIM,
                                                                        colour),
    ]
    if span["finding_count"]:
        parts.append(_paint(f"findings: {', '.join(span['finding_types']) or span['finding_count']}", YELLOW, colour))
    return "  ".join(parts)


async def follow(pool: asyncpg.Pool, *, tenant_id: str | None, app_id: str | None, filters: dict[str, str],
                 out: Callable[[str], None], clock: Clock, colour: bool, since: timedelta, poll_s: float,
                 once: bool = False, stop: asyncio.Event | None = None, batch: int = 500) -> int:
    """Print spans as they are stored, until `stop` is set (or after one pass with `once`). Returns how
    many lines were printed."""
    after: datetime = clock() - since
    recent: deque[tuple[datetime, str]] = deque()
    seen: set[str] = set()
    printed = 0
    while True:
        rows = await reads.tail(pool, tenant_id=tenant_id, app_id=app_id, after_stored=after - OVERLAP,
                                filters=filters, limit=batch)
        for row in rows:
            if row["event_id"] in seen:
                continue
            out(line(row, colour=colour))
            printed += 1
            seen.add(row["event_id"])
            recent.append((row["stored_at"], row["event_id"]))
            after = max(after, row["stored_at"])
        while recent and recent[0][0] < after - 2 * OVERLAP:  # no poll looks that far back again
            seen.discard(recent.popleft()[1])
        if len(rows) == batch:
            continue  # more to come at once
        if once or (stop is not None and stop.is_set()):
            return printed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((stop or asyncio.Event()).wait(), poll_s)
