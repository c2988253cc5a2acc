"""A learned name and place tagger: a linear model over cheap word features, orders of magnitude cheaper than
spaCy's NER.

Only candidate words are scored: capitalised words (in a text without any capital letter, words that are a
known first name, surname, town or place). Each candidate gets one of three labels, O, PERSON or LOCATION,
from a multinomial logistic regression over string features (`features`): the word itself, its shape,
prefix and suffix, whether it is on the name, town, place, common-word, organisation-word or street-word lists
the recognizers already load, the same for the words before and after it, the one or two lower-case words
before it ("my name is", "lives in", "Dear"), and whether it opens a sentence. A candidate's label does not
depend on its neighbours' labels (no decoding), so a text is scored in one numpy pass; adjacent candidates of
one label joined by spaces or an initial's dot make one span.

Training (`services/guardrails/scripts/train_name_tagger.py`) writes the model file this module reads
(`data/name_tagger.bin`): one JSON header line (format, labels, the feature vocabulary), then the weights as
little-endian float32, one row per feature and a bias row. Inference needs numpy only.
"""

from __future__ import annotations

import array
import bisect
import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import final

import numpy as np
import numpy.typing as npt
import regex

from llmops_guardrails.detectors.pii.classes import plain
from llmops_guardrails.detectors.pii.lexicon import NOT_ALONE, OPENERS, org_word, street_word
from llmops_guardrails.detectors.pii.names import common_words, first_names, lower_name_words, surnames
from llmops_guardrails.detectors.pii.places import gazetteer, towns

FORMAT = 1
LABELS = ("O", "PERSON", "LOCATION")
MODEL_FILE = "data/name_tagger.bin"

# Words, numbers, single other characters; a word keeps inner apostrophes, hyphens ("O'Brien", "Jean-Luc").
# Written as letter runs joined by one apostrophe or hyphen each, possessive (nothing after a run can make it
# give letters back): the same tokens as `[\p{L}\p{M}](?:[\p{L}\p{M}]|['’-](?=[\p{L}\p{M}]))*|\d+|\S`, 20% faster.
_TOKEN = regex.compile(r"[\p{L}\p{M}]++(?:['’-][\p{L}\p{M}]++)*+|\d++|\S")
_NEWLINE = regex.compile("\n")
_SHAPE_MAP = str.maketrans({**{c: "X" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
                            **{c: "x" for c in "abcdefghijklmnopqrstuvwxyz"}, **{c: "d" for c in "0123456789"}})
_TITLES = frozenset(["mr", "mrs", "ms", "miss", "dr", "prof", "sir", "madam", "mister", "doctor", "professor"])
_CALENDAR = frozenset(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january",
                       "february", "march", "april", "may", "june", "july", "august", "september", "october",
                       "november", "december"])


# `_TOKEN` in the standard library's `re`, for ASCII text (`classes`: twice as fast as `regex` here).
_ASCII_TOKEN = re.compile(r"[A-Za-z]++(?:['-][A-Za-z]++)*+|[0-9]++|[^\t\n\x0b\x0c\r ]")
# The same as one group: `split` gives the text between the tokens and the tokens, alternately.
_ASCII_SPLIT = re.compile("(" + _ASCII_TOKEN.pattern + ")")


def tokens(text: str) -> list[tuple[int, int]]:
    """(start, end) of every token of `text` (`_TOKEN`'s matches, found by `_ASCII_TOKEN` in `classes.plain(text)`)."""
    return _spans(_ASCII_SPLIT.split(plain(text)))


def _spans(parts: list[str]) -> list[tuple[int, int]]:
    """The tokens' (start, end) from `_ASCII_SPLIT.split`'s pieces: the matches of `_ASCII_TOKEN.finditer`, as
    each piece between two matches and each match's text (its one group is the whole match) are read in order."""
    out: list[tuple[int, int]] = []
    pos = 0
    for k in range(1, len(parts), 2):
        pos += len(parts[k - 1])
        end = pos + len(parts[k])
        out.append((pos, end))
        pos = end
    return out


def _shape(word: str) -> str:
    """Letters as X or x, digits as d, runs of more than two of one kind cut to two ("Xxx", "XX-Xxx", "dd")."""
    out: list[str] = []
    for c in word.translate(_SHAPE_MAP):
        kind = c if c in "Xxd" else ("x" if c.islower() else "X") if c.isalpha() else c
        if len(out) < 2 or out[-1] != kind or out[-2] != kind:
            out.append(kind)
    return "".join(out)


@dataclass(frozen=True)
class Lexicon:
    """The word lists the features look words up in (all from the recognizers' own lists)."""

    first: frozenset[str]
    last: frozenset[str]
    lower_names: frozenset[str]
    common: frozenset[str]

    def classes(self, word: str, lowercase_text: bool) -> list[str]:
        """The lists `word` is on, as short names."""
        out = []
        if word in self.first:
            out.append("FN")
        if word in self.last:
            out.append("SN")
        low = word.lower()
        if lowercase_text and low in self.lower_names:
            out.append("LN")
        if low in self.common:
            out.append("CW")
        if low in OPENERS:
            out.append("OP")
        if low in _TITLES:
            out.append("TI")
        if low in _CALENDAR:
            out.append("CA")
        if low in NOT_ALONE:
            out.append("NA")
        if towns().get(word, lowercase_text=lowercase_text) is not None:
            out.append("TW")
        places = gazetteer()
        place = places.get(word, lowercase_text=lowercase_text)
        if place is not None:
            out.append("GZ" + ("a" if place.ambiguous else place.section[:3]))
        elif word in places.first_words:
            out.append("GF")
        if org_word(word):
            out.append("OW")
        if street_word(word):
            out.append("ST")
        return out


