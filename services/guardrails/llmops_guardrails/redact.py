"""Redaction of spans in a text the engine holds: mask, hash or partial.

- mask: `[EMAIL_ADDRESS]`
- hash: `<EMAIL_ADDRESS:ab12cd34>`, the first 8 hex digits of the value's salted HMAC, so equal values
  stay recognisably equal across events without being readable;
- partial: `****1234`, the last four letters or digits kept (fully masked when the value has fewer than 8).

Overlapping (or touching) spans are merged into one; the merged span takes the most protective mode
(mask > hash > partial) and the label of its highest-scoring span.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from llmops_guardrails.findings import value_hash
from llmops_guardrails.policy import RedactionMode

_STRENGTH = {RedactionMode.PARTIAL: 0, RedactionMode.HASH: 1, RedactionMode.MASK: 2}


class Redaction(NamedTuple):
    """A span to redact (a tuple: the engine makes one per redacted finding, 5x cheaper than a frozen dataclass)."""

    start: int
    end: int
    label: str
    mode: RedactionMode
    score: float = 1.0


def merge_spans(spans: Sequence[Redaction]) -> list[Redaction]:
    merged: list[Redaction] = []
    for r in sorted(spans, key=lambda r: (r.start, -r.end)):
        if merged and r.start <= merged[-1].end:
            last = merged[-1]
            top = last if last.score >= r.score else r
            mode = last.mode if _STRENGTH[last.mode] >= _STRENGTH[r.mode] else r.mode
            merged[-1] = Redaction(last.start, max(last.end, r.end), top.label, mode, max(last.score, r.score))
        else:
            merged.append(r)
    return merged


def replacement(value: str, label: str, mode: RedactionMode, salt: bytes | str) -> str:
    if mode is RedactionMode.MASK:
        return f"[{label}]"
    if mode is RedactionMode.HASH:
        return f"<{label}:{value_hash(value, salt)[:8]}>"
    tail = [c for c in value if c.isalnum()]
    if len(tail) < 8:
        return "****"
    return "****" + "".join(tail[-4:])


def redact(text: str, spans: Sequence[Redaction], salt: bytes | str) -> str:
    if not spans:
        return text
    out = []
    cursor = 0
    for r in merge_spans(spans):
        out.append(text[cursor:r.start])
        out.append(replacement(text[r.start:r.end], r.label, r.mode, salt))
        cursor = r.end
    out.append(text[cursor:])
    return "".join(out)
