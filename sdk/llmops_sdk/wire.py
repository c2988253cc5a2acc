"""Events on the wire: one event as the JSON the ingest API (or Kafka) takes, made on the sender thread.

`to_payload` fills in what the app's thread left out (the configured defaults, ISO timestamps, trace and
span ids) and serializes; `Deferred` marks a field computed only then, off the app's thread.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from typing import Any

from llmops_sdk.context import new_span_id, new_trace_id
from llmops_sdk.transport import Payload

MAX_EVENT_BYTES = 1_000_000  # the contract's limit per event
_UTC = dt.timezone.utc  # noqa: UP017 - datetime.UTC is 3.11+; the SDK runs on 3.9


class Deferred:
    """An event field computed on the sender thread, when the event is serialized, rather than on the
    app's thread: `record({"output": Deferred(fn, response)})`. `fn(*args)` must return JSON-able data
    (or None) and must not depend on anything the app changes after the call."""

    __slots__ = ("args", "fn")

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn = fn
        self.args = args

    def __call__(self) -> Any:
        return self.fn(*self.args)


def to_payload(event: dict[str, Any], defaults: dict[str, Any]) -> Payload | None:
    """The event (over `defaults`) as its Kafka key and JSON; None if it cannot be serialized or is too large."""
    try:
        wire = {**defaults, **event}
        occurred = wire.get("occurred_at")
        if isinstance(occurred, (int, float)) and not isinstance(occurred, bool):
            wire["occurred_at"] = dt.datetime.fromtimestamp(occurred, _UTC).isoformat()
        if wire.get("trace_id") is None:
            wire["trace_id"] = new_trace_id()
        if wire.get("span_id") is None:
            wire["span_id"] = new_span_id()
        wire = {k: v for k, v in wire.items() if v is not None}
        value = json.dumps(wire, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                           default=_json_default).encode("utf-8")
    except Exception:  # not JSON-able (or a Deferred that failed): this event only is invalid
        return None
    if len(value) > MAX_EVENT_BYTES:
        return None
    return Payload(key=str(wire["trace_id"]).encode("utf-8", "replace"), value=value)


def _json_default(obj: Any) -> Any:
    if type(obj) is Deferred:
        return obj()
    if isinstance(obj, dt.datetime):
        return (obj if obj.tzinfo else obj.replace(tzinfo=_UTC)).isoformat()
    if isinstance(obj, (dt.date, dt.time)):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).decode("utf-8", "replace")
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    raise TypeError(f"cannot serialize {type(obj).__name__}")
