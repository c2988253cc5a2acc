"""The interaction event: the one contract every producer and consumer of the suite shares.

One LLM call (or one step of a trace: a chain, a tool call, a retrieval) is one `Interaction`. Producers
(the SDK, the ingest API, other languages through `docs/interaction.schema.json`) build it; every stream
processor decodes it with `decode_interaction` and nothing else.

Versioning: `schema_version` is an integer. A consumer that meets a version it does not know raises
`UnsupportedSchemaVersion` (a `BadEvent`), and its worker dead-letters the message rather than guess.

Token accounting follows OpenAI's convention, so that a price per token can be applied without guessing:
`input_tokens` counts *all* prompt tokens, including the ones read from a prompt cache
(`cache_read_input_tokens`) and the ones written to it (`cache_write_input_tokens`); `output_tokens`
counts all completion tokens, including `reasoning_tokens`. Producers for providers that report them
separately (Anthropic) add them up.
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})

# Limits. An event travels as one Kafka message, so it stays well under the broker's 1 MiB default.
MAX_EVENT_BYTES = 1_000_000
MAX_MESSAGES = 1_000
MAX_TEXT_CHARS = 500_000
MAX_TAGS = 64
MAX_METADATA_KEYS = 64
MAX_METADATA_BYTES = 16_384
MAX_TOOL_CALLS = 128
MAX_TOKENS = 100_000_000
MAX_SHORT_TEXT_CHARS = 256
MAX_TAG_CHARS = 200
MAX_ERROR_MESSAGE_CHARS = 4096

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$"
"""Tenant, app, model, provider, evaluator and other ids: the one pattern every API and the contract use."""
Identifier = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN)]
NO_CONTROL_CHARS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"
"""Text may hold tab, newline and carriage return, no other control character: Postgres' text and jsonb
types refuse NUL, and the others are never meant (an event carrying them is refused at the door rather
than made to fail every consumer that stores it)."""
_CONTROL_CHAR_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F])")
ShortText = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_SHORT_TEXT_CHARS,
                                             pattern=NO_CONTROL_CHARS)]
Text = Annotated[str, StringConstraints(strict=True, max_length=MAX_TEXT_CHARS, pattern=NO_CONTROL_CHARS)]
TokenCount = Annotated[int, Strict(), Field(ge=0, le=MAX_TOKENS)]
Milliseconds = Annotated[float, Field(ge=0, le=86_400_000)]
Tag = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_TAG_CHARS, pattern=NO_CONTROL_CHARS)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class SpanKind(StrEnum):
    LLM = "llm"
    CHAIN = "chain"
    TOOL = "tool"
    RETRIEVER = "retriever"
    AGENT = "agent"
    EMBEDDING = "embedding"


class Status(StrEnum):
    OK = "ok"
    ERROR = "error"


class ContentPart(_Model):
    """One part of a multi-part message (text, or a reference to an image or file)."""

    type: ShortText
    text: Text | None = None
    url: Annotated[str, StringConstraints(max_length=4096, pattern=NO_CONTROL_CHARS)] | None = None


class ToolCall(_Model):
    id: ShortText | None = None
    type: Literal["function"] = "function"
    name: ShortText
    arguments: Text = ""


class ChatMessage(_Model):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Text | list[ContentPart] | None = None
    name: ShortText | None = None
    tool_calls: Annotated[list[ToolCall], Field(max_length=MAX_TOOL_CALLS)] | None = None
    tool_call_id: ShortText | None = None

    def text(self) -> str:
        """The message's text, multi-part contents joined by newlines."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content if part.text)


Messages = Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]


class Usage(_Model):
    """Token counts; see the module docstring for what includes what."""

    input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    cache_read_input_tokens: TokenCount = 0
    cache_write_input_tokens: TokenCount = 0
    reasoning_tokens: TokenCount = 0

    @model_validator(mode="after")
    def _parts_within_totals(self) -> Usage:
        if self.cache_read_input_tokens + self.cache_write_input_tokens > self.input_tokens:
            raise ValueError("cache_read_input_tokens + cache_write_input_tokens exceed input_tokens")
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError("reasoning_tokens exceed output_tokens")
        return self

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class ErrorInfo(_Model):
    type: ShortText
    message: Annotated[str, StringConstraints(max_length=MAX_ERROR_MESSAGE_CHARS, pattern=NO_CONTROL_CHARS)] = ""
    code: ShortText | None = None