@functools.cache
def lexicon() -> Lexicon:
    return Lexicon(first=first_names(), last=surnames(), lower_names=lower_name_words(), common=common_words())


def candidates(text: str, spans: Sequence[tuple[int, int]], lex: Lexicon | None = None) -> list[int]:
    """Indices of the tokens the model labels: capitalised words; in a text without capitals, known names, towns
    and places, and the uncommon words after them ("olga krylova", "eric g. samoylova")."""
    if any(c.isupper() for c in text):
        return [i for i, (s, _) in enumerate(spans) if text[s].isupper()]
    lex = lex or lexicon()
    out: list[int] = []
    for i, (s, e) in enumerate(spans):
        word = text[s:e]
        if not word[0].isalpha():
            continue
        known = (word in lex.lower_names or towns().get(word, lowercase_text=True) is not None
                 or gazetteer().get(word, lowercase_text=True) is not None)
        after_one = bool(out) and (out[-1] == i - 1 or (  # right after a candidate, or after its initial
            out[-1] == i - 3 and spans[i - 2][1] - spans[i - 2][0] == 1 and text[spans[i - 1][0]] == "."))
        if known or (after_one and word not in lex.common and len(word) > 1):
            out.append(i)
    return out


# What `word_info` tells of a word: lower case, shape, lists, its own features, its features as the word before a
# candidate and as the word after one.
_Info = tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]


@functools.lru_cache(maxsize=1 << 16)
def word_info(word: str, lowercase_text: bool) -> _Info:
    """A word's lower case, shape, lists (`Lexicon.classes`), the features that depend on it alone, and those it
    gives the candidate after it ("pw=", "psh=", "pc=", "pcap") and before it ("nw=", ...)."""
    low = word.lower()
    shape = _shape(word)
    cls = tuple(lexicon().classes(word, lowercase_text)) if word[:1].isalpha() else ()
    joined = "+".join(cls)
    own = ["b", "w=" + low, "sh=" + shape, "p3=" + low[:3], "s3=" + low[-3:], "s2=" + low[-2:], "s4=" + low[-4:],
           "len=" + str(min(len(word), 8))]
    if lowercase_text:
        own.append("lc")
    if not word.isascii():
        own.append("nonascii")
    own.extend("c=" + c for c in cls)
    own.append("cs=" + joined)
    own.append("csh=" + joined + "|" + shape)
    cap = shape[:1] == "X"
    as_prev = ("pw=" + low, "psh=" + shape, *("pc=" + c for c in cls), *(("pcap",) if cap else ()))
    as_next = ("nw=" + low, "nsh=" + shape, *("nc=" + c for c in cls), *(("ncap",) if cap else ()))
    return low, shape, cls, tuple(own), as_prev, as_next


_PAIRS = ("pw2=", "nw2=", "rb2=", "c|nc=", "c|pc=")


def _word_at(text: str, spans: Sequence[tuple[int, int]], i: int) -> str:
    if 0 <= i < len(spans):
        s, e = spans[i]
        return text[s:e]
    return "<s>" if i < 0 else "</s>"


def context_features(text: str, spans: Sequence[tuple[int, int]], index: int, lowercase_text: bool,
                     cache: dict[int, _Info]) -> tuple[tuple[tuple[str, ...], ...], list[str]]:
    """The features of token `index` (a candidate) that depend on its neighbours: the words before and after it,
    their shapes and lists (as whole `word_info` blocks), the two words before and after it, whether it opens a
    sentence or a line, and its lists with its neighbours' (as strings)."""
    def info(i: int) -> _Info:
        got = cache.get(i)
        if got is None:
            got = cache[i] = word_info(_word_at(text, spans, i), lowercase_text)
        return got

    me, before, after = info(index), info(index - 1), info(index + 1)
    plow, pcls, nlow, ncls = before[0], before[2], after[0], after[2]
    start = spans[index][0]
    f = ["pw2=" + info(index - 2)[0] + " " + plow, "nw2=" + nlow + " " + info(index + 2)[0]]
    if "\n" in text[max(0, start - 3):start] or index == 0 or plow in (".", "!", "?", ":", "\n"):
        f.append("open")
    joined = "+".join(me[2])
    f.extend("c|nc=" + joined + "|" + c for c in ncls)
    f.extend("c|pc=" + joined + "|" + c for c in pcls)
    return (me[3], before[4], after[5]), f


def _runs(text: str, spans: Sequence[tuple[int, int]], cand: Sequence[int]) -> list[list[int]]:
    """Candidates grouped into runs: neighbouring tokens separated by spaces only ("San Bernardino")."""
    runs: list[list[int]] = []
    for i in cand:
        if runs and runs[-1][-1] == i - 1 and text[spans[i - 1][1]:spans[i][0]].strip(" \t") == "":
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


_RUN_LENGTH = tuple("rl=" + str(n) for n in range(5))
_LINES = tuple("line=" + str(n) for n in range(4))
_BULLETS = " \t>*•-"


