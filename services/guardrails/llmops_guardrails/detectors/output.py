"""Checks across an interaction: size limits, and a completion that repeats the system prompt.

System-prompt leakage: the completion and the system (or developer) messages are compared as sequences of
normalized words (lower-cased, punctuation dropped). The longest run of consecutive words the completion
shares with a system message is found with word 3-gram anchors; its length in characters, against
`full_chars` (or 80% of the system prompt, if shorter), is the score:
score = min(1, run_chars / min(full_chars, 0.8 * len(system_prompt))). Runs under `min_chars` score 0,
so a shared stock phrase ("you are a helpful assistant") alone stays quiet.

Size: each message and each side of the interaction against the configured limits; over a limit scores
1.0, under scores nothing. The span is the whole message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from llmops_guardrails.findings import Detector, Hit

_WORD = re.compile(r"\w+", re.UNICODE)
_N = 3


@dataclass(frozen=True)
class _Words:
    words: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, text: str) -> _Words:
        ms = list(_WORD.finditer(text))
        return cls(tuple(m.group().lower() for m in ms), tuple(m.span() for m in ms))


class SystemPromptIndex:
    """3-gram positions of one system prompt, built once per distinct prompt."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.words = _Words.of(text)
        self.grams: dict[tuple[str, ...], list[int]] = {}
        w = self.words.words
        for i in range(len(w) - _N + 1):
            self.grams.setdefault(w[i:i + _N], []).append(i)


def longest_shared_run(output: str, index: SystemPromptIndex) -> tuple[int, int, int]:
    """(start, end, chars) in `output` of the longest word run also found in the system prompt."""
    ow = tuple([w.lower() for w in _WORD.findall(output)])  # the words' spans only once a 3-gram is shared
    sw = index.words.words
    spans: list[tuple[int, int]] | None = None
    best = (0, 0, 0)
    i = 0
    while i <= len(ow) - _N:
        positions = index.grams.get(ow[i:i + _N])
        if not positions:
            i += 1
            continue
        if spans is None:
            spans = [m.span() for m in _WORD.finditer(output)]
        run_end = i
        for j in positions:
            k = 0
            while i + k < len(ow) and j + k < len(sw) and ow[i + k] == sw[j + k]:
                k += 1
            start, end = spans[i][0], spans[i + k - 1][1]
            if end - start > best[2]:
                best = (start, end, end - start)
            run_end = max(run_end, i + k)
        i = max(i + 1, run_end - _N + 1)
    return best


class LeakDetector:
    detector = Detector.OUTPUT

    def __init__(self, *, min_chars: int = 40, full_chars: int = 120) -> None:
        self.min_chars = min_chars
        self.full_chars = full_chars

    def detect(self, output: str, system_prompts: Sequence[SystemPromptIndex]) -> list[Hit]:
        best: Hit | None = None
        for index in system_prompts:
            start, end, chars = longest_shared_run(output, index)
            if chars < self.min_chars:
                continue
            full = max(self.min_chars, min(self.full_chars, int(0.8 * len(index.text))))
            score = round(min(1.0, chars / full), 4)
            if best is None or score > best.score:
                best = Hit(Detector.OUTPUT, "system_prompt_leak", start, end, score)
        return [best] if best else []


def size_hits(text_length: int, limit: int | None, kind: str) -> list[Hit]:
    if limit is not None and text_length > limit:
        return [Hit(Detector.SIZE, kind, 0, text_length, 1.0)]
    return []
