"""The usage-query planner, pure: what a usage question asks, and which table answers it exactly.

`parse_usage_query` validates the API's parameters into a `UsageQuery` (or raises `Invalid` naming the
parameter); `choose_source` picks the narrowest table that answers it exactly:
- `usage_hourly_totals` (one row per tenant and hour) when the query has no grouping and no filter and
  the range is on whole UTC hours: a month by hour, day or in total reads 744 rows;
- `usage_monthly_users` (one row per tenant, month and user) when the grouping is `user` alone or none
  with a `user_id` filter (no other filter), the granularity is month or none, and the range is on
  whole UTC months: a month by user reads one row per user;
- `usage_daily` when the range starts and ends on UTC midnights and the grouping has no user or tag;
- `usage_daily_users` / `usage_daily_tags` when the grouping has `user` or the query filters by user (or
  the grouping has `tag`; not both, and no `prompt`), the granularity is day, month or none, and the range
  is on UTC midnights;
- `usage_hourly` when the range is on whole UTC hours (or the granularity is `hour`) and there is no
  user or tag grouping;
- `usage_ledger` otherwise: a range not on whole hours, and user or tag grouping that the by-user and
  by-tag rollups cannot answer (hourly granularity, a range not on UTC midnights, user and tag together,
  or with prompt).
All give the same numbers for the same question: rollups are sums over the ledger.

Users are stored as pseudonyms (`llmops_shared.privacy`): the `user_id` filter takes the app's own user id
(or a pseudonym the API showed) and is pseudonymised for the tenant before it is compared
(`user_filter`). The SQL for a plan is
`store.usage.build_usage_sql`; `usage_row` shapes its result rows for JSON.

A top query (`top`: the N groups of largest cost over the range, ranked from the source that answers the
range without buckets) keeps the order and pages of any other; `store.usage.build_usage_sql` with `others`
sums the groups it leaves out per bucket (the page's `others`). `only` (for callers that ranked the range
already, e.g. the console's chart after its table; not an API parameter) keeps the rows of the groups it
names, with one group column, without ranking anything; its `others` are the other groups' sums likewise.

Pages are keyset pages: a cursor (`llmops_shared.cursors`, scoped to the query's fingerprint) carries the
sort key of the last row sent, so it is valid only with the same parameters (`limit` may change).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from llmops_billing.ledger import COST_COLUMNS, TOKEN_COLUMNS
from llmops_billing.money import ZERO, money_str
from llmops_billing.normalise import normalise_model, normalise_provider
from llmops_shared import cursors
from llmops_shared.contract import NO_CONTROL_CHARS
from llmops_shared.privacy import pseudonym
from llmops_shared.problems import Invalid


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


class GroupField(StrEnum):
    APP = "app"
    ENVIRONMENT = "environment"
    MODEL = "model"
    PROVIDER = "provider"
    PROMPT = "prompt"
    USER = "user"
    TAG = "tag"


class Source(StrEnum):
    LEDGER = "ledger"
    HOURLY = "hourly"
    DAILY = "daily"
    DAILY_USERS = "daily_users"
    DAILY_TAGS = "daily_tags"
    HOURLY_TOTALS = "hourly_totals"
    MONTHLY_USERS = "monthly_users"


# Output column -> SQL over the source (`l` is the source's alias; `t.tag` the unnested tag).
GROUP_COLUMNS: dict[GroupField, tuple[tuple[str, str], ...]] = {
    GroupField.APP: (("app_id", "l.app_id"),),
    GroupField.ENVIRONMENT: (("environment", "l.environment"),),
    GroupField.MODEL: (("model", "l.model_key"),),
    GroupField.PROVIDER: (("provider", "l.provider"),),
    GroupField.PROMPT: (("prompt_name", "l.prompt_name"), ("prompt_version", "l.prompt_version"),
                        ("prompt_variant", "l.prompt_variant")),
    GroupField.USER: (("user_id", "coalesce(l.user_id, '')"),),
    GroupField.TAG: (("tag", "coalesce(t.tag, '')"),),
}
MEASURES = ("event_count", "unpriced_count", *TOKEN_COLUMNS, *COST_COLUMNS)
FILTERS = ("app_id", "environment", "model", "provider", "user_id")
MAX_USER_ID_CHARS = 256  # the contract's
MAX_RANGE = timedelta(days=400)


@dataclass(frozen=True)
class UsageQuery:
    start: datetime
    end: datetime
    granularity: Granularity | None = Granularity.DAY  # None: one row per group over the whole range
    group_by: tuple[GroupField, ...] = ()
    filters: Mapping[str, str] = field(default_factory=dict)
    limit: int = 100
    after: tuple[Any, ...] | None = None  # the sort key of the last row of the previous page
    top: int | None = None  # only the rows of the `top` groups of largest cost over the range
    only: tuple[str, ...] | None = None  # only the rows of these groups (one group column; values as stored)

    @property
    def columns(self) -> list[tuple[str, str]]:
        return [c for g in self.group_by for c in GROUP_COLUMNS[g]]

    @property
    def sort_names(self) -> list[str]:
        return (["bucket"] if self.granularity is not None else []) + [name for name, _ in self.columns]

    def fingerprint(self) -> str:
        """What the query asks, without its page: a cursor is valid only for the query that made it."""
        parts: list[Any] = [self.start.isoformat(), self.end.isoformat(),
                            None if self.granularity is None else self.granularity.value,
                            [g.value for g in self.group_by], sorted(self.filters.items())]
        if self.top is not None:
            parts.append(self.top)
        if self.only is not None:
            parts.append(["only", *self.only])
        text = orjson.dumps(parts)
        return hashlib.sha256(text).hexdigest()[:16]


def _invalid(name: str, message: str) -> Invalid:
    return Invalid(name, message, location="query")


def parse_usage_query(*, start: datetime | None, end: datetime | None, granularity: str | None,
                      group_by: Sequence[str] | str | None, filters: Mapping[str, str | None] | None = None,
                      limit: int = 100, max_limit: int = 1_000, cursor: str | None = None,
                      now: datetime | None = None, top: int | None = None) -> UsageQuery:
    """A validated `UsageQuery`, or `Invalid` naming the bad query parameter.

    Defaults: `from` the start of the current UTC month, `to` the start of the next one, `granularity`
    day. `group_by` is a comma-separated list (or a list) of app, environment, model, provider, prompt,
    user, tag. `top` keeps the rows of the `top` groups with the largest cost over the whole range (ties
    by the group's values), at most `max_limit` groups; it needs a `group_by`.
    """
    now = now or datetime.now(UTC)
    month_start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = month_start if start is None else start
    end = (month_start + timedelta(days=32)).replace(day=1) if end is None else end
    for name, instant in (("from", start), ("to", end)):
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise _invalid(name, "needs a time zone (for example 2026-11-01T00:00:00Z)")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise _invalid("to", "must be after from")
    if end - start > MAX_RANGE:
        raise _invalid("to", f"a query covers at most {MAX_RANGE.days} days")
    gran: Granularity | None
    try:
        gran = Granularity(granularity) if granularity else Granularity.DAY
    except ValueError:
        raise _invalid("granularity", f"{granularity!r} is not one of hour, day, month") from None
    if gran is Granularity.HOUR and end - start > timedelta(days=93):
        raise _invalid("granularity", "hourly buckets cover at most 93 days; use day or month")
    if isinstance(group_by, str):
        raw_groups = [g.strip() for g in group_by.split(",") if g.strip()]
    else:
        raw_groups = [g.strip() for item in (group_by or []) for g in item.split(",") if g.strip()]
    groups: list[GroupField] = []
    for raw in raw_groups:
        try:
            group = GroupField(raw)
        except ValueError:
            known = ", ".join(g.value for g in GroupField)
            raise _invalid("group_by", f"{raw!r} is not one of {known}") from None
        if group not in groups:
            groups.append(group)
    if not 1 <= limit <= max_limit:
        raise _invalid("limit", f"must be from 1 to {max_limit}")
    if top is not None:
        if not 1 <= top <= max_limit:
            raise _invalid("top", f"must be from 1 to {max_limit}")
        if not groups:
            raise _invalid("top", "needs a group_by: the top groups of what")
    clean_filters: dict[str, str] = {}
    for name, text in (filters or {}).items():
        if text is None or text == "":
            continue
        if name not in FILTERS:
            raise _invalid(name, "unknown filter")
        clean_filters[name] = (normalise_model(text) if name == "model"
                               else normalise_provider(text) if name == "provider" else text)
    query = UsageQuery(start, end, gran, tuple(groups), clean_filters, limit, top=top)
    if cursor:
        query = replace(query, after=decode_cursor(cursor, query))
    return query


def user_filter(user_id: str | None, *, tenant_id: str, key: bytes) -> str | None:
    """The `user_id` filter as stored: the tenant's pseudonym of the app's user id (a pseudonym stays as it
    is); `Invalid` naming `user_id` for a value no event can carry."""
    if user_id is None or user_id == "":
        return None
    if len(user_id) > MAX_USER_ID_CHARS:
        raise _invalid("user_id", f"at most {MAX_USER_ID_CHARS} characters")
    if re.fullmatch(NO_CONTROL_CHARS, user_id) is None:
        raise _invalid("user_id", "holds a control character")
    return pseudonym(tenant_id, user_id, key)


def encode_cursor(query: UsageQuery, row: Mapping[str, Any]) -> str:
    """The cursor of the page after `row` (a result row: its sort columns are read)."""
    values = [row[name].isoformat() if isinstance(row[name], datetime) else row[name] for name in query.sort_names]
    return cursors.encode(values, scope=query.fingerprint())


def decode_cursor(cursor: str, query: UsageQuery) -> tuple[Any, ...]:
    """The sort key a cursor of `query` carries; `Invalid` for a cursor of another query, or none of ours."""
    try:
        values = cursors.decode(cursor, scope=query.fingerprint())
    except cursors.InvalidCursor as exc:
        raise _invalid("cursor", str(exc)) from None
    if len(values) != len(query.sort_names):
        raise _invalid("cursor", "the cursor belongs to another query")
    out: list[Any] = []
    for name, value in zip(query.sort_names, values, strict=True):
        if name == "bucket":
            try:
                out.append(datetime.fromisoformat(value))
            except (TypeError, ValueError):
                raise _invalid("cursor", "not a cursor this API returned") from None
        elif isinstance(value, str):
            out.append(value)
        else:
            raise _invalid("cursor", "not a cursor this API returned")
    return tuple(out)


def _aligned(at: datetime, unit: timedelta) -> bool:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) % unit == timedelta(0)


def _month_start(at: datetime) -> bool:
    return at == at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def choose_source(query: UsageQuery) -> Source:
    """The narrowest source that answers `query` exactly (see the module docstring)."""
    hours = _aligned(query.start, timedelta(hours=1)) and _aligned(query.end, timedelta(hours=1))
    days = _aligned(query.start, timedelta(days=1)) and _aligned(query.end, timedelta(days=1))
    by_user = GroupField.USER in query.group_by or "user_id" in query.filters  # users: ledger or by-user rollup
    by_tag = GroupField.TAG in query.group_by
    if hours and not query.group_by and not query.filters:
        return Source.HOURLY_TOTALS
    if (by_user and query.group_by in ((), (GroupField.USER,)) and set(query.filters) <= {"user_id"}
            and query.granularity in (Granularity.MONTH, None) and _month_start(query.start)
            and _month_start(query.end)):
        return Source.MONTHLY_USERS
    if by_user or by_tag:
        # The by-user and by-tag rollups are daily, have one of the two each, and no prompt columns.
        if (by_user and by_tag) or GroupField.PROMPT in query.group_by or not days \
                or query.granularity is Granularity.HOUR:
            return Source.LEDGER
        return Source.DAILY_USERS if by_user else Source.DAILY_TAGS
    if query.granularity is Granularity.HOUR:
        return Source.HOURLY if hours else Source.LEDGER
    if days:
        return Source.DAILY
    return Source.HOURLY if hours else Source.LEDGER


def usage_row(record: Mapping[str, Any], query: UsageQuery) -> dict[str, Any]:
    """One result row, JSON-ready: money as strings, empty user and tag values as null."""
    out: dict[str, Any] = {}
    if query.granularity is not None:
        out["bucket"] = iso_utc(record["bucket"])
    for name, _ in query.columns:
        value = record[name]
        out[name] = None if value == "" and name in ("user_id", "tag") else value
    for name in ("event_count", "unpriced_count", *TOKEN_COLUMNS):
        out[name] = int(record[name] or 0)
    for name in COST_COLUMNS:
        value = record[name]  # exact decimal text from `store.usage` (a Decimal from elsewhere)
        out[name] = value if isinstance(value, str) else money_str(value or ZERO)
    return out


def csv_columns(query: UsageQuery) -> list[str]:
    """The CSV export's columns: the bucket (with a granularity), the group columns, then the measures."""
    return ((["bucket"] if query.granularity is not None else []) + [name for name, _ in query.columns]
            + list(MEASURES))


def iso_utc(at: datetime) -> str:
    """An instant as ISO 8601 in UTC with `Z`: `2026-11-01T00:00:00Z`."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
