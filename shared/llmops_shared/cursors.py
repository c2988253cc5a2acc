"""Opaque page cursors, one codec for every API: URL-safe base64 of a JSON array, bound to its query.

    cursor = encode(["2026-11-03T09:00:00+00:00", "7f0c..."], scope=query_fingerprint)
    at, event_id = decode(cursor, scope=query_fingerprint)      # or InvalidCursor

`scope` ties a cursor to the query that handed it out (a filter's fingerprint, a tenant, a route): a
cursor replayed against another query is refused instead of silently skipping rows.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson


class InvalidCursor(ValueError):
    """A cursor this API did not hand out, or one handed out for another query."""


def encode(values: list[Any], *, scope: str = "") -> str:
    return base64.urlsafe_b64encode(orjson.dumps([scope, values])).decode().rstrip("=")


def decode(cursor: str, *, scope: str = "") -> list[Any]:
    try:
        got_scope, values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidCursor("not a cursor this API returned") from exc
    if got_scope != scope or not isinstance(values, list):
        raise InvalidCursor("the cursor belongs to another query")
    return values
