"""How spans, traces and sessions look in the API, pure: records in, JSON-ready dicts out.

A span shows the field groups asked for (`query.FIELD_GROUPS`; `core` always, text only with `io`).
Money is a decimal string (USD), instants ISO 8601 in UTC with `Z`. `tree` nests a trace's spans under
their parents (a span whose parent is not stored, or is past retention, is a root).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

GROUP_FIELDS: dict[str, tuple[str, ...]] = {
    "core": ("event_id", "trace_id", "span_id", "parent_span_id", "span_kind", "name", "app_id", "environment",
             "occurred_at", "latency_ms", "ttft_ms", "status"),
    "model": ("provider", "model", "response_model"),
    "usage": ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_write_input_tokens",
              "reasoning_tokens", "cost_total", "unpriced"),
    "prompt": ("prompt_name", "prompt_version", "prompt_variant"),
    "trace": ("user_id", "session_id", "tags"),
    "findings": ("finding_count", "finding_types"),
    "error": ("error_type", "error_message"),
    "io": ("text_stored", "input", "output", "metadata"),
}


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def money(value: Decimal | None) -> str | None:
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".") or "0"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Decimal):
        return money(value)
    return value


def span_view(record: Mapping[str, Any], groups: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group in ("core", *sorted(set(groups) - {"core"})):
        for name in GROUP_FIELDS[group]:
            value = record[name]
            if name in ("input", "output", "metadata") and isinstance(value, str):
                value = orjson.loads(value)
            elif name in ("tags", "finding_types"):
                value = list(value or [])
            out[name] = _json_value(value)
    return out


def row_view(record: Mapping[str, Any], *, drop: Iterable[str] = ("event_ids", "sort_key")) -> dict[str, Any]:
    """A trace, session or summary row as JSON (money as strings, instants in UTC)."""
    dropped = set(drop)
    return {k: _json_value(list(v) if isinstance(v, list | tuple) else v) for k, v in record.items()
            if k not in dropped}


def tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`spans` (each with `span_id`, `parent_span_id`) nested: each gets `children`, in time order; the roots
    are returned. A cycle or a missing parent makes a root, never a lost span."""
    by_id: dict[str, dict[str, Any]] = {}
    for span in spans:
        span["children"] = []
        by_id.setdefault(span["span_id"], span)
    roots: list[dict[str, Any]] = []
    for span in spans:
        parent = by_id.get(span.get("parent_span_id") or "")
        if parent is None or parent is span or _descends(parent, span, by_id):
            roots.append(span)
        else:
            parent["children"].append(span)
    return roots


def _descends(node: dict[str, Any], ancestor: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> bool:
    """Whether `node` is below `ancestor` by parent links (a cycle in the producer's ids)."""
    seen: set[str] = set()
    current: dict[str, Any] | None = node
    while current is not None and current["span_id"] not in seen:
        if current is ancestor:
            return True
        seen.add(current["span_id"])
        current = by_id.get(current.get("parent_span_id") or "")
    return False
