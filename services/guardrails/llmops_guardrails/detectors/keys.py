"""Necessary substrings ("keys") of the rule detectors' patterns, found in one pass.

A rule names substrings one of which every match of its pattern contains; a text holding none of them cannot
match, so the pattern is not run on it. Running a few dozen regexes over every message was most of the cost of
the injection and secrets rules, while most messages hold the keys of only a few. `KeySet` puts every key of a
detector in one RE2 set, which reports in one linear pass over the text which keys are present.

Case-insensitive patterns (`re.IGNORECASE`) have lower-case ASCII keys, looked up in `fold(text)`; the others'
keys are looked up in the text as written.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import re2


# `fold` and `longest_token` remember their last few texts: the injection and the secrets detectors both need them
# for each text, one after the other (`engine`), so each is computed once per text (a look-up of the same string
# object is an identity check). Words are folded by `folded`, which remembers nothing.
@functools.lru_cache(maxsize=8)
def fold(text: str) -> str:
    """`folded(text)`, remembered for the last few texts."""
    return folded(text)


def folded(text: str) -> str:
    """The text as `re.IGNORECASE` sees it against lower-case ASCII keys: every character that an ASCII letter of
    a pattern matches case-insensitively becomes that letter. Besides the ASCII capitals those are only U+0130
    and U+0131 (i), U+017F (s) and the Kelvin sign U+212A (k, which `lower()` maps already); `lower()` turns
    U+0130 into "i" and a combining dot, so it is replaced first. Other characters may change as well: that can
    only make a key look present, never hide one (`tests/unit/guardrails/detectors/test_keys.py` checks the list
    against every code point). Not remembered: a word's (`lexicon.street_word`) would push the texts out of
    `fold`'s few places."""
    if text.isascii():
        return text.lower()
    return text.replace("\u0130", "i").lower().replace("\u0131", "i").replace("\u017f", "s")


@functools.lru_cache(maxsize=8)
def spaced(text: str) -> str:
    """`fold(text)` with every run of whitespace as one space: a key written with spaces ("act as if") stands for
    its words apart by any whitespace, as `\\s+` between them in a `re` pattern (`\\s` is `str.isspace`, which
    `split` splits at; checked over every code point). A key without spaces is in it exactly when it is in
    `fold(text)`."""
    return " ".join(fold(text).split())


@functools.lru_cache(maxsize=8)
def _words(text: str) -> list[str]:
    return text.split()


@functools.lru_cache(maxsize=8)
def longest_token(text: str) -> int:
    """The length of the longest run of non-space characters (a pattern of 16+ non-space characters needs one)."""
    return max(map(len, _words(text)), default=0)


def long_tokens(text: str, n: int) -> list[tuple[int, int]]:
    """The spans of the runs of `n` or more non-space characters (`str.split`'s words), in order.

    A pattern whose every match is a run of `n`+ characters none of which is whitespace, and which looks around its
    match only for characters of a class without whitespace, finds the same matches searched in each of these spans
    (`pattern.finditer(text, start, end)`) as in the whole text: a match lies in one word, and at a span's edges the
    pattern sees whitespace or the text's edge, neither of which is in its class. The secrets' and the injection
    detector's token patterns are such; searching only the long words skips most of a text."""
    if longest_token(text) < n:
        return []
    out = []
    cursor = 0
    for word in [w for w in _words(text) if len(w) >= n]:
        # the first occurrence from the cursor is this word: the words between are shorter, and an occurrence cannot
        # span whitespace
        start = text.find(word, cursor)
        cursor = start + len(word)
        out.append((start, cursor))
    return out


class KeySet:
    """The keys of a sequence of rules: `rules(text)` = the indices, in order, of the rules whose pattern may match
    (a key of theirs is present, or they have none). `shapes`: RE2 patterns looked for in the same pass (`found`)."""

    FEW = 4  # up to this many distinct keys are looked up one by one (`in`), more in one RE2 pass

    def __init__(self, keys: Sequence[Iterable[str]], shapes: Sequence[str] = ()) -> None:
        """`keys`: per rule, its keys (empty = always run the rule)."""
        per_rule = [tuple(k) for k in keys]
        distinct = sorted({k for ks in per_rule for k in ks})
        options = re2.Options()
        options.case_sensitive = True
        self._set = re2.Set.SearchSet(options)
        for key in distinct:
            self._set.Add(re2.escape(key))
        for shape in shapes:  # after the keys: shape j is index len(distinct) + j
            self._set.Add(shape)
        self._set.Compile()
        self._keys = len(distinct)
        self._rules_of_key = [tuple(i for i, ks in enumerate(per_rule) if key in ks) for key in distinct]
        self._keyless = frozenset(i for i, ks in enumerate(per_rule) if not ks)
        self._few = tuple(distinct) if len(distinct) <= self.FEW and not shapes else None

    def rules(self, text: str) -> list[int]:
        """`text` must be what the keys are looked up in (as written, or `fold`ed)."""
        return self.found(text)[0]

    def found(self, text: str) -> tuple[list[int], frozenset[int]]:
        """`rules(text)`, and the indices of the `shapes` that match somewhere in `text` (the same RE2 pass)."""
        found: list[int] | None  # (annotated for mypyc: RE2's `Match` gives None when there are none)
        if self._few is not None:  # a few keys: as many substring checks, cheaper than encoding the text for RE2
            found = [k for k, key in enumerate(self._few) if key in text]
        else:
            found = self._set.Match(text)  # the indices of the keys present; None when there are none
        if not found:
            return sorted(self._keyless), frozenset()
        wanted = set(self._keyless)
        shapes: set[int] = set()
        for k in found:
            if k < self._keys:
                wanted.update(self._rules_of_key[k])
            else:
                shapes.add(k - self._keys)
        return sorted(wanted), frozenset(shapes)
