"""A clean event's span row, decoded fast: `decode_span(payload) -> SpanRow`.

The writer used to decode every message with the full contract (`llmops_shared.contract.decode_interaction`,
pydantic) and then build its row (`spans.span_row`, which dumps the messages back to JSON): together the
largest Python cost of the writer. The writer reads every field of an event, so nothing can be skipped;
this module checks the same rules faster and gives the same row (`tests/unit/traces/test_decoding.py`
decodes a corpus of valid and invalid events both ways and compares the rows and the reasons):

- **the fast path** (msgspec) takes an event in its plain forms: a hyphenated or 32-digit UUID, an RFC 3339
  time with seconds and an offset, numbers as numbers, no JSON escape that could stand for a character the
  contract refuses (a control character other than tab, newline and carriage return, or half of a surrogate
  pair: `_SUSPECT`), so that no string of it needs checking for those one by one. Types, lengths, counts,
  enums and bounds are msgspec's (`_Wire`), the identifiers' pattern and the cross-field rules are checked
  here, as the contract states them;
- **everything else** (a bad event, or a good one in a form the fast path leaves alone) goes to the contract
  itself, `decode_interaction` then `span_row`, which decides and names the field in the `BadEvent`.

So the fast path never takes an event the contract refuses, and gives the row the contract's event gives.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import orjson

from llmops_shared.contract import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_MESSAGES,
    MAX_METADATA_BYTES,
    MAX_METADATA_KEYS,
    MAX_SHORT_TEXT_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TEXT_CHARS,
    MAX_TOKENS,
    MAX_TOOL_CALLS,
    SpanKind,
    Status,
    decode_interaction,
)
from llmops_traces.spans import GUARDRAILS_SUMMARY_KEY, SpanRow, findings_summary, span_row

_ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SHORT_TEXT_CHARS)]
_Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TAG_CHARS)]
_Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]
_Tokens = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)]
_Milliseconds = Annotated[float, msgspec.Meta(ge=0, le=86_400_000)]


class _Part(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: _ShortText
    text: _Text | None = None
    url: Annotated[str, msgspec.Meta(max_length=4096)] | None = None


class _ToolCall(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: _ShortText | None = None
    type: Literal["function"] = "function"
    name: _ShortText
    arguments: _Text = ""


class _Message(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: _Text | list[_Part] | None = None
    name: _ShortText | None = None
    tool_calls: Annotated[list[_ToolCall], msgspec.Meta(max_length=MAX_TOOL_CALLS)] | None = None
    tool_call_id: _ShortText | None = None


_Messages = Annotated[list[_Message], msgspec.Meta(min_length=1, max_length=MAX_MESSAGES)]


class _Usage(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    input_tokens: _Tokens = 0
    output_tokens: _Tokens = 0
    cache_read_input_tokens: _Tokens = 0
    cache_write_input_tokens: _Tokens = 0
    reasoning_tokens: _Tokens = 0


class _Error(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: _ShortText
    message: Annotated[str, msgspec.Meta(max_length=MAX_ERROR_MESSAGE_CHARS)] = ""
    code: _ShortText | None = None


class _Prompt(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    version: str | None = None
    variant: str | None = None


class _Wire(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`Interaction`'s fields with its types, as msgspec checks them (identifiers' patterns apart)."""

    event_id: uuid.UUID  # msgspec takes the hyphenated and the 32-digit forms, as the contract does
    schema_version: Literal[1] = 1
    occurred_at: str
    tenant_id: str
    app_id: str
    environment: str = "production"
    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    span_kind: SpanKind = SpanKind.LLM
    name: _ShortText | None = None
    provider: str | None = None
    model: str | None = None
    response_model: str | None = None
    input: _Messages | _Text | None = None
    output: _Messages | _Text | None = None
    usage: _Usage | None = None
    latency_ms: _Milliseconds | None = None
    time_to_first_token_ms: _Milliseconds | None = None
    status: Status = Status.OK
    error: _Error | None = None
    prompt: _Prompt | None = None
    user_id: _ShortText | None = None
    session_id: _ShortText | None = None
    tags: Annotated[list[_Tag], msgspec.Meta(max_length=MAX_TAGS)] = []
    metadata: dict[str, Any] = {}


_decode_wire = msgspec.json.Decoder(_Wire).decode

# A JSON escape that may stand for a character the contract refuses in text (a control character but tab,
# newline and carriage return; `\b`, `\f`) or for half of a surrogate pair; also matches harmless text (an
# escaped backslash before a `b`), which only sends the event to the contract.
_SUSPECT = re.compile(rb"\\(?:u00[01]|u[dD][89a-fA-F]|[bf])")
_ID = r"[A-Za-z0-9][A-Za-z0-9._:/@-]*"  # the contract's IDENTIFIER_PATTERN; lengths are checked apart
_IDS = re.compile(rf"{_ID}(?:\x00{_ID})*")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})")


