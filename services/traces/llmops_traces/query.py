"""What a list query asks, pure: `parse_list_query` validates the query string of `/v1/spans`,
`/v1/traces`, `/v1/sessions` into a `ListQuery`, or raises `Invalid` naming the parameter (422, `loc`
`["query", name]`, as every API of the suite does).

- `from` and `to` are required (ISO 8601 with a time zone), `to` after `from`, at most `max_days` apart
  (31 by default); a text search (`q`) covers at most `search_max_hours`. Reads never go further back
  than the tenant's retention (`visible_from`): the range is cut there.
- filters (`FILTERS`): each at most once unless it says it repeats (`app`, `model`, `tag`, ... may repeat:
  any of the values, or for `tag` all of them); an unknown parameter is refused, never ignored.
- `sort` one of the resource's sorts (`time`, `latency`, `cost`, ...), `order` desc (default) or asc;
  `fields` a comma-separated list of groups (`FIELD_GROUPS`; text, `io`, only when asked for).
- `cursor` is opaque (`llmops_shared.cursors`), bound to the tenant, the resource and every parameter
  but `limit`: replayed against another query it is refused.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from llmops_shared import cursors
from llmops_shared.contract import NO_CONTROL_CHARS, SpanKind
from llmops_shared.problems import Invalid


@dataclass(frozen=True)
class Filter:
    kind: str  # text | enum | number | money | bool
    repeats: bool = False
    choices: tuple[str, ...] = ()
    description: str = ""


FILTERS: dict[str, Filter] = {
    "app": Filter("text", True, description="app id (repeat for any of several)"),
    "environment": Filter("text", True, description="environment"),
    "model": Filter("text", True, description="model as reported"),
    "provider": Filter("text", True, description="provider"),
    "status": Filter("enum", False, ("ok", "error"), "ok or error"),
    "kind": Filter("enum", True, tuple(k.value for k in SpanKind), "span kind"),
    "name": Filter("text", True, description="span name"),
    "user": Filter("text", True, description="user id (opaque)"),
    "session": Filter("text", True, description="session id"),
    "tag": Filter("text", True, description="a tag; repeated: every one of them"),
    "trace_id": Filter("text", True, description="trace id"),
    "prompt_name": Filter("text", True, description="managed prompt name"),
    "prompt_version": Filter("text", True, description="managed prompt version"),
    "prompt_variant": Filter("text", True, description="managed prompt variant"),
    "root": Filter("bool", description="true: root spans only (no parent)"),
    "latency_min": Filter("number", description="latency in ms, at least"),
    "latency_max": Filter("number", description="latency in ms, at most"),
    "cost_min": Filter("money", description="cost in USD (billing's ledger), at least"),
    "cost_max": Filter("money", description="cost in USD, at most"),
    "has_findings": Filter("bool", description="true: with guardrail findings; false: without"),
    "score_below": Filter("number", description="a judge score (0..1) below this value"),
    "q": Filter("text", description="text search in the redacted input and output (Postgres full text, "
                                     "words in any order; \"quoted phrases\", -excluded)"),
}
"""The filters every list resource takes (they select spans; a trace or session is listed when any of its
spans matches)."""

FIELD_GROUPS = ("core", "model", "usage", "prompt", "trace", "findings", "error", "io")
DEFAULT_FIELDS = frozenset(FIELD_GROUPS) - {"io"}
PAGING = ("from", "to", "limit", "cursor", "sort", "order", "fields")


@dataclass(frozen=True)
class ListQuery:
    resource: str  # spans | traces | sessions
    tenant_id: str
    start: datetime
    end: datetime
    filters: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    sort: str = "time"
    descending: bool = True
    fields: frozenset[str] = DEFAULT_FIELDS
    limit: int = 50
    after: tuple[Any, ...] | None = None
    asked_start: datetime | None = None
    """`from` as asked for, before the retention cut (which moves with the clock)."""

    def fingerprint(self) -> str:
        """Everything but the page: a cursor is valid for the query that made it only (the `from` asked for,
        not the cut one, so that the next page's request, a moment later, still matches)."""
        text = orjson.dumps([self.resource, self.tenant_id, (self.asked_start or self.start).isoformat(),
                             self.end.isoformat(),
                             sorted((k, [str(v) for v in vs]) for k, vs in self.filters.items()),
                             self.sort, self.descending])
        return hashlib.sha256(text).hexdigest()[:20]

    def one(self, name: str) -> Any:
        values = self.filters.get(name)
        return values[0] if values else None


def invalid(name: str, message: str) -> Invalid:
    return Invalid(name, message, location="query")


def parse_instant(name: str, text: str | None) -> datetime:
    if text is None or text == "":
        raise invalid(name, "required (ISO 8601 with a time zone, e.g. 2026-11-24T00:00:00Z)")
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise invalid(name, "not an ISO 8601 instant") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise invalid(name, "needs a time zone (for example 2026-11-24T00:00:00Z)")
    return at.astimezone(UTC)


def parse_range(params: Mapping[str, Sequence[str]], *, max_span: timedelta, visible_from: datetime,
                what: str = "") -> tuple[datetime, datetime]:
    """`from` and `to`, validated; the start cut at `visible_from` (the tenant's retention)."""
    start, end = asked_range(params, max_span=max_span, what=what)
    return max(start, visible_from), end


def asked_range(params: Mapping[str, Sequence[str]], *, max_span: timedelta,
                what: str = "") -> tuple[datetime, datetime]:
    """`from` and `to` as asked for, validated."""
    start = parse_instant("from", _single(params, "from"))
    end = parse_instant("to", _single(params, "to"))
    if end <= start:
        raise invalid("to", "must be after from")
    if end - start > max_span:
        raise invalid("to", f"a{what} query covers at most {_duration(max_span)} (from .. to)")
    return start, end


def _duration(span: timedelta) -> str:
    return f"{span.days} days" if span.days and not span.seconds else f"{int(span.total_seconds() // 3600)} hours"


def _single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name) or []
    if len(values) > 1:
        raise invalid(name, "given more than once")
    return values[0] if values else None


