"""Judgment results of a tenant, filtered, newest judged interaction first, with keyset pagination.

The page key is the result's (occurred_at, event, evaluator, rubric, version); the cursor carries the last
key of a page, encoded by `llmops_shared.cursors` and bound to the tenant and filters that handed it out
(a cursor replayed with other filters is refused, rather than skipping rows). The SQL is `result_store`'s.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from llmops_evaluator import result_store
from llmops_evaluator.result_store import ResultKey
from llmops_evaluator.schemas import ResultList, ResultPage, ResultPublic
from llmops_shared import cursors
from llmops_shared.problems import Invalid, NotFound

RESULT_STATUSES = frozenset({"ok", "unparseable", "error", "skipped"})
EVENT_RESULTS_LIMIT = 500


@dataclass(frozen=True)
class ResultFilter:
    event_id: uuid.UUID | None = None
    evaluator_id: str | None = None
    rubric: str | None = None  # a name, or name@version
    status: str | None = None
    since: datetime | None = None  # the judged interaction's time, inclusive
    until: datetime | None = None  # exclusive

    def scope(self, tenant_id: str) -> str:
        """What a cursor is bound to: the tenant and these filters."""
        key = "\x1f".join(str(v) for v in (tenant_id, *astuple(self)))
        return "results:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def encode_cursor(row: dict[str, Any] | asyncpg.Record, *, scope: str) -> str:
    """The cursor of the page after `row` (a result's page key)."""
    return cursors.encode([row["occurred_at"].isoformat(), str(row["event_id"]), row["evaluator_id"], row["rubric"],
                           row["rubric_version"]], scope=scope)


def decode_cursor(cursor: str, *, scope: str) -> ResultKey:
    """The page key in `cursor`; `Invalid` (query `cursor`) for one this API did not hand out for `scope`."""
    try:
        at, event_id, evaluator_id, rubric, version = cursors.decode(cursor, scope=scope)
        return datetime.fromisoformat(at), uuid.UUID(event_id), str(evaluator_id), str(rubric), int(version)
    except cursors.InvalidCursor as exc:
        raise Invalid("cursor", str(exc), location="query") from exc
    except (ValueError, TypeError) as exc:
        raise Invalid("cursor", "not a cursor this API returned", location="query") from exc


async def list_results(*, conn: asyncpg.Connection, tenant_id: str, filters: ResultFilter, limit: int,
                       cursor: str | None = None) -> ResultPage:
    """A page of results, newest judged interaction first; `next_cursor` fetches the next page."""
    name, version = None, None
    if filters.rubric is not None:
        name, _, ver = filters.rubric.partition("@")
        if ver and not ver.isdigit():
            raise Invalid("rubric", "a rubric name, or name@version", location="query")
        version = int(ver) if ver else None
    if filters.status is not None and filters.status not in RESULT_STATUSES:
        raise Invalid("status", f"one of {', '.join(sorted(RESULT_STATUSES))}", location="query")
    scope = filters.scope(tenant_id)
    after = decode_cursor(cursor, scope=scope) if cursor else None
    rows = await result_store.result_page(
        conn=conn, tenant_id=tenant_id, event_id=filters.event_id, evaluator_id=filters.evaluator_id, rubric=name,
        rubric_version=version, status=filters.status, since=filters.since, until=filters.until, after=after,
        limit=limit + 1)
    return ResultPage(items=[ResultPublic.model_validate(dict(r)) for r in rows[:limit]],
                      next_cursor=encode_cursor(rows[limit - 1], scope=scope) if len(rows) > limit else None)


async def event_results(*, conn: asyncpg.Connection, tenant_id: str, event_id: uuid.UUID) -> ResultList:
    """Every result of one judged interaction (up to `EVENT_RESULTS_LIMIT`); `NotFound` if it was not judged."""
    page = await list_results(conn=conn, tenant_id=tenant_id, filters=ResultFilter(event_id=event_id),
                              limit=EVENT_RESULTS_LIMIT)
    if not page.items:
        raise NotFound(f"no judged interaction {event_id}")
    return ResultList(items=page.items)
