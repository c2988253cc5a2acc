"""What billing reads of an interaction event, decoded fast: `decode_billable(payload) -> Billable`.

The full contract (`llmops_shared.contract.decode_interaction`) validates every field of an event, its
messages included, and was the largest cost of the billing worker. Billing reads 17 fields; this module
validates just those, by the contract's own rules, and gives the same values (`tests/unit/billing/
test_billable.py` decodes a corpus of valid and invalid events both ways and compares):

- **the fast path** (msgspec) takes the billed fields in their plain forms (a hyphenated UUID, an RFC 3339
  time with seconds and an offset) and skips the other fields without building them (`msgspec.Raw`: their
  JSON is checked for syntax only). It refuses an unknown top-level field, as the contract does;
- **everything else** (a bad event, or a good one in a form the fast path leaves alone, such as a UUID
  without hyphens or a Unix time) goes to `BillableInteraction`, a pydantic model made of the contract's own
  field types, which decides, and names the field in the `BadEvent` as `decode_interaction` does.

So an event is refused by billing exactly when one of its billed fields (or their cross-checks: cached
tokens within input tokens, reasoning within output tokens, status and error present together) breaks the
contract, or it is not JSON, or it has an unknown field or schema version. What is not checked here: the
fields billing does not read (messages, metadata, latencies, the error's content). An event bad only there
is billed, where the guardrails worker dead-letters it; the ingest API validates every event against the
whole contract at the door, so only a producer writing straight to Kafka can send one.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from llmops_shared.contract import (
    MAX_SHORT_TEXT_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TOKENS,
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
    BadEvent,
    Identifier,
    Interaction,
    PromptRef,
    ShortText,
    SpanKind,
    Status,
    Tag,
    UnsupportedSchemaVersion,
    Usage,
    describe_errors,
)

BILLED_FIELDS = ("event_id", "schema_version", "occurred_at", "tenant_id", "app_id", "environment", "trace_id",
                 "span_id", "span_kind", "provider", "model", "response_model", "usage", "status", "prompt",
                 "user_id", "tags")
"""The contract's fields billing reads (and validates); `error` is looked at only for being there."""


class BillableInteraction(BaseModel):
    """The billed fields of an `Interaction`, with the contract's types; the others taken as anything."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    event_id: uuid.UUID
    schema_version: Annotated[int, Strict()] = SCHEMA_VERSION
    occurred_at: AwareDatetime
    tenant_id: Identifier
    app_id: Identifier
    environment: Identifier = "production"
    trace_id: Identifier
    span_id: Identifier
    span_kind: SpanKind = SpanKind.LLM
    provider: Identifier | None = None
    model: Identifier | None = None
    response_model: Identifier | None = None
    usage: Usage | None = None
    status: Status = Status.OK
    prompt: PromptRef | None = None
    user_id: ShortText | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = Field(default_factory=list)
    # Not read by billing: present in the contract, not validated here.
    error: Any = None
    parent_span_id: Any = None
    name: Any = None
    input: Any = None
    output: Any = None
    latency_ms: Any = None
    time_to_first_token_ms: Any = None
    session_id: Any = None
    metadata: Any = None

    @model_validator(mode="after")
    def _known_version_and_error_matches_status(self) -> BillableInteraction:
        if self.schema_version not in SUPPORTED_SCHEMA_VERSIONS:  # as the contract's validator says it
            known = sorted(SUPPORTED_SCHEMA_VERSIONS)
            raise ValueError(f"unsupported schema_version {self.schema_version}; this build knows {known}")
        if self.status is Status.ERROR and self.error is None:
            raise ValueError("status is 'error' but no error is given")
        if self.status is Status.OK and self.error is not None:
            raise ValueError("error is given but status is 'ok'")
        return self


_Tokens = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)]
_NULL = msgspec.Raw(b"null")


class BilledUsage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An event's token counts (the contract's `Usage`): what the fast path decodes, and what it returns."""

    input_tokens: _Tokens = 0
    output_tokens: _Tokens = 0
    cache_read_input_tokens: _Tokens = 0
    cache_write_input_tokens: _Tokens = 0
    reasoning_tokens: _Tokens = 0


