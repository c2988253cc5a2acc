"""What the detectors find, in the form that leaves the scanner.

Detectors return `Hit`s: a span of the text they were given, a kind (entity type or rule), a score. A hit
never holds the matched value. The engine turns hits into `Finding`s, adding where the text sits in the
interaction and `value_hash`, an HMAC-SHA256 of the matched value under a secret salt: findings can be
stored, logged and compared ("the same card number in 40 events") without the value itself. The redactor
works from the spans, on the text the engine already holds.

Scores are in [0, 1], higher means riskier (more likely to be what the detector looks for, or worse);
`docs/guardrails.md` says how each detector computes its score.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class Detector(StrEnum):
    PII = "pii"
    SECRETS = "secrets"
    INJECTION = "injection"
    TERMS = "terms"
    SIZE = "size"
    OUTPUT = "output"


@dataclass(frozen=True, slots=True)
class Hit:
    """One detection on one text: a span and a score, never the value."""

    detector: Detector
    kind: str
    start: int
    end: int
    score: float
    signals: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score {self.score} outside [0, 1]")
        if not 0 <= self.start <= self.end:
            raise ValueError(f"bad span {self.start}..{self.end}")


_HIT_SETTERS = tuple(getattr(Hit, f).__set__ for f in ("detector", "kind", "start", "end", "score", "signals"))


def hit_of(detector: Detector, kind: str, start: int, end: int, score: float, *, signals: tuple[str, ...] = ()
           ) -> Hit:
    """`Hit(detector, kind, start, end, score, signals)`, the same object, made without the frozen dataclass's
    `__init__` (six `object.__setattr__` calls and `__post_init__`: 0.98 µs) when the checks `__post_init__` makes
    pass (0.55 µs; the PII detector makes ~17 an event). Values that fail them go through `Hit(...)`, which raises
    as before."""
    if not (0.0 <= score <= 1.0 and 0 <= start <= end):
        return Hit(detector, kind, start, end, score, signals)
    hit = _new(Hit)
    d, k, s, e, c, g = _HIT_SETTERS
    d(hit, detector)
    k(hit, kind)
    s(hit, start)
    e(hit, end)
    c(hit, score)
    g(hit, signals)
    return hit


_ROUNDED: dict[float, float] = {}  # a float score in [0, 1] -> round(score, 4): scores come from a few dozen values
_ROUNDED_MAX = 4096


def clamped_score(score: float) -> float:
    """`round(min(1.0, max(0.0, score)), 4)`, remembered for float scores (`round` with digits costs ~0.5 µs; a
    detector's scores take a few dozen distinct values). Only a `float` (not a subclass, nor numpy's) is looked up,
    and the clamped value is never -0.0 (`max(0.0, -0.0)` is the first, 0.0), so equal keys round alike."""
    clamped = min(1.0, max(0.0, score))
    if type(clamped) is not float:
        return round(clamped, 4)
    out = _ROUNDED.get(clamped)
    if out is None:
        out = round(clamped, 4)
        if len(_ROUNDED) < _ROUNDED_MAX:
            _ROUNDED[clamped] = out
    return out


_BLOCK = 64  # SHA-256's block size, in bytes


@functools.lru_cache(maxsize=16)
def _pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states that have already read HMAC's inner and outer padded keys (RFC 2104: a key longer than a block
    is hashed first, then zero-padded to one block). A value's HMAC is then two copies, two updates and a digest:
    half the cost of copying a keyed `hmac.HMAC` (whose `copy` and `update` are Python wrappers), the same digest."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in key)), hashlib.sha256(bytes(b ^ 0x5C for b in key)))


def value_hash(value: str, salt: bytes | str) -> str:
    """HMAC-SHA256 of `value` keyed by `salt`, hex: equal values give equal hashes, values stay secret."""
    inner, outer = _pads(salt.encode() if isinstance(salt, str) else salt)
    inner = inner.copy()
    inner.update(value.encode("utf-8", "surrogatepass"))
    outer = outer.copy()
    outer.update(inner.digest())
    return str(outer.hexdigest())


Side = Literal["input", "output"]


class Finding(BaseModel):
    """A hit placed in an interaction. Holds no raw text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    detector: Detector
    kind: str = Field(description="entity type (pii), rule name (secrets, terms, size, output) or 'prompt_injection'")
    side: Side
    message_index: int | None = Field(None, description="index in input/output messages; None for a plain string")
    part_index: int | None = Field(None, description="index of the content part, for multi-part messages")
    tool_call_index: int | None = Field(None, description="set when the span is in a tool call's arguments")
    role: str
    start: int
    end: int
    score: float = Field(ge=0.0, le=1.0)
    value_hash: str
    signals: tuple[str, ...] = ()


