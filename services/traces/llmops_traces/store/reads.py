"""The read side of `trace_spans`: span pages, trace and session rows, a trace's spans, user summaries.

Every statement is scoped to one tenant (its first parameter) and a time range that the caller already cut
at the tenant's retention (`retention.visible_from`). A span's cost is billing's (`usage_ledger`, by its
key (event_id, occurred_at)); a judge score filter reads `evaluation_results` by (tenant_id, event_id).
Only constant SQL is formatted in; every value is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from llmops_traces.query import ListQuery

COST_JOIN = ("LEFT JOIN usage_ledger l ON l.event_id = s.event_id AND l.occurred_at = s.occurred_at "
             "AND l.tenant_id = s.tenant_id")
_TEXT_COLUMNS = {"app": "s.app_id", "environment": "s.environment", "model": "s.model", "provider": "s.provider",
                 "kind": "s.span_kind", "name": "s.name", "user": "s.user_id", "session": "s.session_id",
                 "trace_id": "s.trace_id", "prompt_name": "s.prompt_name", "prompt_version": "s.prompt_version",
                 "prompt_variant": "s.prompt_variant"}
_SEARCH = ("(jsonb_to_tsvector('simple', coalesce(s.input, 'null'), '[\"string\"]') || "
           "jsonb_to_tsvector('simple', coalesce(s.output, 'null'), '[\"string\"]')) "
           "@@ websearch_to_tsquery('simple', {})")


class Sql:
    """A WHERE clause and its parameters, built together."""

    def __init__(self, *args: Any) -> None:
        self.args: list[Any] = list(args)
        self.where: list[str] = []

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, condition: str) -> None:
        self.where.append(condition)

    @property
    def clause(self) -> str:
        return " AND ".join(self.where) or "true"


def span_conditions(sql: Sql, query: ListQuery) -> None:
    """The tenant, the range and every filter of `query`, as conditions on `s` (and `l`, the cost)."""
    sql.add(f"s.tenant_id = {sql.param(query.tenant_id)}")
    sql.add(f"s.occurred_at >= {sql.param(query.start)}")
    sql.add(f"s.occurred_at < {sql.param(query.end)}")
    for name, values in sorted(query.filters.items()):
        if name in _TEXT_COLUMNS:
            sql.add(f"{_TEXT_COLUMNS[name]} = ANY({sql.param(list(values))}::text[])")
        elif name == "status":
            sql.add(f"s.status = {sql.param(values[0])}")
        elif name == "tag":
            sql.add(f"s.tags @> {sql.param(list(values))}::text[]")
        elif name == "root":
            sql.add("s.parent_span_id IS NULL" if values[0] else "s.parent_span_id IS NOT NULL")
        elif name == "latency_min":
            sql.add(f"s.latency_ms >= {sql.param(values[0])}")
        elif name == "latency_max":
            sql.add(f"s.latency_ms <= {sql.param(values[0])}")
        elif name == "cost_min":
            sql.add(f"l.cost_total >= {sql.param(values[0])}::numeric")
        elif name == "cost_max":
            sql.add(f"l.cost_total <= {sql.param(values[0])}::numeric")
        elif name == "has_findings":
            sql.add("s.finding_count > 0" if values[0] else "s.finding_count = 0")
        elif name == "score_below":
            below = sql.param(values[0])
            sql.add("EXISTS (SELECT 1 FROM evaluation_results e WHERE e.tenant_id = s.tenant_id "  # noqa: S608
                    f"AND e.event_id = s.event_id AND e.status = 'ok' AND e.score < {below})")
        elif name == "q":
            sql.add(_SEARCH.format(sql.param(values[0])))
        else:  # pragma: no cover  (query.FILTERS and this function move together)
            raise AssertionError(f"no SQL for filter {name}")


def _keyset(sql: Sql, query: ListQuery, columns: Sequence[str], casts: Sequence[str]) -> None:
    if query.after is None:
        return
    op = "<" if query.descending else ">"
    params = ", ".join(f"{sql.param(v)}::{cast}" for v, cast in zip(query.after, casts, strict=True))
    sql.add(f"({', '.join(columns)}) {op} ({params})")


def _order(query: ListQuery, columns: Sequence[str]) -> str:
    direction = "DESC" if query.descending else "ASC"
    return ", ".join(f"{c} {direction}" for c in columns)


SPAN_SORTS = {"time": ("s.occurred_at", "timestamptz"), "latency": ("coalesce(s.latency_ms, -1)", "float8"),
              "cost": ("coalesce(l.cost_total, -1)", "numeric")}
SPAN_COLUMNS = ("s.event_id::text AS event_id, s.trace_id, s.span_id, s.parent_span_id, s.span_kind, s.name, "
                "s.app_id, s.environment, s.occurred_at, s.latency_ms, s.ttft_ms, s.status, s.error_type, "
                "s.error_message, s.provider, s.model, s.response_model, s.prompt_name, s.prompt_version, "
                "s.prompt_variant, s.user_id, s.session_id, s.tags, s.input_tokens, s.output_tokens, "
                "s.cache_read_input_tokens, s.cache_write_input_tokens, s.reasoning_tokens, s.finding_count, "
                "s.finding_types, s.text_stored, l.cost_total, l.unpriced")
IO_COLUMNS = ", s.input::text AS input, s.output::text AS output, s.metadata::text AS metadata"


async def span_page(db: asyncpg.Pool | asyncpg.Connection, query: ListQuery) -> list[asyncpg.Record]:
    """One page of spans (`query.limit` + 1 rows: the extra one says there is a next page)."""
    sql = Sql()
    span_conditions(sql, query)
    sort_column, cast = SPAN_SORTS[query.sort]
    keys = (sort_column, "s.occurred_at", "s.event_id") if query.sort != "time" else ("s.occurred_at", "s.event_id")
    casts = (cast, "timestamptz", "uuid") if query.sort != "time" else ("timestamptz", "uuid")
    _keyset(sql, query, keys, casts)
    io = IO_COLUMNS if "io" in query.fields else ""
    return await db.fetch(f"""
        SELECT {SPAN_COLUMNS}{io}, {sort_column} AS sort_key FROM trace_spans s {COST_JOIN}
        WHERE {sql.clause} ORDER BY {_order(query, keys)} LIMIT {query.limit + 1}""", *sql.args)  # noqa: S608


TRACE_SORTS = {"time": ("started_at", "timestamptz"), "latency": ("duration_ms", "float8"),
               "cost": ("coalesce(cost_total, -1)", "numeric")}
_ROOT_FIRST = "ORDER BY (s.parent_span_id IS NULL) DESC, s.occurred_at, s.span_id"
TRACE_AGGREGATES = f"""
    s.trace_id, min(s.occurred_at) AS started_at,
    max(s.occurred_at + make_interval(secs => coalesce(s.latency_ms, 0) / 1000.0)) AS ended_at,
    (extract(epoch FROM max(s.occurred_at + make_interval(secs => coalesce(s.latency_ms, 0) / 1000.0))
                       - min(s.occurred_at)) * 1000)::float8 AS duration_ms,
    (array_agg(s.name {_ROOT_FIRST}))[1] AS root_name, (array_agg(s.span_id {_ROOT_FIRST}))[1] AS root_span_id,
    (array_agg(s.app_id {_ROOT_FIRST}))[1] AS app_id, (array_agg(s.environment {_ROOT_FIRST}))[1] AS environment,
    max(s.user_id) AS user_id, max(s.session_id) AS session_id, count(*)::int AS span_count,
    sum(s.input_tokens)::bigint AS input_tokens, sum(s.output_tokens)::bigint AS output_tokens,
    sum(l.cost_total) AS cost_total, count(*) FILTER (WHERE l.unpriced)::int AS unpriced_spans,
    count(*) FILTER (WHERE s.status = 'error')::int AS error_count, sum(s.finding_count)::int AS finding_count,
    array_agg(s.event_id) AS event_ids"""
LOWEST_SCORE = ("(SELECT min(e.score) FROM evaluation_results e WHERE e.tenant_id = {tenant} "
                "AND e.event_id = ANY(page.event_ids) AND e.status = 'ok') AS lowest_score")


async def trace_page(db: asyncpg.Pool | asyncpg.Connection, query: ListQuery) -> list[asyncpg.Record]:
    """One page of traces: those with a span in range that matches the filters, each summed over all its
    spans in range (`query.limit` + 1 rows)."""
    matched = Sql()
    span_conditions(matched, query)
    tenant, start, end = "$1", "$2", "$3"  # the first three parameters of span_conditions
    page = Sql(*matched.args)
    sort_column, cast = TRACE_SORTS[query.sort]
    _keyset(page, query, (sort_column, "trace_id"), (cast, "text"))
    return await db.fetch(f"""
        WITH matched AS (SELECT DISTINCT s.trace_id FROM trace_spans s {COST_JOIN} WHERE {matched.clause}),
        traces AS (
            SELECT {TRACE_AGGREGATES} FROM trace_spans s {COST_JOIN}
            WHERE s.tenant_id = {tenant} AND s.occurred_at >= {start} AND s.occurred_at < {end}
              AND s.trace_id IN (SELECT trace_id FROM matched)
            GROUP BY s.trace_id)
        SELECT page.*, {LOWEST_SCORE.format(tenant=tenant)} FROM (
            SELECT * FROM traces WHERE {page.clause}
            ORDER BY {_order(query, (sort_column, "trace_id"))} LIMIT {query.limit + 1}) page
        ORDER BY {_order(query, (sort_column, "trace_id"))}""", *page.args)  # noqa: S608


SUMMARY_COLUMNS = {"app": "p.app_id", "environment": "p.environment", "user": "p.user_id",
                   "session": "p.session_id", "trace_id": "p.trace_id"}
SUMMARY_SORTS = ("time", "latency", "cost")


def summarised(query: ListQuery) -> bool:
    """Whether `trace_summaries` answers this trace list: filtered on trace-level attributes, status or
    "has findings" only (any sort: a cost is billing's, summed per matching trace from the ledger)."""
    supported = set(SUMMARY_COLUMNS) | {"tag", "status"}
    return query.sort in SUMMARY_SORTS and all(
        name in supported or (name == "has_findings" and values[0]) for name, values in query.filters.items())


SUMMARY_RANGE = "p.tenant_id = $1 AND p.day >= $2 AND p.day < $5 AND p.last_at >= $4 AND p.first_at < $5"
"""Summary rows of the tenant ($1) with a span in range ($4 .. $5), roughly (their first and last span
around it); $2 is the range's first UTC day, the partitions to read."""


def summary_filters(sql: Sql, query: ListQuery) -> None:
    """The filters `summarised` accepts, as conditions on `p` (a `trace_summaries` row)."""
    for name, values in sorted(query.filters.items()):
        if name in SUMMARY_COLUMNS:
            sql.add(f"{SUMMARY_COLUMNS[name]} = ANY({sql.param(list(values))}::text[])")
        elif name == "tag":
            sql.add(f"p.tags @> {sql.param(list(values))}::text[]")
        elif name in FLAG_FILTERS:
            sql.add(_flag(name, values[0], "p"))


FLAG_FILTERS = ("status", "has_findings")
"""The filters on a summary row's counts alone (no parameter)."""


def _flag(name: str, value: Any, row: str) -> str:
    if name == "status":
        return f"{row}.error_count > 0" if value == "error" else f"{row}.span_count > {row}.error_count"
    return f"{row}.finding_count > 0"  # has_findings=true (`summarised` sends false to the spans)


WALK_ROWS_PER_TRACE = 32
"""How many summary rows, per trace of the page, a trace list filtered by flags only walks in time order
before it falls back to reading every matching trace (`summary_trace_page`)."""


async def _walked_page(db: asyncpg.Pool | asyncpg.Connection, query: ListQuery, first_day: datetime,
                       last_day: datetime) -> list[str] | None:
    """The trace ids of the page of a trace list sorted by time and filtered by flags only (errors, findings),
    found by walking the summary rows in time order (the (tenant_id, first_at) index) and keeping each trace's
    first row in range (its start: the sort key) whose trace has a row in range that matches; so the walk
    stops after the page, however many traces match. None when the walk ended (after `WALK_ROWS_PER_TRACE` rows
    per trace of the page, or at the end of the range) before the page was full: the filter matches few traces
    (or this is the last page), and reading every matching trace (`error_count > 0` has a partial index,
    traces/0010) is then the cheaper plan."""
    sql = Sql(query.tenant_id, first_day, last_day, query.start, query.end)  # SUMMARY_RANGE's $1 .. $5
    _keyset(sql, query, ("p.first_at", "p.trace_id"), ("timestamptz", "text"))
    key = sql.where[-1] if query.after is not None else "true"
    flags = sorted((name, values[0]) for name, values in query.filters.items())
    hit_p = " AND ".join(_flag(name, value, "p") for name, value in flags)
    hit_q = " AND ".join(_flag(name, value, "q") for name, value in flags)
    budget = WALK_ROWS_PER_TRACE * (query.limit + 1)
    order = _order(query, ("w.first_at", "w.trace_id"))
    rows = await db.fetch(f"""
        SELECT w.trace_id FROM (
            SELECT p.trace_id, p.day, p.first_at, {hit_p} AS hit FROM trace_summaries p
            WHERE {SUMMARY_RANGE} AND {key}
            ORDER BY {_order(query, ("p.first_at", "p.trace_id"))} LIMIT {budget}) w
        CROSS JOIN LATERAL (
            SELECT bool_or(q.day < w.day) AS earlier, bool_or({hit_q}) AS hit FROM trace_summaries q
            WHERE q.tenant_id = $1 AND q.trace_id = w.trace_id AND q.day >= $2 AND q.day < $3
              AND q.day <> w.day AND q.last_at >= $4 AND q.first_at < $5) other
        WHERE other.earlier IS NOT TRUE AND (w.hit OR other.hit IS TRUE)
        ORDER BY {order} LIMIT {query.limit + 1}""", *sql.args)  # noqa: S608
    return [r["trace_id"] for r in rows] if len(rows) > query.limit else None


_ROOT_FIRST_PIECE = 'ORDER BY NOT p.root_is_root, p.root_at, p.root_span_id COLLATE "C"'
SUMMARY_AGGREGATES = f"""
    p.trace_id, min(p.first_at) AS started_at, max(p.ended_at) AS ended_at,
    (extract(epoch FROM max(p.ended_at) - min(p.first_at)) * 1000)::float8 AS duration_ms,
    (array_agg(p.root_name {_ROOT_FIRST_PIECE}))[1] AS root_name,
    (array_agg(p.root_span_id {_ROOT_FIRST_PIECE}))[1] AS root_span_id,
    (array_agg(p.app_id {_ROOT_FIRST_PIECE}))[1] AS app_id,
    (array_agg(p.environment {_ROOT_FIRST_PIECE}))[1] AS environment,
    max(p.user_id COLLATE "C") AS user_id, max(p.session_id COLLATE "C") AS session_id,
    sum(p.span_count)::int AS span_count, sum(p.input_tokens)::bigint AS input_tokens,
    sum(p.output_tokens)::bigint AS output_tokens, sum(p.error_count)::int AS error_count,
    sum(p.finding_count)::int AS finding_count"""


async def summary_trace_page(db: asyncpg.Pool | asyncpg.Connection, query: ListQuery) -> list[asyncpg.Record]:
    """One page of traces from `trace_summaries` (`summarised(query)` must hold): the traces with a summary
    row (a trace's spans of one UTC day) in range that matches the filters, each summed over its rows in
    range. Cost and unpriced spans are billing's per-trace rollup (`usage_trace_costs`: the ledger rows
    carrying the trace id) over the range's UTC days, summed for every matching trace when sorted by cost
    (the page is then cut on the costs alone, and only its traces' summary rows are summed), else for the
    page's only; the lowest judge score for the page's traces only, from their spans of the
    same days (the evaluator's results)."""
    first_day = query.start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    last_day = query.end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    sql = Sql(query.tenant_id, first_day, last_day, query.start, query.end)  # SUMMARY_RANGE's $1 .. $5
    summary_filters(sql, query)
    filtered = sql.clause
    matched = (f"AND p.trace_id IN (SELECT p.trace_id FROM trace_summaries p WHERE {SUMMARY_RANGE} "  # noqa: S608
               f"AND {filtered})") if sql.where else ""
    sort_column, cast = TRACE_SORTS[query.sort]
    _keyset(sql, query, (sort_column, "trace_id"), (cast, "text"))
    page = sql.where[-1] if query.after is not None else "true"
    order = _order(query, (sort_column, "trace_id"))
    # Cost and unpriced spans: billing's per-trace and day rollup (`usage_trace_costs`, billing/0010) over the
    # range's days [$2, $3), a row per trace and day (joining every matching trace's spans to their ledger rows
    # before a page sorted by cost read ~700 random rows for an app's week at 3 M spans: 0.3-0.6 s). A trace
    # with no priced event has no cost (NULL), as the sum over its ledger rows.
    costs = """
        SELECT CASE WHEN sum(c.event_count) > sum(c.unpriced_count) THEN sum(c.cost_total) END AS cost_total,
               coalesce(sum(c.unpriced_count), 0)::int AS unpriced_spans
        FROM usage_trace_costs c
        WHERE c.tenant_id = $1 AND c.trace_id = {trace} AND c.bucket >= ($2 AT TIME ZONE 'UTC')::date
          AND c.bucket < ($3 AT TIME ZONE 'UTC')::date"""
    walked = None
    if query.sort == "time" and query.filters and set(query.filters) <= set(FLAG_FILTERS):
        walked = await _walked_page(db, query, first_day, last_day)
    if query.sort == "cost":
        # Every matching trace's cost (no summary row read again), the page cut, then the page's traces summed.
        traces = f"""
            WITH costed AS (
                SELECT m.trace_id, c.* FROM (
                    SELECT DISTINCT p.trace_id FROM trace_summaries p WHERE {SUMMARY_RANGE} AND {filtered}) m
                CROSS JOIN LATERAL ({costs.format(trace="m.trace_id")}) c),
            cut AS (SELECT * FROM costed WHERE {page} ORDER BY {order} LIMIT {query.limit + 1}),
            traces AS (
                SELECT {SUMMARY_AGGREGATES} FROM trace_summaries p
                WHERE {SUMMARY_RANGE} AND p.trace_id IN (SELECT trace_id FROM cut)
                GROUP BY p.trace_id)"""  # noqa: S608
    elif walked is not None:
        traces = f"""
            WITH traces AS (
                SELECT {SUMMARY_AGGREGATES} FROM trace_summaries p
                WHERE {SUMMARY_RANGE} AND p.trace_id = ANY({sql.param(walked)}::text[])
                GROUP BY p.trace_id)"""  # noqa: S608
    elif query.sort == "time" and not query.filters:
        # Every trace in range: walk the (tenant, first_at) index in order and keep each trace's first row in
        # range only (its start), so the page is cut before anything is summed.
        _keyset(sql, query, ("p.first_at", "p.trace_id"), ("timestamptz", "text"))
        key = sql.where[-1] if query.after is not None else "true"
        traces = f"""
            WITH firsts AS (
                SELECT p.trace_id FROM trace_summaries p
                WHERE {SUMMARY_RANGE} AND {key} AND NOT EXISTS (
                    SELECT 1 FROM trace_summaries q WHERE q.tenant_id = $1 AND q.trace_id = p.trace_id
                      AND q.day >= $2 AND q.day < p.day AND q.last_at >= $4 AND q.first_at < $5)
                ORDER BY {_order(query, ("p.first_at", "p.trace_id"))} LIMIT {query.limit + 1}),
            traces AS (
                SELECT {SUMMARY_AGGREGATES} FROM trace_summaries p
                WHERE {SUMMARY_RANGE} AND p.trace_id IN (SELECT trace_id FROM firsts)
                GROUP BY p.trace_id)"""  # noqa: S608
    else:
        traces = f"""
            WITH traces AS (
                SELECT {SUMMARY_AGGREGATES} FROM trace_summaries p
                WHERE {SUMMARY_RANGE} {matched}
                GROUP BY p.trace_id)"""  # noqa: S608
    spans = """
        SELECT array_agg(s.event_id) AS event_ids FROM trace_spans s
        WHERE s.tenant_id = $1 AND s.trace_id = page.trace_id AND s.occurred_at >= $2 AND s.occurred_at < $3"""
    if query.sort == "cost":  # the page was cut by cost above
        page_sql = "SELECT t.*, cut.cost_total, cut.unpriced_spans FROM traces t JOIN cut USING (trace_id)"
    else:  # the page, then its traces' costs
        page_sql = (f"SELECT t.*, c.* FROM (SELECT * FROM traces WHERE {page} ORDER BY {order} "  # noqa: S608
                    f"LIMIT {query.limit + 1}) t CROSS JOIN LATERAL ({costs.format(trace='t.trace_id')}) c")
    return await db.fetch(f"""
        {traces}
        SELECT page.*, spans.event_ids, (SELECT min(e.score) FROM evaluation_results e WHERE e.tenant_id = $1
                          AND e.event_id = ANY(spans.event_ids) AND e.status = 'ok') AS lowest_score
        FROM ({page_sql}) page CROSS JOIN LATERAL ({spans}) spans
        ORDER BY {order}""", *sql.args)  # noqa: S608


SESSION_SORTS = {"time": ("last_at", "timestamptz"), "cost": ("coalesce(cost_total, -1)", "numeric"),
                 "spans": ("span_count", "float8")}


async def session_page(db: asyncpg.Pool | asyncpg.Connection, query: ListQuery) -> list[asyncpg.Record]:
    """One page of sessions with a span in range that matches the filters, summed over their spans in range."""
    matched = Sql()
    span_conditions(matched, query)
    matched.add("s.session_id IS NOT NULL")
    page = Sql(*matched.args)
    sort_column, cast = SESSION_SORTS[query.sort]
    _keyset(page, query, (sort_column, "session_id"), (cast, "text"))
    return await db.fetch(f"""
        WITH matched AS (SELECT DISTINCT s.session_id FROM trace_spans s {COST_JOIN} WHERE {matched.clause}),
        sessions AS (
            SELECT s.session_id, min(s.occurred_at) AS first_at, max(s.occurred_at) AS last_at,
                   count(DISTINCT s.trace_id)::int AS trace_count, count(*)::int AS span_count,
                   (array_agg(DISTINCT s.user_id) FILTER (WHERE s.user_id IS NOT NULL))[1:10] AS user_ids,
                   (array_agg(DISTINCT s.app_id))[1:10] AS app_ids,
                   sum(s.input_tokens)::bigint AS input_tokens, sum(s.output_tokens)::bigint AS output_tokens,
                   sum(l.cost_total) AS cost_total, count(*) FILTER (WHERE s.status = 'error')::int AS error_count,
                   sum(s.finding_count)::int AS finding_count
            FROM trace_spans s {COST_JOIN}
            WHERE s.tenant_id = $1 AND s.occurred_at >= $2 AND s.occurred_at < $3
              AND s.session_id IN (SELECT session_id FROM matched)
            GROUP BY s.session_id)
        SELECT * FROM sessions WHERE {page.clause}
        ORDER BY {_order(query, (sort_column, "session_id"))} LIMIT {query.limit + 1}""", *page.args)  # noqa: S608


async def trace_spans(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, trace_id: str, since: datetime,
                      limit: int, io: bool) -> list[asyncpg.Record]:
    """The spans of one trace (at most `limit`), oldest first. The spans are cut first and joined to their
    costs after: joined before, the planner's guess of the ledger rows per span makes a parallel plan whose
    workers' start-up is most of the time (EXPLAIN ANALYZE at volume: 40-90 ms against under 1 ms)."""
    return await db.fetch(f"""
        SELECT {SPAN_COLUMNS}{IO_COLUMNS if io else ""} FROM (
            SELECT * FROM trace_spans
            WHERE tenant_id = $1 AND trace_id = $2 AND occurred_at >= $3
            ORDER BY occurred_at, span_id LIMIT $4) s {COST_JOIN}
        ORDER BY s.occurred_at, s.span_id""", tenant_id, trace_id, since, limit)  # noqa: S608


async def session_traces(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, session_id: str,
                         since: datetime, limit: int) -> list[asyncpg.Record]:
    """The traces of one session (summed over their spans since `since`), oldest first."""
    return await db.fetch(f"""
        SELECT page.*, {LOWEST_SCORE.format(tenant="$1")} FROM (
            SELECT {TRACE_AGGREGATES} FROM trace_spans s {COST_JOIN}
            WHERE s.tenant_id = $1 AND s.occurred_at >= $3
              AND s.trace_id IN (SELECT trace_id FROM trace_spans
                                 WHERE tenant_id = $1 AND session_id = $2 AND occurred_at >= $3)
            GROUP BY s.trace_id ORDER BY started_at, s.trace_id LIMIT $4) page
        ORDER BY started_at, trace_id""", tenant_id, session_id, since, limit)  # noqa: S608


async def user_summary(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, user_id: str, start: datetime,
                       end: datetime) -> list[asyncpg.Record]:
    """One user's spans in range, per app: counts, tokens, cost, errors, findings, first and last seen."""
    return await db.fetch(f"""
        SELECT s.app_id, count(*)::int AS span_count, count(DISTINCT s.trace_id)::int AS trace_count,
               count(DISTINCT s.session_id)::int AS session_count, min(s.occurred_at) AS first_at,
               max(s.occurred_at) AS last_at, sum(s.input_tokens)::bigint AS input_tokens,
               sum(s.output_tokens)::bigint AS output_tokens, sum(l.cost_total) AS cost_total,
               count(*) FILTER (WHERE s.status = 'error')::int AS error_count,
               sum(s.finding_count)::int AS finding_count
        FROM trace_spans s {COST_JOIN}
        WHERE s.tenant_id = $1 AND s.user_id = $2 AND s.occurred_at >= $3 AND s.occurred_at < $4
        GROUP BY s.app_id ORDER BY s.app_id""", tenant_id, user_id, start, end)  # noqa: S608


async def tail(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str | None, app_id: str | None,
               after_stored: datetime, filters: dict[str, str], limit: int) -> list[asyncpg.Record]:
    """Spans stored after `after_stored` (the `llmops traces tail` poll), oldest first."""
    sql = Sql()
    sql.add(f"s.stored_at > {sql.param(after_stored)}")
    sql.add(f"s.occurred_at > {sql.param(after_stored)}::timestamptz - interval '1 day'")  # partitions it can be in
    if tenant_id:
        sql.add(f"s.tenant_id = {sql.param(tenant_id)}")
    if app_id:
        sql.add(f"s.app_id = {sql.param(app_id)}")
    for name, value in sorted(filters.items()):
        column = "s.status" if name == "status" else _TEXT_COLUMNS[name]
        sql.add(f"{column} = {sql.param(value)}")
    return await db.fetch(f"""
        SELECT s.tenant_id, s.stored_at, {SPAN_COLUMNS} FROM trace_spans s {COST_JOIN}
        WHERE {sql.clause} ORDER BY s.stored_at, s.event_id LIMIT {int(limit)}""", *sql.args)  # noqa: S608


async def traces_of_events(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str,
                           keys: Sequence[tuple[Any, datetime]], since: datetime) -> list[asyncpg.Record]:
    """The traces that hold these events ((event_id, occurred_at), from `since` on): one row per trace with
    its span count among them and the first of their times, earliest first."""
    return await db.fetch("""
        SELECT s.trace_id, count(*) AS span_count, min(s.occurred_at) AS first_at
        FROM trace_spans s
        JOIN unnest($2::uuid[], $3::timestamptz[]) AS k(event_id, occurred_at)
          ON s.event_id = k.event_id AND s.occurred_at = k.occurred_at
        WHERE s.tenant_id = $1 AND s.occurred_at >= $4
        GROUP BY s.trace_id ORDER BY first_at, s.trace_id""",
        tenant_id, [k[0] for k in keys], [k[1] for k in keys], since)