class BilledPrompt(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An event's prompt reference (the contract's `PromptRef`); its identifiers are checked by `_fast`."""

    name: str
    version: str | None = None
    variant: str | None = None


class Billable(msgspec.Struct, frozen=True):
    """The billed fields of one interaction event, validated (`decode_billable`); `ledger_row` reads it as it
    reads an `Interaction`. (A msgspec struct for its quick construction: it is never decoded itself.)"""

    event_id: uuid.UUID
    occurred_at: datetime
    tenant_id: str
    app_id: str
    environment: str
    trace_id: str
    span_id: str
    span_kind: SpanKind
    status: Status
    provider: str | None
    model: str | None
    response_model: str | None
    usage: BilledUsage | None
    prompt: BilledPrompt | None
    user_id: str | None
    tags: list[str]
    schema_version: int = SCHEMA_VERSION


def _from_model(m: BillableInteraction) -> Billable:
    u, p = m.usage, m.prompt
    return Billable(
        event_id=m.event_id, occurred_at=m.occurred_at, tenant_id=m.tenant_id, app_id=m.app_id,
        environment=m.environment, trace_id=m.trace_id, span_id=m.span_id, span_kind=m.span_kind, status=m.status,
        provider=m.provider, model=m.model, response_model=m.response_model,
        usage=None if u is None else BilledUsage(u.input_tokens, u.output_tokens, u.cache_read_input_tokens,
                                                 u.cache_write_input_tokens, u.reasoning_tokens),
        prompt=None if p is None else BilledPrompt(p.name, p.version, p.variant),
        user_id=m.user_id, tags=m.tags, schema_version=m.schema_version)


# --------------------------------------------------------------------------------------------------
# The fast path. msgspec checks types, numbers and counts; the strings' patterns are checked here, all the
# identifiers of an event with one regular expression over them joined by NUL (which no identifier may hold:
# a value holding one is told by the count of separators), and the texts likewise.

_ID = r"[A-Za-z0-9][A-Za-z0-9._:/@-]*"  # lengths are checked apart: bounded repeats are slow in `re`
_IDS = re.compile(rf"{_ID}(?:\x00{_ID})*")
_TEXT = r"[^\x00-\x08\x0b\x0c\x0e-\x1f]"
_TEXTS = re.compile(rf"{_TEXT}+(?:\x00{_TEXT}+)*")


class _Wire(msgspec.Struct, forbid_unknown_fields=True):
    event_id: uuid.UUID  # msgspec takes the hyphenated and the 32-digit forms, as the contract does
    occurred_at: str
    tenant_id: str
    app_id: str
    trace_id: str
    span_id: str
    schema_version: Literal[1] = 1
    environment: str = "production"
    span_kind: SpanKind = SpanKind.LLM
    provider: str | None = None
    model: str | None = None
    response_model: str | None = None
    usage: BilledUsage | None = None
    status: Status = Status.OK
    prompt: BilledPrompt | None = None
    user_id: str | None = None
    tags: Annotated[list[str], msgspec.Meta(max_length=MAX_TAGS)] = []
    # Not read by billing: skipped unparsed (JSON syntax checked).
    error: msgspec.Raw = _NULL
    parent_span_id: msgspec.Raw = _NULL
    name: msgspec.Raw = _NULL
    input: msgspec.Raw = _NULL
    output: msgspec.Raw = _NULL
    latency_ms: msgspec.Raw = _NULL
    time_to_first_token_ms: msgspec.Raw = _NULL
    session_id: msgspec.Raw = _NULL
    metadata: msgspec.Raw = _NULL


# The plain form of a time only (RFC 3339, with seconds and an offset); every other form the contract takes
# goes to pydantic.
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})")
_decode_wire = msgspec.json.Decoder(_Wire).decode


def _all_match(pattern: re.Pattern[str], values: list[str], max_chars: int) -> bool:
    """Whether each of `values` (none empty, none longer than `max_chars`) matches `pattern` (whose NUL-joined
    form it matches)."""
    joined = "\x00".join(values)
    return (joined.count("\x00") == len(values) - 1 and max(map(len, values)) <= max_chars
            and pattern.fullmatch(joined) is not None)


class _Known:
    """Strings already found to match a field's rule (pattern and length), so that the values a stream repeats
    (tenants, apps, environments, providers, models, prompts, users, tags) are checked once per process: a
    string's validity depends on the string alone, so a remembered answer is the answer. At most `limit`
    strings are remembered (emptied when full)."""

    __slots__ = ("good", "limit", "max_chars", "pattern")

    def __init__(self, pattern: re.Pattern[str], max_chars: int, limit: int = 65_536) -> None:
        self.pattern, self.max_chars, self.limit = pattern, max_chars, limit
        self.good: set[str] = set()

    def all_match(self, values: list[str], checked: list[str] | None = None) -> bool:
        """Whether every one of `values` and of `checked` matches; `checked` are checked every time and never
        remembered (values unique to an event, such as its trace and span ids)."""
        good = self.good
        new = [v for v in values if v not in good]
        todo = new if checked is None else [*checked, *new]
        if not todo:
            return True
        if not _all_match(self.pattern, todo, self.max_chars):
            return False
        if new:
            if len(good) + len(new) > self.limit:
                good.clear()
            good.update(new)
        return True


_KNOWN_IDS = _Known(_IDS, 128)
_KNOWN_TAGS = _Known(_TEXTS, MAX_TAG_CHARS)
_KNOWN_USERS = _Known(_TEXTS, MAX_SHORT_TEXT_CHARS)


def _fast(payload: bytes) -> Billable | None:
    """The event decoded by the fast path, or None when the fast path does not take it."""
    try:
        payload.decode()  # msgspec does not check the UTF-8 of what it skips; the contract refuses bad UTF-8
        w = _decode_wire(payload)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    p = w.prompt
    ids = [w.tenant_id, w.app_id, w.environment]
    ids += [v for v in (w.provider, w.model, w.response_model) if v is not None]
    if p is not None:
        ids += [v for v in (p.name, p.version, p.variant) if v is not None]
    if not _KNOWN_IDS.all_match(ids, [w.trace_id, w.span_id]):
        return None
    tags = w.tags
    if tags and not _KNOWN_TAGS.all_match(tags):
        return None
    if w.user_id is not None and not _KNOWN_USERS.all_match([w.user_id]):
        return None
    if _TIME.fullmatch(w.occurred_at) is None:
        return None
    try:
        occurred_at = datetime.fromisoformat(w.occurred_at)
    except ValueError:
        return None
    u = w.usage
    if u is not None and (u.cache_read_input_tokens + u.cache_write_input_tokens > u.input_tokens
                          or u.reasoning_tokens > u.output_tokens):
        return None
    if (w.status is Status.ERROR) is (w.error == _NULL):  # the contract: an error exactly when status is error
        return None
    return Billable(
        event_id=w.event_id, occurred_at=occurred_at, tenant_id=w.tenant_id, app_id=w.app_id,
        environment=w.environment, trace_id=w.trace_id, span_id=w.span_id, span_kind=w.span_kind, status=w.status,
        provider=w.provider, model=w.model, response_model=w.response_model,
        usage=u, prompt=p, user_id=w.user_id, tags=tags)


def decode_billable(payload: bytes | None) -> Billable:
    """Parse one Kafka message value into the billed fields of its interaction, or raise `BadEvent` (with
    `decode_interaction`'s reasons: `empty`, `bad_json`, `unsupported_schema_version`, `schema_violation`)."""
    if payload is None:
        raise BadEvent("empty", "message has no value")
    fast = _fast(payload)
    if fast is not None:
        return fast
    try:
        return _from_model(BillableInteraction.model_validate_json(payload))
    except ValidationError:
        pass  # tell bad JSON, an unknown schema version and a schema violation apart, below
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BadEvent("bad_json", str(exc)) from exc
    if not isinstance(raw, dict):
        raise BadEvent("bad_json", "an event must be a JSON object")
    version = raw.get("schema_version", SCHEMA_VERSION)
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise UnsupportedSchemaVersion("unsupported_schema_version", f"schema_version {version!r}")
    try:
        return _from_model(BillableInteraction.model_validate(raw))
    except ValidationError as exc:
        raise BadEvent("schema_violation", "; ".join(describe_errors(exc))) from exc


assert set(BillableInteraction.model_fields) == set(Interaction.model_fields) == set(_Wire.__struct_fields__)
