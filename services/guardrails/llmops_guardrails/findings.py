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
import hmac
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

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


@functools.lru_cache(maxsize=16)
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 already keyed with `key`: a copy of it hashes a value without keying again (half the cost)."""
    return hmac.new(key, digestmod=hashlib.sha256)


def value_hash(value: str, salt: bytes | str) -> str:
    """HMAC-SHA256 of `value` keyed by `salt`, hex: equal values give equal hashes, values stay secret."""
    mac = _keyed(salt.encode() if isinstance(salt, str) else salt).copy()
    mac.update(value.encode("utf-8", "surrogatepass"))
    return mac.hexdigest()


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
