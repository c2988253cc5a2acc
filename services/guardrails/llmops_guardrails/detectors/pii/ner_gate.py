"""Where a text needs the NER model: `ner_windows` finds the words it could name and the sentences around
them; the model runs on those windows only, and a text without any skips it.

A word is a candidate when it is capitalised and none of these: inside an `explained` span (what the rules
found with confidence), the pronoun I, a title, a weekday or a month, an acronym of up to four capitals that
is not a place, or the first word of a sentence (or a line, or a quote) that is not followed by another
capitalised word and is a common opener ("Thanks", "Will") or neither a known first name or surname (`names`)
nor the first word of a place (`places`). In a
text without any capital letter, a candidate is a word that is a known first name, surname or place.

A window is the sentence (or line) holding a candidate, widened by its neighbours while it is shorter than
`MIN_WINDOW` characters (the model needs some context: an address line alone is a poor one). Overlapping
windows merge; when they cover most of the text the whole text is one window.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence

import regex

from llmops_guardrails.detectors.pii.classes import plain
from llmops_guardrails.detectors.pii.lexicon import OPENERS, words
from llmops_guardrails.detectors.pii.names import lower_name_words, name_words
from llmops_guardrails.detectors.pii.places import gazetteer

MIN_WINDOW = 120
WHOLE_TEXT_SHARE = 0.6

# A word standing alone: not part of a token with digits or underscores (an API key, an id).
_WORD = regex.compile(r"(?<![\p{L}\p{M}\p{N}_])[\p{L}\p{M}][\p{L}\p{M}'’-]*(?![\p{L}\p{M}\p{N}_])")
# `_WORD` in the standard library's `re`, for the class stand-ins of `classes.plain` (a letter or mark is one of A-Z
# a-z, a number 0-9 or "\x01", U+2019 "'"; "_", "'" and "-" stand for themselves): the same matches, in a text
# without a "\x01" of its own, at about half the cost
_ASCII_WORD = re.compile(r"(?<![A-Za-z0-9_\x01])[A-Za-z][A-Za-z'-]*(?![A-Za-z0-9_\x01])")
_OPENING_SKIP = " \t\"'“‘("  # (what is stripped before a word to see whether it opens a sentence)
_SENTENCE_END = regex.compile(r"(?<=[.!?])[ \t]+|\n+")
_NEXT_WORD = regex.compile(r"[ \t]+(\p{Lu}[\p{L}\p{M}'’-]*)")
# Capitalised anywhere, and not names: the pronoun I, titles (the name after one is what counts), weekdays
# and months that are not also first names (dates are not personal data here).
_NEVER_NAMES = frozenset(words("""
i i'm i'll i've i'd mr mrs ms miss dr prof sir madam monday tuesday wednesday thursday friday saturday sunday
january february march july september october november december
"""))


def _name_follows(text: str, pos: int) -> bool:
    """Whether the word after `pos` is capitalised (and not "I", a title, a weekday or a month)."""
    m = _NEXT_WORD.match(text, pos)
    return m is not None and m.group(1).lower() not in _NEVER_NAMES


def _candidates(text: str, explained: Sequence[tuple[int, int]]) -> Iterator[int]:
    """Start offsets of the words the NER model could name, in order (lazily: `needs_ner` stops at the first)."""
    places = gazetteer()
    if not any(c.isupper() for c in text):
        lower = lower_name_words()
        yield from (m.start() for m in _WORD.finditer(text)
                    if m.group() in lower or m.group() in places.first_words)
        return
    names = name_words()
    found = _ASCII_WORD.finditer(plain(text)) if "\x01" not in text else _WORD.finditer(text)
    for m in found:
        start, end = m.span()
        if not text[start].isupper():
            continue
        word = text[start:end]
        if any(s <= start and end <= e for s, e in explained):
            continue
        if word.lower() in _NEVER_NAMES or (word.isupper() and len(word) <= 4 and places.get(word) is None):
            continue  # I, Mr, Monday; short all-caps words are acronyms ("ZIP", "IBAN", "ASAP")
        # (the last character before the word that `rstrip(_OPENING_SKIP)` keeps, without copying the text up to it)
        k = start - 1
        while k >= 0 and text[k] in _OPENING_SKIP:
            k -= 1
        opens_sentence = k < 0 or text[k] in ".!?:\n"
        if opens_sentence and not _name_follows(text, end) and (
                word.lower() in OPENERS or (word not in names and word not in places.first_words)):
            continue  # "Thanks", "Ticket", "Will you": a sentence's first word, and no name
        yield start


def _sentences(text: str) -> list[tuple[int, int]]:
    spans = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        if m.start() > start:
            spans.append((start, m.start()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def ner_windows(text: str, explained: Sequence[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """The (start, end) spans of `text` the NER model should read; empty when it need not run."""
    candidates = list(_candidates(text, explained))
    if not candidates:
        return []
    sentences = _sentences(text)
    starts = [s for s, _ in sentences]
    windows: list[tuple[int, int]] = []
    for pos in candidates:
        k = max(0, bisect.bisect_right(starts, pos) - 1)
        lo = hi = k
        while sentences[hi][1] - sentences[lo][0] < MIN_WINDOW and (lo > 0 or hi < len(sentences) - 1):
            lo, hi = max(0, lo - 1), min(len(sentences) - 1, hi + 1)
        start, end = sentences[lo][0], sentences[hi][1]
        if windows and start <= windows[-1][1] + 1:
            windows[-1] = (min(start, windows[-1][0]), max(end, windows[-1][1]))
        else:
            windows.append((start, end))
    if sum(e - s for s, e in windows) >= WHOLE_TEXT_SHARE * len(text):
        return [(0, len(text))]
    return windows


def needs_ner(text: str, explained: Sequence[tuple[int, int]] = ()) -> bool:
    """Whether any part of `text` needs the NER model (see `ner_windows`)."""
    return next(_candidates(text, explained), None) is not None