def run_features(text: str, spans: Sequence[tuple[int, int]], run: Sequence[int], *, lowercase_text: bool,
                 cache: dict[int, _Info], newlines: Sequence[int]) -> tuple[tuple[str, ...], list[str]]:
    """Features every word of a run shares (its length, the words around it, whether it is a place, the lists
    its words are on), and each word's position in it."""
    first, last = run[0], run[-1]
    start, end = spans[first][0], spans[last][1]
    phrase = text[start:end]
    got = cache.get(first - 1)
    before = got[0] if got is not None else _word_at(text, spans, first - 1).lower()
    got = cache.get(first - 2)
    before2 = got[0] if got is not None else _word_at(text, spans, first - 2).lower()
    got = cache.get(last + 1)
    after_word = got[0] if got is not None else _word_at(text, spans, last + 1).lower()
    shared = [_RUN_LENGTH[min(len(run), 4)], "rb=" + before, "rb2=" + before2 + " " + before, "ra=" + after_word]
    if len(run) > 1:
        if towns().get(phrase, lowercase_text=lowercase_text) is not None:
            shared.append("rtw")
        if gazetteer().get(phrase, lowercase_text=lowercase_text) is not None:
            shared.append("rgz")
    classes = sorted(cache[first][2]) if len(run) == 1 else sorted({c for i in run for c in cache[i][2]})
    shared.extend(["rc=" + c for c in classes])
    line = bisect.bisect_left(newlines, start)  # the run's line (newlines before it)
    line_start = newlines[line - 1] + 1 if line else 0
    after = bisect.bisect_left(newlines, end)
    line_end = newlines[after] if after < len(newlines) else len(text)
    alone_before = text[line_start:start].strip(" \t>*•-") == ""
    if alone_before:
        shared.append("lstart")
        if text[end:line_end].strip(" \t.,") == "":
            shared.append("lonly")
    if newlines:
        shared.append("line=" + str(min(line, 3)))
    if len(run) == 1:
        return tuple(shared), ["rp=s"]
    return tuple(shared), ["rp=f", *["rp=m"] * (len(run) - 2), "rp=l"]


# What a rule found, as the tagger reads it: entity, start, end, score, the rule's name.
Evidence = tuple[str, int, int, float, str]


def _bucket(score: float) -> str:
    return "hi" if score >= 0.85 else "mid" if score >= 0.65 else "lo"


def _evidence_features(spans: Sequence[tuple[int, int]], cand: Sequence[int], evidence: Sequence[Evidence],
                       ) -> list[list[str]]:
    """Per candidate, what the rules found over it (entity, score bucket, rule), or "ev=none"."""
    out: list[list[str]] = [[] for _ in cand]
    if evidence:
        starts = [spans[i][0] for i in cand]
        for kind, a, b, score, rule in evidence:
            k = max(0, bisect.bisect_right(starts, a) - 1)
            while k < len(cand) and spans[cand[k]][0] < b:
                if a < spans[cand[k]][1]:
                    out[k].extend(("ev=" + kind + "|" + _bucket(score), "evr=" + kind + "|" + rule))
                k += 1
    for f in out:
        if not f:
            f.append("ev=none")
    return out


def text_parts(text: str, lex: Lexicon | None = None, evidence: Sequence[Evidence] | None = None,
               ) -> tuple[list[tuple[int, int]], list[int], list[list[tuple[str, ...]]], list[list[str]]]:
    """Tokens, candidate indices and each candidate's features: in blocks that recur (its own, its neighbours',
    its run's) and the rest (see `context_features`, `run_features`; with `evidence`, what the rules found over
    it or that they found nothing there)."""
    lex = lex or lexicon()
    spans = tokens(text)
    cand = candidates(text, spans, lex)
    lowercase_text = not any(c.isupper() for c in text)
    cache: dict[int, _Info] = {}
    blocks: list[list[tuple[str, ...]]] = []
    rest: list[list[str]] = []
    for i in cand:
        b, f = context_features(text, spans, i, lowercase_text, cache)
        blocks.append(list(b))
        rest.append(f)
    k = 0
    newlines = [m.start() for m in _NEWLINE.finditer(text)]
    for run in _runs(text, spans, cand):
        shared, positions = run_features(text, spans, run, lowercase_text=lowercase_text, cache=cache,
                                         newlines=newlines)
        for pos in positions:
            blocks[k].append(shared)
            rest[k].append(pos)
            k += 1
    if evidence is not None:
        for f, extra in zip(rest, _evidence_features(spans, cand, evidence), strict=True):
            f.extend(extra)
    return spans, cand, blocks, rest


def text_features(text: str, lex: Lexicon | None = None, evidence: Sequence[Evidence] | None = None,
                  ) -> tuple[list[tuple[int, int]], list[int], list[list[str]]]:
    """Tokens, candidate indices and every feature of each candidate (see `text_parts`)."""
    spans, cand, blocks, rest = text_parts(text, lex, evidence)
    return spans, cand, [[f for b in bs for f in b] + r for bs, r in zip(blocks, rest, strict=True)]


@dataclass(frozen=True)
class Tag:
    """A span the tagger labelled, with the probability of its label (the lowest of its words')."""

    label: str
    start: int
    end: int
    probability: float


def pairs_of(vocab: dict[str, int]) -> dict[str, dict[str, dict[str, int]]]:
    """The rows of the features of two parts (`_PAIRS`) by their kind, first part and second part: "pw2=a b" as
    `["pw2="]["a"]["b"]`, "c|nc=FN+SN|TW" as `["c|nc="]["FN+SN"]["TW"]`. The first part holds no separator (a word
    has no space: spaces are not in tokens, and `lower()` makes none; a list's short name has no "|" nor "+"), so
    `pairs[kind].get(a, {}).get(b)` is `vocab.get(kind + a + sep + b)` for every a and b, and a feature without its
    separator is never looked up."""
    pairs: dict[str, dict[str, dict[str, int]]] = {kind: {} for kind in _PAIRS}
    for feature, row in vocab.items():
        kind = feature[:5] if feature.startswith(("c|nc=", "c|pc=")) else feature[:4]
        found = pairs.get(kind)
        if found is not None:
            first, sep, second = feature[len(kind):].partition(" " if len(kind) == 4 else "|")
            if sep:
                found.setdefault(first, {})[second] = row
    return pairs