class PromptRef(_Model):
    """Which managed prompt produced the input: for prompt versions and A/B tests."""

    name: Identifier
    version: Identifier | None = None
    variant: Identifier | None = None


class Interaction(_Model):
    """One interaction event (schema version 1).

    `tenant_id` is never trusted from a client: the ingest API sets it from the API key.
    """

    event_id: uuid.UUID
    schema_version: Annotated[int, Strict()] = SCHEMA_VERSION
    occurred_at: AwareDatetime
    tenant_id: Identifier
    app_id: Identifier
    environment: Identifier = "production"
    trace_id: Identifier
    span_id: Identifier
    parent_span_id: Identifier | None = None
    span_kind: SpanKind = SpanKind.LLM
    name: ShortText | None = None
    provider: Identifier | None = None
    model: Identifier | None = None
    response_model: Identifier | None = None
    input: Messages | Text | None = None
    output: Messages | Text | None = None
    usage: Usage | None = None
    latency_ms: Milliseconds | None = None
    time_to_first_token_ms: Milliseconds | None = None
    status: Status = Status.OK
    error: ErrorInfo | None = None
    prompt: PromptRef | None = None
    user_id: ShortText | None = None
    session_id: ShortText | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_SCHEMA_VERSIONS:
            known = sorted(SUPPORTED_SCHEMA_VERSIONS)
            raise ValueError(f"unsupported schema_version {value}; this build knows {known}")
        return value

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"metadata has {len(value)} keys; the limit is {MAX_METADATA_KEYS}")
        encoded = orjson.dumps(value)
        if len(encoded) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {len(encoded)} bytes as JSON; the limit is {MAX_METADATA_BYTES}")
        if b"\\u00" in encoded and _CONTROL_CHAR_ESCAPE.search(encoded):
            raise ValueError("metadata holds a control character (only tab, newline and carriage return are allowed)")
        return value

    @model_validator(mode="after")
    def _error_matches_status(self) -> Interaction:
        if self.status is Status.ERROR and self.error is None:
            raise ValueError("status is 'error' but no error is given")
        if self.status is Status.OK and self.error is not None:
            raise ValueError("error is given but status is 'ok'")
        if (
            self.time_to_first_token_ms is not None
            and self.latency_ms is not None
            and self.time_to_first_token_ms > self.latency_ms
        ):
            raise ValueError("time_to_first_token_ms exceeds latency_ms")
        return self

    def to_json(self) -> bytes:
        """The wire form: UTF-8 JSON, as it travels on Kafka."""
        return self.model_dump_json(exclude_none=True).encode()


# --------------------------------------------------------------------------------------------------
# Decoding, for consumers. One error type for a message that cannot be processed.


class BadEvent(Exception):
    """A message that can never be processed as it is: dead-letter it, do not retry it."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class UnsupportedSchemaVersion(BadEvent):
    pass


def decode_interaction(payload: bytes | None) -> Interaction:
    """Parse one Kafka message value into an `Interaction`, or raise `BadEvent`."""
    if payload is None:
        raise BadEvent("empty", "message has no value")
    try:  # the fast path, straight from JSON (about 30% quicker than parsing to a dict first)
        return Interaction.model_validate_json(payload)
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
        return Interaction.model_validate(raw)
    except ValidationError as exc:
        raise BadEvent("schema_violation", "; ".join(describe_errors(exc))) from exc


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Validation errors as `{"field": "usage.input_tokens", "message": ...}`, naming the field."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p))
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NO_CONTROL_CHARS:
            message = "holds a control character (only tab, newline and carriage return are allowed)"
        out.append({"field": loc or "(event)", "message": message})
    return out


def describe_errors(exc: ValidationError) -> list[str]:
    return [f"{e['field']}: {e['message']}" for e in field_errors(exc)]


def _is_union_tag(part: object) -> bool:
    # pydantic puts the union member it tried into the location ("list[ChatMessage]", "str"): noise for users.
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float"})


def interaction_json_schema() -> dict[str, Any]:
    """The JSON Schema producers in other languages validate against (tenant_id set by the server)."""
    schema = Interaction.model_json_schema(mode="validation")
    schema["$id"] = f"https://llmops.dev/schemas/interaction-v{SCHEMA_VERSION}.json"
    schema["title"] = f"Interaction (schema_version {SCHEMA_VERSION})"
    return schema
