"""A clean event within Kafka's message limit, and each of its texts within the contract's: pure.

Redaction can make an event grow: masking many short values with longer labels (`a1@x.io` ->
`[EMAIL_ADDRESS]`) turned a 936 KB event into 1.5 MB, past the clean topic's 1 MB `max.message.bytes`.
Publishing it then failed after the batch's commit, on every redelivery: a crash loop. So each clean event
is measured before it is published (`fit`):

- within `max_bytes` and every text within `max_text_chars` (the contract's `MAX_TEXT_CHARS`, which the
  evaluator validates): published as it is;
- otherwise the largest texts are cut, water-filling: every text longer than some cap is cut down to it and
  the shorter ones are left whole, the cap as high as the limit allows. A cut text ends in a marker saying
  so, `…[truncated by guardrails: 412345 characters removed]`, and the findings summary counts the cuts
  (`metadata.guardrails.truncated = {"texts": 2, "chars_removed": 812345}`). The texts are the messages'
  `content` (strings and text parts), tool-call `arguments`, and a plain-text `input` or `output`;
- if even that cannot make it fit (what is large is not text: thousands of messages, tool calls, tags),
  `CleanEventTooLarge` is raised; the worker then dead-letters that event alone (its error names sizes,
  never content).

Cutting happens after redaction, so a cut never reveals anything the policy would have hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from llmops_shared.contract import MAX_METADATA_BYTES, MAX_TEXT_CHARS, Interaction

MARKER = "…[truncated by guardrails: {removed} characters removed]"
_MARKER_BYTES = len(orjson.dumps(MARKER.format(removed=10**12))) - 2  # an upper bound for any count
SUMMARY_KEY = "guardrails"
_ROUNDS = 6


class CleanEventTooLarge(ValueError):
    """No cut of its texts makes the clean event fit. The message names sizes only."""


@dataclass(frozen=True)
class Truncation:
    texts: int
    chars_removed: int
    bytes_before: int
    bytes_after: int


@dataclass
class _Text:
    """One text of the event: where it is in the document, the original, and how much of it is kept."""

    holder: dict[str, Any]
    key: str
    original: str
    keep: int | None = None  # None: whole

    def rendered(self) -> str:
        if self.keep is None:
            return self.original
        return self.original[:self.keep] + MARKER.format(removed=len(self.original) - self.keep)

    def cut_to(self, budget_bytes: int) -> None:
        """Keep the longest prefix whose JSON encoding, marker included, fits `budget_bytes`."""
        room = max(0, budget_bytes - _MARKER_BYTES)
        low, high = 0, self.keep if self.keep is not None else len(self.original)
        while low < high:
            middle = (low + high + 1) // 2
            if _encoded_len(self.original[:middle]) <= room:
                low = middle
            else:
                high = middle - 1
        self.keep = low


def _encoded_len(text: str) -> int:
    return len(orjson.dumps(text)) - 2


def _texts(document: dict[str, Any]) -> list[_Text]:
    found: list[_Text] = []
    for side in ("input", "output"):
        value = document.get(side)
        if isinstance(value, str):
            found.append(_Text(document, side, value))
            continue
        for message in value if isinstance(value, list) else []:
            content = message.get("content")
            if isinstance(content, str):
                found.append(_Text(message, "content", content))
            elif isinstance(content, list):
                found.extend(_Text(part, "text", part["text"]) for part in content if isinstance(part.get("text"), str))
            for call in message.get("tool_calls") or []:
                if isinstance(call.get("arguments"), str):
                    found.append(_Text(call, "arguments", call["arguments"]))
    return found


def _too_long(interaction: Interaction, max_text_chars: int) -> bool:
    sides = [interaction.input, interaction.output]
    for side in sides:
        if isinstance(side, str):
            if len(side) > max_text_chars:
                return True
            continue
        for message in side or []:
            if isinstance(message.content, str) and len(message.content) > max_text_chars:
                return True
            if isinstance(message.content, list) and any(
                    part.text is not None and len(part.text) > max_text_chars for part in message.content):
                return True
            if any(len(call.arguments) > max_text_chars for call in message.tool_calls or []):
                return True
    return False


def _cap(costs: list[int], excess: int) -> int | None:
    """The highest cap (bytes per text, marker included) that removes at least `excess` bytes, or None."""
    def removed(cap: int) -> int:
        return sum(cost - cap for cost in costs if cost > cap)

    low, high = _MARKER_BYTES, max(costs, default=0)
    if high <= low or removed(low) < excess:
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if removed(middle) >= excess:
            low = middle
        else:
            high = middle - 1
    return low


def fit(interaction: Interaction, *, max_bytes: int, max_text_chars: int = MAX_TEXT_CHARS
        ) -> tuple[bytes, Truncation | None]:
    """The clean event's wire form, cut down if it must be (see the module). Raises `CleanEventTooLarge`."""
    encoded = interaction.to_json()
    if len(encoded) <= max_bytes and not _too_long(interaction, max_text_chars):
        return encoded, None
    before = len(encoded)
    document = interaction.model_dump(mode="json", exclude_none=True)
    texts = _texts(document)
    for text in texts:  # the contract's limit per text first
        if len(text.original) > max_text_chars:
            text.keep = max(0, max_text_chars - len(MARKER.format(removed=len(text.original))))
    for _ in range(_ROUNDS):
        cut = [t for t in texts if t.keep is not None]
        for text in texts:
            text.holder[text.key] = text.rendered()
        _note(document, texts=len(cut), chars_removed=sum(len(t.original) - (t.keep or 0) for t in cut))
        encoded = orjson.dumps(document)
        if len(encoded) <= max_bytes:
            return encoded, Truncation(len(cut), sum(len(t.original) - (t.keep or 0) for t in cut), before,
                                       len(encoded))
        costs = [_encoded_len(t.rendered()) for t in texts]
        cap = _cap(costs, len(encoded) - max_bytes)
        if cap is None:
            break
        for text, cost in zip(texts, costs, strict=True):
            if cost > cap:
                text.cut_to(cap)
    raise CleanEventTooLarge(f"the clean event is {len(encoded)} bytes after cutting its texts; "
                             f"the limit is {max_bytes}")


def _note(document: dict[str, Any], *, texts: int, chars_removed: int) -> None:
    """Count the cuts in the findings summary, if it is there and the metadata stays within its limit."""
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get(SUMMARY_KEY), dict):
        return
    noted = {**metadata, SUMMARY_KEY: {**metadata[SUMMARY_KEY],
                                      "truncated": {"texts": texts, "chars_removed": chars_removed}}}
    if len(orjson.dumps(noted)) <= MAX_METADATA_BYTES:
        document["metadata"] = noted