# The features of one word made of a prefix and a value (`word_info`'s and the run features' "rb=", "ra=", "rc="):
# `families_of` keeps their rows by prefix and value.
_FAMILIES = ("w=", "sh=", "p3=", "s3=", "s2=", "s4=", "c=", "cs=", "csh=", "pw=", "psh=", "pc=", "nw=", "nsh=", "nc=",
             "rb=", "ra=", "rc=")


def families_of(vocab: dict[str, int]) -> dict[str, dict[str, int]]:
    """The rows of the one-word features (`_FAMILIES`) by prefix and value: "w=smith" as `["w="]["smith"]`. No prefix
    starts another (each ends at its first "="), so `families[prefix].get(value)` is `vocab.get(prefix + value)` for
    every value, without making the string."""
    families: dict[str, dict[str, int]] = {prefix: {} for prefix in _FAMILIES}
    for feature, row in vocab.items():
        prefix, sep, value = feature.partition("=")
        found = families.get(prefix + sep)
        if found is not None:
            found[value] = row
    return families


@final
class Block:
    """The sum of some of the model's weight rows (float64, one per label) and how many rows were added."""

    def __init__(self, o: float = 0.0, person: float = 0.0, place: float = 0.0, n: int = 0) -> None:
        self.o = o
        self.person = person
        self.place = place
        self.n = n

    def add(self, other: Block) -> None:
        self.o += other.o
        self.person += other.person
        self.place += other.place
        self.n += other.n

    def copy(self) -> Block:
        return Block(self.o, self.person, self.place, self.n)

    def set(self, other: Block) -> None:
        self.o = other.o
        self.person = other.person
        self.place = other.place
        self.n = other.n


_EMPTY = Block()  # (never added to)


@final
class Word:
    """A word as `NameTagger.word_probabilities` reads it (`NameTagger.new_word`): its lower case, its lists and
    them joined, and the sums of the weight rows of its own block, of its block as the word before a candidate and
    as the word after one, and of the run features it gives as the word before a run ("rb="), as the word after one
    ("ra=") and as a run of one word ("rc=" of its lists); then the rows of the features of two words it is the
    first of ("pw2=", "nw2=", "rb2=": by the second word) and of its lists with a neighbour's ("c|nc=", "c|pc=": by
    the neighbour's list), as blocks of one row (`NameTagger._pairs`)."""

    def __init__(self, low: str, classes: tuple[str, ...], joined: str, *, own: Block, as_prev: Block, as_next: Block,
                 run_before: Block, run_after: Block, run_alone: Block, pw2: dict[str, Block], nw2: dict[str, Block],
                 rb2: dict[str, Block], c_nc: dict[str, Block], c_pc: dict[str, Block]) -> None:
        self.low = low
        self.classes = classes
        self.joined = joined
        self.own = own
        self.as_prev = as_prev
        self.as_next = as_next
        self.run_before = run_before
        self.run_after = run_after
        self.run_alone = run_alone
        self.pw2 = pw2
        self.nw2 = nw2
        self.rb2 = rb2
        self.c_nc = c_nc
        self.c_pc = c_pc


_NO_BLOCKS: dict[str, Block] = {}  # (never written to)


@final
class LowRows:
    """What a word's lower case gives (`NameTagger.new_word`): the rows of "w=", "pw=", "nw=", "rb=", "ra=" + it
    (None: not in the vocabulary) and the blocks of the two-word features it is the first part of ("pw2=", "nw2=",
    "rb2=", by the second word): one look-up of the word instead of eight."""

    def __init__(self, *, w: int | None, pw: int | None, nw: int | None, rb: int | None, ra: int | None,
                 pw2: dict[str, Block], nw2: dict[str, Block], rb2: dict[str, Block]) -> None:
        self.w = w
        self.pw = pw
        self.nw = nw
        self.rb = rb
        self.ra = ra
        self.pw2 = pw2
        self.nw2 = nw2
        self.rb2 = rb2


_NO_LOW = LowRows(w=None, pw=None, nw=None, rb=None, ra=None, pw2=_NO_BLOCKS, nw2=_NO_BLOCKS, rb2=_NO_BLOCKS)


@final
class ShapeRows:
    """The rows of "sh=", "psh=", "nsh=" + a shape."""

    def __init__(self, sh: int | None, psh: int | None, nsh: int | None) -> None:
        self.sh = sh
        self.psh = psh
        self.nsh = nsh


_NO_SHAPE = ShapeRows(None, None, None)


@final
class ClassRows:
    """What a word's lists give, the same for every word on the same lists: their joined name, the rows of "c=" of
    each list and "cs=" of them joined (its own features), "pc=" and "nc=" of each (as the word before and after a
    candidate), "csh=" of them with a shape (by shape), the block of "rc=" of each (as a run of one word) and the
    blocks of "c|nc=", "c|pc=" (by the neighbour's list)."""

    def __init__(self, joined: str, *, own: list[int | None], as_prev: list[int | None], as_next: list[int | None],
                 with_shape: dict[str, int], run_alone: Block, c_nc: dict[str, Block], c_pc: dict[str, Block]) -> None:
        self.joined = joined
        self.own = own
        self.as_prev = as_prev
        self.as_next = as_next
        self.with_shape = with_shape
        self.run_alone = run_alone
        self.c_nc = c_nc
        self.c_pc = c_pc


_UNREAD = Word("", (), "", own=_EMPTY, as_prev=_EMPTY, as_next=_EMPTY, run_before=_EMPTY,
               run_after=_EMPTY, run_alone=_EMPTY, pw2=_NO_BLOCKS, nw2=_NO_BLOCKS, rb2=_NO_BLOCKS, c_nc=_NO_BLOCKS,
               c_pc=_NO_BLOCKS)  # a token whose word is not read (`word_probabilities`)


