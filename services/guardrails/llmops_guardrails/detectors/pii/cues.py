"""Matches of a cue pattern (a case-insensitive trigger phrase, then what it introduces) found from the places its
trigger can start, instead of trying the pattern at every position of the text.

`regex` tries a pattern such as `(?i:\\b(?:my name is|call me|...))\\s+(?P<name>...)` at each of a text's ~560
positions, and a case-insensitive alternation of some forty phrases costs it ~40 µs a text whatever the text holds.
But every match starts with one of a few lower-case ASCII keys (the phrases' first words: "my name is", "call",
"dr"...) as the text reads after `keys.fold`, which maps every character an ASCII letter matches case-insensitively
to that letter (U+0130, U+0131, U+017F and the Kelvin sign included) and keeps each character one character long,
so offsets agree. One search of the standard library's `re` for the keys in the folded text finds every place a match
can start (more: a key need not be followed by the rest of its phrase); `matches` tries the pattern only there, in
order, skipping places inside the last match, which is what `finditer` does for a pattern that never matches empty.
A key is not looked for right after an ASCII letter, digit or underscore of the folded text: such a character was a
letter, a digit or an underscore, a word character for `regex`, so the trigger's `\\b` cannot hold there.

The patterns read this way are `NameContextRecognizer`'s two (a person after "my name is", "Dr."..., a place after
"lives in", "flew to"...), `PersonRecognizer`'s name after a speech verb and `PlaceRecognizer`'s place after a street
address; their keys are here, one search finds them all (`starts`, remembered for the last few texts: the three
recognizers read the same text one after the other). `tests/unit/guardrails/detectors/pii/test_cues.py` checks that
every alternative of each trigger starts with one of its keys, the folding over every code point, and the matches
against `finditer` on the PII set, the injection set, prose and crafted texts.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import regex

from llmops_guardrails.detectors.keys import fold

# Where a trigger can start: its first word or words, lower case, as `keys.fold` reads the text.
PERSON_KEYS = ("my name is", "name", "call", "this is", "i am", "i'm", "dear", "hi", "hello", "mr", "ms", "miss",
               "dr", "prof", "sir", "madam", "first", "last", "full", "directed by", "starring", "written by",
               "assistant to", "married to", "son of", "daughter of", "contact", "signed", "regards", "sincerely",
               "cheers", "best", "thanks", "add", "under", "beneficiary", "partner's name", "husband's name",
               "wife's name")  # `patterns.NameContextRecognizer.PERSON`
PLACE_KEYS = ("flew to", "fly", "move", "returned to", "travel", "trip to", "drove to", "live", "living in",
              "born in", "based in", "located in", "grew up in", "home", "city of", "town of", "village of",
              "where:")  # `patterns.NameContextRecognizer.PLACE`
SPEECH_KEYS = ("said", "says", "asked", "replied", "answered", "told", "wrote", "explained", "added", "shouted",
               "whispered", "according")  # `people._SPEECH` (case-sensitive: its matches fold to themselves)
ADDRESS_KEYS = ("live", "living", "address", "located", "based", "ship", "deliver", "send", "sent", "mail",
                "post")  # `places._ADDRESS_PLACE`


def _trie(keys: Iterable[str]) -> str:
    """An alternation matching exactly `keys`, with shared beginnings written once (`re` tries the branches of an
    alternation one by one: "d(?:ear|r)" fails once where "dear|dr" fails twice)."""
    root: dict[str, Any] = {}
    for key in keys:
        node = root
        for c in key:
            node = node.setdefault(c, {})
        node[""] = {}

    def written(node: dict[str, Any]) -> str:
        branches = [re.escape(c) + written(rest) for c, rest in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return "(?:" + body + ")?" if "" in node else body

    return written(root)


def key_starts(groups: Sequence[Iterable[str]]) -> re.Pattern[str]:
    """A search for where a key of each group starts in a folded text, not right after [a-z0-9_]: group k + 1 of a
    match is set when a key of `groups[k]` starts there (several may be: "dr" and "drove to")."""
    alternatives = [_trie(keys) for keys in groups]
    # each group a look-ahead of its own, optional, at a place where one of them holds
    any_key = "|".join(alternatives)
    return re.compile(r"(?<![a-z0-9_])(?=" + any_key + ")" + "".join(f"(?=({a}))?" for a in alternatives))


def key_starts_after(groups: Sequence[Iterable[str]]) -> re.Pattern[str]:
    """`key_starts(groups)` read from the character before each key: a match is that character (not [a-z0-9_]) and
    the same look-aheads after it, so group k + 1 starts one character after the match. A pattern that starts with a
    class lets `re` skip to the characters of that class (here the ~20% of a text that are not word characters)
    instead of trying the look-behind at every position: a text is searched with one character before it (`" " +
    folded`), which makes the offsets those of the text. The match takes the one character, so the next search goes
    on from the key's place, as `key_starts`' zero-width matches do."""
    alternatives = [_trie(keys) for keys in groups]
    any_key = "|".join(alternatives)
    firsts = "".join(sorted({key[0] for keys in groups for key in keys}))
    return re.compile(r"[^a-z0-9_](?=[" + re.escape(firsts) + "])(?=" + any_key + ")"
                      + "".join(f"(?=({a}))?" for a in alternatives))


def matches(pattern: regex.Pattern[str], text: str, starts: Iterable[int]) -> Iterator[regex.Match[str]]:
    """`pattern.finditer(text)` when every match of `pattern` (never an empty one) starts at one of `starts`
    (ascending): the pattern tried at each of them (`match` at a position sees the text before it, as `finditer`
    does), from the end of the last match on."""
    reached = 0
    for start in starts:
        if start >= reached:
            m = pattern.match(text, start)
            if m is not None:
                reached = m.end()
                yield m


class Starts(NamedTuple):
    """Where a trigger of each cue pattern can start in a text, ascending."""

    person: list[int]
    place: list[int]
    speech: list[int]
    address: list[int]


_STARTS = key_starts([PERSON_KEYS, PLACE_KEYS, SPEECH_KEYS, ADDRESS_KEYS])  # (what `_STARTS_AFTER` stands for)
_STARTS_AFTER = key_starts_after([PERSON_KEYS, PLACE_KEYS, SPEECH_KEYS, ADDRESS_KEYS])


@functools.lru_cache(maxsize=8)
def starts(text: str) -> Starts:
    """Where a trigger of each cue pattern can start in `text` (one search of the folded text for all of them:
    `_STARTS.finditer(fold(text))`, read as `_STARTS_AFTER` in the folded text after one space)."""
    found = Starts([], [], [], [])
    for m in _STARTS_AFTER.finditer(" " + fold(text)):
        at = m.start()  # the key's place in the text (one character after the match's in the searched string)
        for k, key in enumerate(m.groups()):
            if key is not None:
                found[k].append(at)
    return found