_FIELDS = tuple(Finding.model_fields)
_FIELDS_SET = set(_FIELDS)  # copied for each finding (`set.copy` is cheaper than building one from the tuple)
_SIDES = frozenset({"input", "output"})
_new = object.__new__
_set = object.__setattr__


def _plain(x: object) -> bool:
    return x is None or type(x) is int


class Place(Protocol):
    """Where a text sits in an interaction (the engine's `Segment`)."""

    @property
    def side(self) -> Side: ...
    @property
    def message_index(self) -> int | None: ...
    @property
    def part_index(self) -> int | None: ...
    @property
    def tool_call_index(self) -> int | None: ...
    @property
    def role(self) -> str: ...


def plain_place(where: Place) -> bool:
    """Whether `where`'s values have the exact types validation would leave them with (`finding_of`'s check of them:
    the engine makes it once per text, not once per finding)."""
    side = where.side
    return (type(side) is str and side in _SIDES and type(where.role) is str and _plain(where.message_index)
            and _plain(where.part_index) and _plain(where.tool_call_index))


def finding_of(hit: Hit, where: Place, value_hash: str, plain: bool | None = None) -> Finding:
    """`Finding(detector=hit.detector, kind=hit.kind, side=where.side, ..., signals=hit.signals)`, the same object,
    without validating it again when every value already has the exact type and range validation would leave it
    with (a `Hit` checked its span and score when it was made): 0.4 µs instead of 1.7 µs, for the engine's ~20
    findings an event. Anything else (a bool or a float where an int belongs, a list of signals, a
    score outside [0, 1]...) is validated as `Finding(...)` would, and converted or refused the same way. `plain`:
    `plain_place(where)`, if the caller has it."""
    score, start, end, signals = hit.score, hit.start, hit.end, hit.signals
    side, message_index, part_index, tool_call_index, role = (where.side, where.message_index, where.part_index,
                                                              where.tool_call_index, where.role)
    if plain is None:
        plain = plain_place(where)
    if (plain and type(score) is float and 0.0 <= score <= 1.0 and type(start) is int and type(end) is int
            and type(hit.kind) is str and type(value_hash) is str and type(hit.detector) is Detector
            and type(signals) is tuple and (not signals or all(type(s) is str for s in signals))):
        finding = _new(Finding)
        _set(finding, "__dict__", {
            "detector": hit.detector, "kind": hit.kind, "side": side, "message_index": message_index,
            "part_index": part_index, "tool_call_index": tool_call_index, "role": role, "start": start, "end": end,
            "score": score, "value_hash": value_hash, "signals": signals})
        _set(finding, "__pydantic_fields_set__", _FIELDS_SET.copy())
        _set(finding, "__pydantic_extra__", None)
        _set(finding, "__pydantic_private__", None)
        return finding
    return Finding(detector=hit.detector, kind=hit.kind, side=side, message_index=message_index,
                   part_index=part_index, tool_call_index=tool_call_index, role=role, start=start, end=end,
                   score=score, value_hash=value_hash, signals=signals)
