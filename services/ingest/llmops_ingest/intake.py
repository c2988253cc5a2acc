"""From a request body to validated events: pure functions, no I/O.

A body is one event object, or `{"interactions": [event, ...]}`. Each event is validated on its own,
so one bad event does not cost the others; `tenant_id` comes from the API key, never from the body; an
`occurred_at` outside the accepted `TimeWindow` around the server's time is refused, naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from llmops_shared.contract import MAX_EVENT_BYTES, Interaction, field_errors


class BodyError(Exception):
    """The request as a whole is unusable (unparseable, too large, wrong shape)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class TimeWindow:
    """The `occurred_at` instants accepted: from `max_age` before `now` to `max_ahead` after it."""

    now: datetime
    max_age: timedelta
    max_ahead: timedelta

    def refusal(self, at: datetime) -> str | None:
        """Why `at` is refused, or None when it is within the window."""
        if at < self.now - self.max_age:
            return (f"more than {_span(self.max_age)} before the server's time ({_iso(self.now)}): too old "
                    "(the limit is LLMOPS_INGEST_MAX_AGE_DAYS)")
        if at > self.now + self.max_ahead:
            return (f"more than {_span(self.max_ahead)} after the server's time ({_iso(self.now)}): check the "
                    "producer's clock (the limit is LLMOPS_INGEST_MAX_AHEAD_S)")
        return None


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 86_400 and seconds % 86_400 == 0:
        return f"{int(seconds // 86_400)} day(s)"
    return f"{seconds:g} s"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Intake:
    accepted: list[Interaction] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)  # wire form of `accepted`, same order
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"index": i, "errors": [...]}

    @property
    def count(self) -> int:
        return len(self.accepted) + len(self.rejected)


def parse_body(body: bytes, *, max_events: int) -> tuple[list[Any], bool]:
    """The body's items, and whether it was a batch. Raises `BodyError` (400 or 413)."""
    if not body.strip():
        raise BodyError(400, "empty body; send one event object or {\"interactions\": [...]}")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BodyError(400, "body must be a JSON object: one event, or {\"interactions\": [...]}")
    if "interactions" not in doc:
        return [doc], False
    if len(doc) != 1:
        extra = sorted(k for k in doc if k != "interactions")
        raise BodyError(400, f"a batch has only the field 'interactions'; unknown: {', '.join(extra)}")
    items = doc["interactions"]
    if not isinstance(items, list):
        raise BodyError(400, "'interactions' must be a list of events")
    if not items:
        raise BodyError(400, "'interactions' is empty")
    if len(items) > max_events:
        raise BodyError(413, f"{len(items)} events in one request; the limit is {max_events}")
    return items, True


def validate_items(items: list[Any], *, tenant_id: str, window: TimeWindow | None = None) -> Intake:
    """Each item validated on its own (and its `occurred_at` within `window`, when given)."""
    intake = Intake()
    for index, item in enumerate(items):
        errors = _validate_one(item, tenant_id, intake, window)
        if errors:
            intake.rejected.append({"index": index, "errors": errors})
    return intake


def _validate_one(item: Any, tenant_id: str, intake: Intake, window: TimeWindow | None) -> list[dict[str, str]]:
    if not isinstance(item, dict):
        return [{"field": "(event)", "message": "an event must be a JSON object"}]
    claimed = item.get("tenant_id")
    if claimed is not None and claimed != tenant_id:
        return [{"field": "tenant_id", "message": "does not match the API key's tenant (omit it; the key sets it)"}]
    try:
        event = Interaction.model_validate({**item, "tenant_id": tenant_id})
    except ValidationError as exc:
        return field_errors(exc)
    if window is not None and (refused := window.refusal(event.occurred_at)) is not None:
        return [{"field": "occurred_at", "message": refused}]
    payload = event.to_json()
    if len(payload) > MAX_EVENT_BYTES:
        return [{"field": "(event)", "message": f"event is {len(payload)} bytes; the limit is {MAX_EVENT_BYTES}"}]
    intake.accepted.append(event)
    intake.payloads.append(payload)
    return []