def _value(name: str, spec: Filter, text: str) -> Any:
    if spec.kind == "enum":
        if text not in spec.choices:
            raise invalid(name, f"{text!r} is not one of {', '.join(spec.choices)}")
        return text
    if spec.kind == "bool":
        if text not in ("true", "false"):
            raise invalid(name, "true or false")
        return text == "true"
    if spec.kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise invalid(name, "not a number") from None
        if not math.isfinite(number) or number < 0:
            raise invalid(name, "a finite number, 0 or more")
        return number
    if spec.kind == "money":
        try:
            money = Decimal(text)
        except InvalidOperation:
            raise invalid(name, "not a decimal number") from None
        if not money.is_finite() or money < 0:
            raise invalid(name, "a decimal number, 0 or more")
        return money
    return plain_text(name, text)


_CONTROL = re.compile(NO_CONTROL_CHARS)


def plain_text(name: str, text: str, *, location: str = "query") -> str:
    """A text parameter (a filter, an id in the path): 1 to 256 characters, no control character (Postgres
    refuses NUL), or `Invalid` naming it."""
    if not text or len(text) > 256:
        raise Invalid(name, "1 to 256 characters", location=location)
    if not _CONTROL.match(text):
        raise Invalid(name, "holds a control character", location=location)
    return text