def _identifiers_ok(values: list[str]) -> bool:
    """Whether each of `values` is an identifier (1 to 128 characters of the contract's pattern): one match
    over them joined by NUL, which no identifier holds (a value holding one is told by the separators)."""
    joined = "\x00".join(values)
    return (joined.count("\x00") == len(values) - 1 and max(map(len, values)) <= 128
            and _IDS.fullmatch(joined) is not None)


def _part(p: _Part) -> dict[str, Any]:
    out: dict[str, Any] = {"type": p.type}
    if p.text is not None:
        out["text"] = p.text
    if p.url is not None:
        out["url"] = p.url
    return out


def _tool_call(c: _ToolCall) -> dict[str, Any]:
    out: dict[str, Any] = {} if c.id is None else {"id": c.id}
    out["type"], out["name"], out["arguments"] = c.type, c.name, c.arguments
    return out


def _message(m: _Message) -> dict[str, Any]:
    """What `ChatMessage.model_dump(mode="json", exclude_none=True)` gives (the same keys, in its order)."""
    out: dict[str, Any] = {"role": m.role}
    if m.content is not None:
        out["content"] = m.content if isinstance(m.content, str) else [_part(p) for p in m.content]
    if m.name is not None:
        out["name"] = m.name
    if m.tool_calls is not None:
        out["tool_calls"] = [_tool_call(c) for c in m.tool_calls]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


def _text_json(value: list[_Message] | str | None) -> str | None:
    """`spans._json` of an input or output: the stored JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    return orjson.dumps([_message(m) for m in value]).decode()


def _fast(payload: bytes) -> SpanRow | None:
    """The row of the event by the fast path, or None when the fast path does not take it."""
    if _SUSPECT.search(payload) is not None:
        return None
    try:
        payload.decode()  # the contract refuses bad UTF-8 anywhere
        w = _decode_wire(payload)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    p = w.prompt
    ids = [w.tenant_id, w.app_id, w.environment, w.trace_id, w.span_id]
    ids += [v for v in (w.parent_span_id, w.provider, w.model, w.response_model) if v is not None]
    if p is not None:
        ids += [v for v in (p.name, p.version, p.variant) if v is not None]
    if not _identifiers_ok(ids) or _TIME.fullmatch(w.occurred_at) is None:
        return None
    try:
        occurred_at = datetime.fromisoformat(w.occurred_at)
        metadata_json = orjson.dumps(w.metadata)
    except (ValueError, TypeError):  # orjson.JSONEncodeError is a TypeError
        return None
    if len(w.metadata) > MAX_METADATA_KEYS or len(metadata_json) > MAX_METADATA_BYTES:
        return None
    u = w.usage
    if u is not None and (u.cache_read_input_tokens + u.cache_write_input_tokens > u.input_tokens
                          or u.reasoning_tokens > u.output_tokens):
        return None
    if (w.status is Status.ERROR) is (w.error is None):  # an error exactly when the status says so
        return None
    latency, ttft = w.latency_ms, w.time_to_first_token_ms
    if latency is not None and ttft is not None and ttft > latency:
        return None
    count, types = findings_summary(w.metadata)
    metadata = {k: v for k, v in w.metadata.items() if k != GUARDRAILS_SUMMARY_KEY}
    e = w.error
    return SpanRow(
        tenant_id=w.tenant_id, occurred_at=occurred_at, event_id=str(w.event_id), trace_id=w.trace_id,
        span_id=w.span_id, parent_span_id=w.parent_span_id, span_kind=w.span_kind.value, name=w.name,
        app_id=w.app_id, environment=w.environment, provider=w.provider, model=w.model,
        response_model=w.response_model, status=w.status.value, error_type=e.type if e else None,
        error_message=e.message if e else None, prompt_name=p.name if p else None,
        prompt_version=p.version if p else None, prompt_variant=p.variant if p else None, user_id=w.user_id,
        session_id=w.session_id, tags=tuple(w.tags), latency_ms=latency, ttft_ms=ttft,
        input_tokens=u.input_tokens if u else 0, output_tokens=u.output_tokens if u else 0,
        cache_read_input_tokens=u.cache_read_input_tokens if u else 0,
        cache_write_input_tokens=u.cache_write_input_tokens if u else 0,
        reasoning_tokens=u.reasoning_tokens if u else 0, finding_count=count, finding_types=types,
        text_stored=True, input=_text_json(w.input), output=_text_json(w.output),
        metadata=orjson.dumps(metadata).decode() if metadata else None)


def decode_span(payload: bytes | None) -> SpanRow:
    """The span row (text kept) of one message of `llm.interactions.clean`, or `BadEvent` with the
    contract's reason (`empty`, `bad_json`, `unsupported_schema_version`, `schema_violation`)."""
    fast = _fast(payload) if payload is not None else None
    if fast is not None:
        return fast
    return span_row(decode_interaction(payload), metadata_only=False)
