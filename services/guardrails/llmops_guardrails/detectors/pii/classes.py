"""A text's characters as ASCII stand-ins of their classes, for the standard library's `re`.

Some of the capitalised-word patterns read nothing of a character but its class: the tagger's tokens (`tagger._TOKEN`:
letters and marks, the joiners ' U+2019 -, digits, whitespace, the rest) and the gazetteer's (`places._TOKEN`,
`places._CAPITAL_TOKEN`, which also tell capitals and "."). Written with `regex`'s Unicode classes they cost ~0.35 µs
a token; the same patterns written for ASCII in `re` cost half. An ASCII text is read as it is (on ASCII characters
`\\p{Lu}` is `[A-Z]`, `[\\p{L}\\p{M}]` is `[A-Za-z]`, `\\d` is `[0-9]`, `\\s` is `[\\t\\n\\x0b\\x0c\\r ]`:
U+001C-U+001F are not `regex`'s whitespace). Another text is read in its translation (`plain`), one ASCII character
for each of its characters, of the same class: an ASCII character stands for itself; a capital letter (`\\p{Lu}`) for
"A", another letter or a mark for "q", a digit (`\\d`) for "0", another number (`\\p{N}`) for "\\x01", whitespace
(`\\s`) for "\\x0b", U+2019 for "'", anything else for "#". The offsets of a match are those in the text; its
characters are read from the text. `tests/unit/guardrails/detectors/pii/test_fewer_passes.py` checks the classes over
every code point and the patterns against `regex`'s.

The stand-ins of letters, numbers and whitespace are chosen so that the name patterns read them as `regex` reads the
characters they stand for (`people.name_runs`, `people.capitalised_words`): "q" is in no particle ("dé" does not
become "da"), whitespace that is not ASCII is not a space (U+0020, which those patterns name: "\\x0b" is whitespace
for `\\s` and nothing else), and a number that is not a digit is "\\x01", which those patterns' classes hold (as
`\\p{N}`), so a text that holds a "\\x01" of its own is searched with `regex` there.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import regex

_CAPITAL = regex.compile(r"\p{Lu}")
_LETTER_OR_MARK = regex.compile(r"[\p{L}\p{M}]")
_DIGIT = regex.compile(r"\d")
_NUMBER = regex.compile(r"\p{N}")
_SPACE = regex.compile(r"\s")


def stand_in(c: str) -> str:
    """The ASCII stand-in of a character that is not ASCII."""
    if _LETTER_OR_MARK.match(c):
        return "A" if _CAPITAL.match(c) else "q"
    if _DIGIT.match(c):
        return "0"
    if _NUMBER.match(c):
        return "\x01"
    if _SPACE.match(c):
        return "\x0b"
    return "'" if c == "’" else "#"


class Classes(dict[int, int]):
    """A `str.translate` table of stand-ins (ASCII characters for themselves), looked up as characters are met and
    remembered up to `LIMIT` characters."""

    LIMIT: ClassVar[int] = 1 << 16  # ClassVar: mypyc makes an unannotated one an attribute of each instance

    def __missing__(self, code: int) -> int:
        got = ord(stand_in(chr(code)))
        if len(self) < self.LIMIT:
            self[code] = got
        return got


_CLASSES = Classes({code: code for code in range(128)})
# the stand-ins of U+0000-U+00FF as a `bytes.translate` table: a text all of whose characters are below U+0100 (most
# Western European text: "é", "ß", a no-break space) is translated as Latin-1 bytes, ~2x faster than `str.translate`
_LATIN_1 = bytes(code if code < 128 else ord(stand_in(chr(code))) for code in range(256))


@functools.lru_cache(maxsize=8)  # the tagger and the gazetteer read the same text one after the other
def plain(text: str) -> str:
    """`text` with every character as an ASCII stand-in of its class (the text itself when it is ASCII)."""
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").translate(_LATIN_1).decode("ascii")
    except UnicodeEncodeError:  # a character above U+00FF
        return text.translate(_CLASSES)