def parse_list_query(resource: str, params: Mapping[str, Sequence[str]], *, tenant_id: str, sorts: Sequence[str],
                     visible_from: datetime, max_days: int, search_max_hours: int, max_limit: int,
                     extra: Sequence[str] = ()) -> ListQuery:
    """A validated `ListQuery` (see the module docstring); `extra` names parameters the route reads itself."""
    for name in params:
        if name not in FILTERS and name not in PAGING and name not in extra:
            raise invalid(name, "unknown parameter")
    filters: dict[str, tuple[Any, ...]] = {}
    for name, spec in FILTERS.items():
        values = list(params.get(name) or [])
        if not values:
            continue
        if len(values) > 1 and not spec.repeats:
            raise invalid(name, "given more than once")
        if len(values) > 20:
            raise invalid(name, "at most 20 values")
        filters[name] = tuple(_value(name, spec, v) for v in values)
    searching = "q" in filters
    span = timedelta(hours=search_max_hours) if searching else timedelta(days=max_days)
    asked, end = asked_range(params, max_span=span, what=" text search" if searching else "")
    start = max(asked, visible_from)
    sort = _single(params, "sort") or sorts[0]
    if sort not in sorts:
        raise invalid("sort", f"{sort!r} is not one of {', '.join(sorts)}")
    order = _single(params, "order") or "desc"
    if order not in ("asc", "desc"):
        raise invalid("order", "asc or desc")
    fields = DEFAULT_FIELDS
    raw_fields = _single(params, "fields")
    if raw_fields is not None:
        groups = {g.strip() for g in raw_fields.split(",") if g.strip()}
        unknown = sorted(groups - set(FIELD_GROUPS))
        if unknown:
            raise invalid("fields", f"{unknown[0]!r} is not one of {', '.join(FIELD_GROUPS)}")
        fields = frozenset(groups | {"core"})
    raw_limit = _single(params, "limit")
    try:
        limit = int(raw_limit) if raw_limit is not None else 50
    except ValueError:
        raise invalid("limit", "not an integer") from None
    if not 1 <= limit <= max_limit:
        raise invalid("limit", f"must be from 1 to {max_limit}")
    query = ListQuery(resource, tenant_id, start, end, filters, sort, order == "desc", fields, limit,
                      asked_start=asked)
    raw_cursor = _single(params, "cursor")
    if raw_cursor:
        try:
            values = cursors.decode(raw_cursor, scope=query.fingerprint())
        except cursors.InvalidCursor as exc:
            raise invalid("cursor", str(exc)) from None
        query = replace(query, after=_sort_key(values, KEY_KINDS[resource][sort]))
    return query


KEY_KINDS: dict[str, dict[str, tuple[str, ...]]] = {
    "spans": {"time": ("instant", "uuid"), "latency": ("number", "instant", "uuid"),
              "cost": ("money", "instant", "uuid")},
    "traces": {"time": ("instant", "id"), "latency": ("number", "id"), "cost": ("money", "id")},
    "sessions": {"time": ("instant", "id"), "cost": ("money", "id"), "spans": ("number", "id")},
}
"""The sort keys of each resource and sort, as a cursor carries them."""


def _sort_key(values: Sequence[Any], kinds: Sequence[str]) -> tuple[Any, ...]:
    if len(values) != len(kinds):
        raise invalid("cursor", "not a cursor this API returned")
    out: list[Any] = []
    try:
        for value, kind in zip(values, kinds, strict=True):
            if kind == "instant":
                at = datetime.fromisoformat(value)
                out.append(at if at.tzinfo is not None else at.replace(tzinfo=UTC))
            elif kind == "number":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise TypeError(kind)
                out.append(value)
            elif kind == "money":
                out.append(Decimal(str(value)))
            elif kind == "uuid":
                out.append(str(uuid.UUID(str(value))))
            else:
                if not isinstance(value, str):
                    raise TypeError(kind)
                out.append(value)
    except (TypeError, ValueError, InvalidOperation):
        raise invalid("cursor", "not a cursor this API returned") from None
    return tuple(out)


def next_cursor(query: ListQuery, key: Sequence[Any]) -> str:
    """The cursor of the page after the row whose sort key is `key` (instants, numbers, ids)."""
    values = [v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, Decimal) else v for v in key]
    values = [str(v) if isinstance(v, uuid.UUID) else v for v in values]
    return cursors.encode(values, scope=query.fingerprint())


def parameters_doc() -> list[dict[str, Any]]:
    """The filters and paging parameters as OpenAPI parameter objects (the routes read the query string
    themselves, to refuse unknown parameters)."""
    out: list[dict[str, Any]] = [
        {"name": "from", "in": "query", "required": True, "schema": {"type": "string", "format": "date-time"},
         "description": "start, inclusive (ISO 8601 with a time zone)"},
        {"name": "to", "in": "query", "required": True, "schema": {"type": "string", "format": "date-time"},
         "description": "end, exclusive; at most 31 days after from (72 hours with q)"},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of a page"},
        {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["desc", "asc"]}},
    ]
    for name, spec in FILTERS.items():
        schema: dict[str, Any] = {"type": {"number": "number", "bool": "boolean"}.get(spec.kind, "string")}
        if spec.choices:
            schema["enum"] = list(spec.choices)
        if spec.repeats:
            schema = {"type": "array", "items": schema}
        out.append({"name": name, "in": "query", "schema": schema, "description": spec.description})
    return out