def exact_rows(weights: npt.NDArray[np.floating]) -> int:
    """How many of `weights`' values (rows of it, repeats allowed) any sum, in float64 and in any order or grouping,
    adds up exactly: 0 unless `weights` are float32 (finite, no -0.0).

    Every float32 value is a whole multiple of its ulp, 2^(e - 24) for a value m * 2^e (0.5 <= |m| < 1), so every
    value is a multiple of q, the ulp of the smallest magnitude. A sum of at most N values each at most M in magnitude
    is a multiple of q below N * M; when that is below 2^53 * q, every partial sum is a float64 exactly (an integer
    below 2^53 times a power of two), so each addition is exact and the result is the exact sum, whatever the order
    of the additions: the same bits as numpy's `add.reduceat` over the same rows, or as `probabilities`."""
    if weights.dtype != np.float32 or weights.size == 0 or not bool(np.isfinite(weights).all()):
        return 0
    if bool((np.signbit(weights) & (weights == 0)).any()):
        return 0
    magnitudes = np.abs(weights.astype(np.float64))
    largest = float(magnitudes.max())
    nonzero = magnitudes[magnitudes > 0]
    if largest == 0.0 or nonzero.size == 0:
        return 1 << 62
    exponent = int(np.frexp(nonzero.min())[1])
    quantum = 2.0 ** (max(exponent, -125) - 24)  # (-125: a subnormal float32's ulp is 2^-149)
    units = int(largest / quantum)  # exact: the largest magnitude is a whole multiple of the quantum
    return int((2**53 - 1) // units)


class NameTagger:
    """The trained model: `vocab` maps a feature to its weight row; `weights` has a last row for the bias."""

    OWN_CACHE = 1 << 16  # words whose feature blocks' rows are remembered (`_word`)

    def __init__(self, vocab: dict[str, int], weights: npt.NDArray[np.float32], meta: dict[str, object] | None = None
                 ) -> None:
        self.vocab = vocab
        self.weights = weights
        self.meta = meta or {}
        self.lex = lexicon()
        self._weights64 = weights.astype(np.float64)  # summed in float64, as before the first copy was made
        self._values: list[list[float]] = self._weights64.tolist()  # the same values as Python floats
        # sums of rows that are exact in any order (`exact_rows`): up to this many rows a candidate; a candidate with
        # more (or a model whose weights do not allow it) is scored by `probabilities` instead
        self.exact_rows = exact_rows(weights)
        self._bias = self._rows_block([len(weights) - 1])
        # remembered words, one dict per kind of text (with capitals or without: their lists differ)
        self._words: dict[bool, dict[str, Word]] = {False: {}, True: {}}
        # the rows of the features that depend on no word: a run's length and a word's position in it, "open",
        # "lstart", "lonly", a run's line, "rtw", "rgz", "ev=none" (empty for a feature the vocabulary lacks); and
        # "rc=" of each list, for runs of more than one word
        fixed = {f: self._features_block((f,)) for f in (
            *_RUN_LENGTH, "rp=s", "rp=f", "rp=m", "rp=l", "open", "lstart", "lonly", *_LINES, "rtw", "rgz", "ev=none")}
        self._run_length = [fixed[f] for f in _RUN_LENGTH]
        self._lines = [fixed[f] for f in _LINES]
        self._alone, self._first, self._middle, self._last = (fixed[f] for f in ("rp=s", "rp=f", "rp=m", "rp=l"))
        self._open, self._lstart, self._lonly = fixed["open"], fixed["lstart"], fixed["lonly"]
        self._town, self._place, self._no_evidence = fixed["rtw"], fixed["rgz"], fixed["ev=none"]
        self._run_classes: dict[str, Block] = {}
        self._pairs = {kind: {first: {second: self._rows_block([row]) for second, row in by_second.items()}
                              for first, by_second in by_first.items()}
                       for kind, by_first in pairs_of(vocab).items()}
        self._evidence: dict[tuple[str, str, str], Block] = {}  # a rule's evidence rows (`_evidence_blocks`)
        self._families = f = families_of(vocab)
        pairs = self._pairs
        # (every lower case and shape some feature of the vocabulary has; any other has none of them)
        lows = {*f["w="], *f["pw="], *f["nw="], *f["rb="], *f["ra="], *pairs["pw2="], *pairs["nw2="], *pairs["rb2="]}
        self._by_low = {low: LowRows(w=f["w="].get(low), pw=f["pw="].get(low), nw=f["nw="].get(low),
                                     rb=f["rb="].get(low), ra=f["ra="].get(low),
                                     pw2=pairs["pw2="].get(low, _NO_BLOCKS), nw2=pairs["nw2="].get(low, _NO_BLOCKS),
                                     rb2=pairs["rb2="].get(low, _NO_BLOCKS))
                        for low in lows}
        self._by_shape = {shape: ShapeRows(f["sh="].get(shape), f["psh="].get(shape), f["nsh="].get(shape))
                          for shape in {*f["sh="], *f["psh="], *f["nsh="]}}
        self._with_shape: dict[str, dict[str, int]] = {}  # "csh=" rows by joined lists, then shape
        for feature, row in f["csh="].items():
            joined, _, shape = feature.partition("|")  # (lists' joined names hold no "|")
            self._with_shape.setdefault(joined, {})[shape] = row
        self._by_classes: dict[tuple[str, ...], ClassRows] = {}  # remembered per combination of lists
        self._b, self._lc, self._nonascii, self._pcap, self._ncap = (vocab.get(f) for f in (
            "b", "lc", "nonascii", "pcap", "ncap"))
        self._len = [vocab.get("len=" + str(n)) for n in range(9)]

    def _features_block(self, features: Sequence[str]) -> Block:
        """The block of the features of `features` the vocabulary has (`_rows_block` of their rows)."""
        return self._rows_block(list(map(self.vocab.get, features)))

    @property
    def evidence(self) -> bool:
        """Whether the model was trained with the rules' evidence (`text_parts`)."""
        return bool(self.meta.get("evidence"))

    def _scores(self, idx: list[int], starts: list[int]) -> npt.NDArray[np.float64]:
        if not starts:
            return np.zeros((0, len(LABELS)))
        # the rows as an index array built in C (`array`), gathered with `take`: the same rows as `weights[idx]`,
        # half the cost
        rows = self._weights64.take(np.frombuffer(array.array("q", idx), dtype=np.int64), axis=0)
        return _softmax(np.add.reduceat(rows, starts, axis=0))

    def probabilities(self, texts_features: Sequence[list[str]]) -> npt.NDArray[np.float64]:
        """One row of label probabilities per candidate's features."""
        vocab = self.vocab
        bias = len(self.weights) - 1
        idx: list[int] = []
        starts: list[int] = []
        for feats in texts_features:
            starts.append(len(idx))
            idx.append(bias)
            idx.extend(j for j in map(vocab.get, feats) if j is not None)
        return self._scores(idx, starts)

    def _word(self, word: str, lowercase_text: bool) -> Word:
        """A word's `Word` (remembered)."""
        words = self._words[lowercase_text]
        got = words.get(word)
        if got is None:
            if len(words) >= self.OWN_CACHE:
                words.clear()
            got = words[word] = self.new_word(word, lowercase_text)
        return got

    def new_word(self, word: str, lowercase_text: bool) -> Word:
        """A word's `word_info` features and run features as sums of weight rows: the same rows, in the same order, as
        `_features_block` of `word_info(word, lowercase_text)[3]` (own), `[4]` (as the word before), `[5]` (as the word
        after), of "rb=" + its lower case, "ra=" + it and "rc=" + each of its lists, but found by prefix and value
        (`families_of`) rather than by making the ~25 strings, most of which the vocabulary lacks; what its lower
        case, its shape and its lists give in one look-up each (`LowRows`, `ShapeRows`, `ClassRows`), not ~17."""
        low = word.lower()
        shape = _shape(word)
        cls = tuple(self.lex.classes(word, lowercase_text)) if word[:1].isalpha() else ()
        lists = self._by_classes.get(cls) or self._class_rows(cls)
        by_low = self._by_low.get(low, _NO_LOW)
        by_shape = self._by_shape.get(shape, _NO_SHAPE)
        f = self._families
        own = [self._b, by_low.w, by_shape.sh, f["p3="].get(low[:3]), f["s3="].get(low[-3:]), f["s2="].get(low[-2:]),
               f["s4="].get(low[-4:]), self._len[min(len(word), 8)]]
        if lowercase_text:
            own.append(self._lc)
        if not word.isascii():
            own.append(self._nonascii)
        own += lists.own  # "c=" of each list, "cs=" of them joined
        own.append(lists.with_shape.get(shape))
        as_prev = [by_low.pw, by_shape.psh, *lists.as_prev]
        as_next = [by_low.nw, by_shape.nsh, *lists.as_next]
        if shape[:1] == "X":
            as_prev.append(self._pcap)
            as_next.append(self._ncap)
        block = self._rows_block
        return Word(low, cls, lists.joined, own=block(own), as_prev=block(as_prev), as_next=block(as_next),
                    run_before=block([by_low.rb]), run_after=block([by_low.ra]), run_alone=lists.run_alone,
                    pw2=by_low.pw2, nw2=by_low.nw2, rb2=by_low.rb2, c_nc=lists.c_nc, c_pc=lists.c_pc)

    def _class_rows(self, cls: tuple[str, ...]) -> ClassRows:
        """The `ClassRows` of a combination of lists (remembered: there are a few dozen)."""
        f = self._families
        joined = "+".join(cls)
        got = ClassRows(joined, own=[*(f["c="].get(c) for c in cls), f["cs="].get(joined)],
                        as_prev=[f["pc="].get(c) for c in cls], as_next=[f["nc="].get(c) for c in cls],
                        with_shape=self._with_shape.get(joined, {}),
                        run_alone=self._rows_block([f["rc="].get(c) for c in cls]),
                        c_nc=self._pairs["c|nc="].get(joined, _NO_BLOCKS),
                        c_pc=self._pairs["c|pc="].get(joined, _NO_BLOCKS))
        if len(self._by_classes) >= self.OWN_CACHE:
            self._by_classes.clear()
        self._by_classes[cls] = got
        return got

    def _rows_block(self, rows: Sequence[int | None]) -> Block:
        """The sum of `rows` (None: a feature the vocabulary lacks), in their order from zero (exact for up to
        `exact_rows` rows, which is all that is ever used of it), or `_EMPTY` when all are None (a new word's own word,
        its features as the word before or after a run). Every block made from rows is only ever read: added to a
        total, or copied."""
        values = self._values
        total = _EMPTY
        n = 0
        for row in rows:
            if row is not None:
                if n == 0:
                    total = Block()
                v = values[row]
                total.o += v[0]
                total.person += v[1]
                total.place += v[2]
                n += 1
        if n:
            total.n = n
        return total

    def _run_class(self, name: str) -> Block:
        """The row of "rc=" + a list's name (for a run of more than one word)."""
        got = self._run_classes.get(name)
        if got is None:
            got = self._run_classes[name] = self._features_block(("rc=" + name,))
        return got

    def _evidence_blocks(self, spans: Sequence[tuple[int, int]], cand: Sequence[int], evidence: Sequence[Evidence],
                         ) -> list[Block | None]:
        """`_evidence_features` as sums of weight rows: per candidate, the rows of what the rules found over it (a
        rule's two features' rows remembered per entity, score bucket and rule), or None for "ev=none"."""
        out: list[Block | None] = [None] * len(cand)
        if evidence:
            memo = self._evidence
            starts = [spans[i][0] for i in cand]
            for kind, a, b, score, rule in evidence:
                k = max(0, bisect.bisect_right(starts, a) - 1)
                rows: Block | None = None
                while k < len(cand) and spans[cand[k]][0] < b:
                    if a < spans[cand[k]][1]:
                        if rows is None:
                            key = (kind, _bucket(score), rule)
                            rows = memo.get(key)
                            if rows is None:
                                if len(memo) >= self.OWN_CACHE:
                                    memo.clear()
                                rows = memo[key] = self._features_block(("ev=" + kind + "|" + key[1],
                                                                         "evr=" + kind + "|" + rule))
                        got = out[k]
                        if got is None:
                            out[k] = rows.copy()
                        else:
                            got.add(rows)
                    k += 1
        return out

    def word_probabilities(self, text: str, evidence: Sequence[Evidence] | None = None,
                           ) -> tuple[list[tuple[int, int]], list[int], npt.NDArray[np.float64]]:
        """Tokens, candidate indices and their label probabilities (`evidence`: what the rules found, read by a
        model trained with it; none given counts as nothing found).

        The features are those of `text_parts`, but summed as they are found: each word's own, previous-word and
        next-word blocks, and the run features a word gives alone ("rb=", "ra=", "rc=" of a one-word run), are
        summed once per word (`_word`), those of no word once per model, a run's shared features once per run, and
        the features of two words ("pw2=", "nw2=", "rb2=", "c|nc=", "c|pc=") looked up by their parts. The sums are
        exact (`exact_rows`), so they are bit for bit those of `probabilities(text_features(...))`, which scores a
        text with a candidate of more rows than that."""
        parts = _ASCII_SPLIT.split(plain(text))
        spans = _spans(parts)  # `tokens(text)`
        cand = candidates(text, spans, self.lex)
        if not cand:
            return spans, cand, np.zeros((0, len(LABELS)))
        ascii_text = text.isascii()  # (`plain` gives an ASCII text as it is: its tokens are its words, `parts`)
        lowercase_text = not any(c.isupper() for c in text)
        words = self._words[lowercase_text]
        word = self._word
        # the remembered words of the tokens, two "<s>" before and two "</s>" after: token j at `seen[j + 2]`, so a
        # candidate's five words (two before, itself, two after) are `seen[i]` to `seen[i + 4]`; only those are read
        # (every word the features read is one of them)
        opening = words.get("<s>") or word("<s>", lowercase_text)
        closing = words.get("</s>") or word("</s>", lowercase_text)
        seen = [_UNREAD] * (len(spans) + 4)
        seen[0] = seen[1] = opening
        seen[-1] = seen[-2] = closing
        for i in cand:
            for j in range(i, i + 5):
                if seen[j] is _UNREAD:
                    if ascii_text:
                        w = parts[2 * j - 3]  # token j - 2
                    else:
                        s, e = spans[j - 2]
                        w = text[s:e]
                    seen[j] = words.get(w) or word(w, lowercase_text)
        extras = self._evidence_blocks(spans, cand, evidence or ()) if self.evidence else None
        none = self._no_evidence
        opens = self._open
        newlines: list[int] = []  # (`_NEWLINE.finditer`'s starts)
        at = text.find("\n")
        while at >= 0:
            newlines.append(at)
            at = text.find("\n", at + 1)
        places, town_list = gazetteer(), towns()
        bias = self._bias
        limit = self.exact_rows
        sums: list[float] = []
        total = Block()
        k = 0
        for run in _runs(text, spans, cand):
            # `run_features(text, spans, run, ...)`: the same features
            first, last = run[0], run[-1]
            start, end = spans[first][0], spans[last][1]
            before = seen[first + 1]
            shared = bias.copy()
            shared.add(self._run_length[min(len(run), 4)])
            shared.add(before.run_before)
            one = seen[first].rb2.get(before.low)  # "rb2=" + the two words before the run
            if one is not None:
                shared.add(one)
            shared.add(seen[last + 3].run_after)
            if len(run) > 1:
                phrase = text[start:end]
                if town_list.get(phrase, lowercase_text=lowercase_text) is not None:
                    shared.add(self._town)
                if places.get(phrase, lowercase_text=lowercase_text) is not None:
                    shared.add(self._place)
                for c in {c for i in run for c in seen[i + 2].classes}:
                    shared.add(self._run_class(c))
            else:
                shared.add(seen[first + 2].run_alone)
            if newlines:
                line = bisect.bisect_left(newlines, start)  # the run's line (newlines before it)
                line_start = newlines[line - 1] + 1 if line else 0
                after = bisect.bisect_left(newlines, end)
                line_end = newlines[after] if after < len(newlines) else len(text)
            else:
                line, line_start, line_end = 0, 0, len(text)
            # (the text before the run on its line is blank or bullets: when its first character is neither, it is
            # not, without copying the line up to the run)
            if line_start == start or (text[line_start] in _BULLETS and text[line_start:start].strip(_BULLETS) == ""):
                shared.add(self._lstart)
                if text[end:line_end].strip(" \t.,") == "":
                    shared.add(self._lonly)
            if newlines:
                shared.add(self._lines[min(line, 3)])
            size = len(run)
            for position in range(size):  # "rp=s" alone, else "rp=f", "rp=m"..., "rp=l"
                i = run[position]
                before2, before_w, me, after_w, after2 = seen[i], seen[i + 1], seen[i + 2], seen[i + 3], seen[i + 4]
                plow = before_w.low
                total.set(shared)
                total.add(me.own)
                total.add(before_w.as_prev)
                total.add(after_w.as_next)
                one = before2.pw2.get(plow)  # "pw2=" + the two words before
                if one is not None:
                    total.add(one)
                one = after_w.nw2.get(after2.low)  # "nw2=" + the two words after
                if one is not None:
                    total.add(one)
                # (a line break in the three characters before it: the run's line starts within them, as only spaces
                # and tabs are between a run's words)
                if (line_start and spans[i][0] - line_start <= 2) or i == 0 or plow in (".", "!", "?", ":", "\n"):
                    total.add(opens)
                with_next = me.c_nc  # "c|nc=" + its lists + "|" + a list of the next word (none: no such row)
                if with_next:
                    for c in after_w.classes:
                        one = with_next.get(c)
                        if one is not None:
                            total.add(one)
                with_prev = me.c_pc
                if with_prev:
                    for c in before_w.classes:
                        one = with_prev.get(c)
                        if one is not None:
                            total.add(one)
                total.add(self._alone if size == 1 else self._first if position == 0 else
                          self._last if position == size - 1 else self._middle)
                if extras is not None:
                    extra = extras[k]
                    total.add(none if extra is None else extra)
                if total.n > limit:  # not provably exact: the rows in `text_parts`' order, summed by numpy
                    return self._by_rows(text, evidence)
                sums += (total.o, total.person, total.place)
                k += 1
        return spans, cand, _softmax(np.array(sums, dtype=np.float64).reshape(len(cand), len(LABELS)))

    def _by_rows(self, text: str, evidence: Sequence[Evidence] | None,
                 ) -> tuple[list[tuple[int, int]], list[int], npt.NDArray[np.float64]]:
        """`word_probabilities` from every feature of every candidate (`text_features`), looked up and summed by
        numpy: the reference, and what scores a text whose sums `exact_rows` cannot vouch for."""
        spans, cand, feats = text_features(text, self.lex, (evidence or ()) if self.evidence else None)
        return spans, cand, self.probabilities(feats)

    def tag(self, text: str, *, threshold: float = 0.4, place_threshold: float | None = 0.8) -> list[Tag]:
        """PERSON and LOCATION spans (see `spans_of`), without rule evidence."""
        spans, cand, probs = self.word_probabilities(text)
        return spans_of(text, spans, cand, probs, threshold=threshold, place_threshold=place_threshold)


def _softmax(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each row's sums as probabilities (in place)."""
    scores -= scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    return scores


def spans_of(text: str, spans: Sequence[tuple[int, int]], cand: Sequence[int], probs: npt.NDArray[np.float64], *,
             threshold: float, place_threshold: float | None = None) -> list[Tag]:
    """Labelled spans: a candidate is a PERSON (LOCATION) when that label's probability is at least `threshold`
    and the higher of the two; neighbouring candidates of one label joined only by spaces, or by an initial's
    dot, merge."""
    # the spans as they grow (a `Tag` is made once per span, at the end)
    labels: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    lowest: list[float] = []
    last_index = -2
    place_threshold = threshold if place_threshold is None else place_threshold
    rows: list[list[float]] = probs.tolist()  # the same float64 values as Python floats, without a numpy scalar each
    for k in range(len(cand)):
        row = rows[k]
        p_person, p_place = row[1], row[2]
        if p_person >= p_place:
            label, p = "PERSON", p_person
            if p < threshold:
                continue
        else:
            label, p = "LOCATION", p_place
            if p < place_threshold:
                continue
        i = cand[k]
        if labels and labels[-1] == label and last_index >= 0 and _joins(text, spans, last_index, i):
            ends[-1] = spans[i][1]
            lowest[-1] = min(lowest[-1], p)
        else:
            labels.append(label)
            starts.append(spans[i][0])
            ends.append(spans[i][1])
            lowest.append(p)
        last_index = i
    return [Tag(labels[n], starts[n], ends[n], lowest[n]) for n in range(len(labels))]


def _joins(text: str, spans: Sequence[tuple[int, int]], a: int, b: int) -> bool:
    """Whether candidate tokens `a` < `b` are one name: only spaces between them, or an initial and its dot."""
    gap = text[spans[a][1]:spans[b][0]]
    if b == a + 1:
        return gap.strip(" \t") == ""
    return b == a + 2 and gap.strip(" \t") == "." and spans[a][1] - spans[a][0] == 1


def load(path: Path | None = None) -> NameTagger:
    """The tagger from `path` (default: the file the package ships)."""
    raw = path.read_bytes() if path is not None else (
        resources.files("llmops_guardrails").joinpath(MODEL_FILE).read_bytes())
    head, _, body = raw.partition(b"\n")
    header = json.loads(head)
    if header.get("format") != FORMAT or tuple(header.get("labels", ())) != LABELS:
        raise ValueError(f"name tagger file of format {header.get('format')}, expected {FORMAT}")
    features_list: list[str] = header.pop("features")
    weights = np.frombuffer(body, dtype="<f4").reshape(len(features_list) + 1, len(LABELS)).astype(np.float32)
    return NameTagger({f: i for i, f in enumerate(features_list)}, weights, header)


def dump(tagger_vocab: Sequence[str], weights: npt.NDArray[np.floating], meta: dict[str, object]) -> bytes:
    """The model file's bytes: the JSON header line, then the weights (float32, little-endian)."""
    header = {"format": FORMAT, "labels": list(LABELS), **meta, "features": list(tagger_vocab)}
    return json.dumps(header, ensure_ascii=False).encode() + b"\n" + np.asarray(weights, dtype="<f4").tobytes()


@functools.cache
def shipped() -> NameTagger:
    return load()
