"""OTLP attribute values as plain Python values, and the text clean-up every mapped string goes through."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any

import orjson
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def value_of(value: AnyValue) -> Any:
    """An `AnyValue` as str, bool, int, float, list, dict, or None when unset (bytes as base64 text)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return to_dict(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind) if kind else None


def to_dict(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """Key-value pairs as a dict; a key given twice keeps its last value."""
    return {kv.key: value_of(kv.value) for kv in pairs}


def clean(text: str, limit: int) -> str:
    """`text` without the control characters the contract refuses (each becomes U+FFFD), at most `limit` long."""
    if _CONTROL.search(text):
        text = _CONTROL.sub("\ufffd", text)
    return text[:limit]


def as_text(value: Any, limit: int) -> str | None:
    """A value as text: strings as they are, anything else as JSON; None for None and ""."""
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return clean(text, limit) or None


def maybe_json(value: Any) -> Any:
    """A string that holds a JSON object or array, parsed; anything else as it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def as_int(value: Any) -> int | None:
    """A token count as an int (OTLP/JSON may carry 64-bit integers as strings, some SDKs send doubles)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
