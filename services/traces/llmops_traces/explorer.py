"""What the query API answers, one function per question: the store's rows shaped by `views`.

Every function reads one tenant's data, from the tenant's retention cutoff on (`visible_from`, computed
by the caller from `retention.visible_from`). Another tenant's trace or session is not found, exactly
like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from llmops_shared.problems import NotFound
from llmops_traces.query import ListQuery, next_cursor
from llmops_traces.store import joined, reads, spans
from llmops_traces.views import iso, row_view, span_view, tree

KEPT_ELSEWHERE = (
    {"store": "billing usage_ledger", "keeps": "token counts, cost and the user id of each billed event (no text), "
     "for statements; its retention is LLMOPS_RETENTION_USAGE_LEDGER_DAYS (for good by default)"},
    {"store": "guardrail_findings", "keeps": "finding types, rules and value hashes (never values), 90 days"},
    {"store": "evaluation_results and human_feedback", "keeps": "judge scores and reasoning over redacted text, "
     "people's feedback, 180 days"},
    {"store": "trace metrics rollups", "keeps": "counts, tokens and latency histograms per app, model and minute "
     "or hour (no user, no text)"},
    {"store": "Kafka", "keeps": "the events themselves until the topics' retention: llm.interactions.raw 72 h "
     "(raw text), llm.interactions.clean 7 days (redacted)"},
    {"store": "trace_erasures", "keeps": "the erased trace or user id and the time, so that a redelivered span "
     "is not stored again"},
)


def _page(query: ListQuery, records: list[asyncpg.Record], key: Callable[[asyncpg.Record], list[Any]],
          shape: Callable[[asyncpg.Record], dict[str, Any]]) -> dict[str, Any]:
    """A page of `query.limit` rows (the query fetched one more: it says there is a next page) and the
    cursor after the last one, whose sort key is `key(row)`."""
    rows = records[:query.limit]
    cursor = next_cursor(query, key(rows[-1])) if len(records) > query.limit and rows else None
    return {"items": [shape(r) for r in rows], "next_cursor": cursor, "from": iso(query.start), "to": iso(query.end)}


def _or_minus_one(value: Any) -> Any:
    """The keysets compare coalesce(value, -1): a null cost or count sorts below every real one."""
    return -1 if value is None else value


async def span_page(db: asyncpg.Pool, query: ListQuery) -> dict[str, Any]:
    records = await reads.span_page(db, query)

    def key(r: asyncpg.Record) -> list[Any]:
        tail = [r["occurred_at"], r["event_id"]]
        return tail if query.sort == "time" else [r["sort_key"], *tail]

    return _page(query, records, key, lambda r: span_view(r, query.fields))


async def trace_page(db: asyncpg.Pool, query: ListQuery) -> dict[str, Any]:
    column = {"time": "started_at", "latency": "duration_ms", "cost": "cost_total"}[query.sort]
    read = reads.summary_trace_page if reads.summarised(query) else reads.trace_page
    return _page(query, await read(db, query), lambda r: [_or_minus_one(r[column]), r["trace_id"]], row_view)


async def session_page(db: asyncpg.Pool, query: ListQuery) -> dict[str, Any]:
    column = {"time": "last_at", "cost": "cost_total", "spans": "span_count"}[query.sort]
    return _page(query, await reads.session_page(db, query),
                 lambda r: [_or_minus_one(r[column]), r["session_id"]], row_view)


async def trace_detail(db: asyncpg.Pool, *, tenant_id: str, trace_id: str, since: datetime, max_spans: int,
                       groups: frozenset[str]) -> dict[str, Any]:
    """The span tree of one trace, each span with its cost line items, findings, scores and feedback."""
    records = await reads.trace_spans(db, tenant_id=tenant_id, trace_id=trace_id, since=since,
                                      limit=max_spans + 1, io="io" in groups)
    if not records:
        raise NotFound("no such trace")
    truncated = len(records) > max_spans
    records = records[:max_spans]
    ids = [r["event_id"] for r in records]
    costs = await joined.cost_lines(db, tenant_id=tenant_id, keys=[(r["event_id"], r["occurred_at"]) for r in records])
    found = await joined.findings(db, tenant_id=tenant_id, event_ids=ids)
    judged = await joined.scores(db, tenant_id=tenant_id, event_ids=ids)
    rated = await joined.feedback(db, tenant_id=tenant_id, event_ids=ids)
    views = []
    for record in records:
        view = span_view(record, groups)
        event_id = record["event_id"]
        view["cost_lines"] = [row_view(c) for c in costs.get(event_id, [])]
        view["findings"] = found.get(event_id, [])
        view["scores"] = judged.get(event_id, [])
        view["feedback"] = [row_view(f) for f in rated.get(event_id, [])]
        views.append(view)
    scores = [s["score"] for v in views for s in v["scores"] if s["score"] is not None]
    costs_total = [r["cost_total"] for r in records if r["cost_total"] is not None]
    return {
        "trace_id": trace_id, "span_count": len(views), "truncated": truncated,
        "started_at": iso(min(r["occurred_at"] for r in records)),
        "cost_total": row_view({"c": sum(costs_total)})["c"] if costs_total else None,
        "error_count": sum(r["status"] == "error" for r in records),
        "finding_count": sum(len(v["findings"]) for v in views),
        "lowest_score": min(scores) if scores else None,
        "spans": tree(views),
    }


async def traces_of_events(db: asyncpg.Pool, *, tenant_id: str, keys: list[tuple[Any, datetime]],
                           since: datetime) -> list[dict[str, Any]]:
    """The tenant's traces that hold these events (an alert's, a score's), from its retention cutoff on."""
    if not keys:
        return []
    return [row_view(r) for r in await reads.traces_of_events(db, tenant_id=tenant_id, keys=keys, since=since)]


async def session_detail(db: asyncpg.Pool, *, tenant_id: str, session_id: str, since: datetime,
                         max_traces: int) -> dict[str, Any]:
    records = await reads.session_traces(db, tenant_id=tenant_id, session_id=session_id, since=since,
                                         limit=max_traces + 1)
    if not records:
        raise NotFound("no such session")
    return {"session_id": session_id, "truncated": len(records) > max_traces,
            "traces": [row_view(r) for r in records[:max_traces]]}


async def user_summary(db: asyncpg.Pool, *, tenant_id: str, user_id: str, start: datetime,
                       end: datetime) -> dict[str, Any]:
    apps = [row_view(r) for r in await reads.user_summary(db, tenant_id=tenant_id, user_id=user_id, start=start,
                                                          end=end)]
    if not apps:
        raise NotFound("no spans of this user in this range")
    return {"user_id": user_id, "from": iso(start), "to": iso(end), "apps": apps,
            "span_count": sum(a["span_count"] for a in apps),
            "first_at": min(a["first_at"] for a in apps), "last_at": max(a["last_at"] for a in apps)}


async def erase(db: asyncpg.Pool, *, tenant_id: str, kind: str, subject: str, now: datetime) -> dict[str, Any]:
    """Delete the spans of one trace or one user, and say what other stores keep."""
    async with db.acquire() as conn, conn.transaction():
        removed = await spans.erase(conn, tenant_id=tenant_id, kind=kind, subject=subject, erased_before=now)
    if kind == "trace" and removed == 0:
        raise NotFound("no such trace")
    return {kind + "_id": subject, "removed": {"spans": removed}, "erased_before": iso(now),
            "kept_elsewhere": list(KEPT_ELSEWHERE)}
