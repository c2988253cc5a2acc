"""Places: a gazetteer (`data/places.md`) and the shape of postal addresses (`PlaceRecognizer`)."""

from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources

import regex

from llmops_guardrails.detectors.pii import cues
from llmops_guardrails.detectors.pii.classes import plain
from llmops_guardrails.detectors.pii.lexicon import BULLET, ORG_WORD, ORG_WORD_RE, UNIT_OR_STREET
from llmops_guardrails.detectors.pii.names import common_words, first_names, name_words
from llmops_guardrails.detectors.pii.patterns import ScanningRecognizer
from llmops_guardrails.detectors.pii.results import Span


def add_span(out: list[Span], whys: list[str] | None, source: str, entity: str, span: tuple[int, int], *,
             score: float, why: str, rule: str = "") -> None:
    """A name or place rule's match added to `out` as a `Span` (the rule: `rule`, else the recognizer's name, as
    `results.make_result` records it), and its explanation to `whys` when presidio's results are asked for
    (`patterns.ScanningRecognizer.explained`; `out` and `whys` stay parallel)."""
    start, end = span
    out.append(Span(entity, start, end, min(1.0, score), source, rule=rule or source))
    if whys is not None:
        whys.append(why)


@dataclass(frozen=True)
class Place:
    section: str
    ambiguous: bool


class Gazetteer:
    """Place names from `data/places.md`, looked up by phrase."""

    def __init__(self, entries: Iterable[tuple[str, str, bool]]) -> None:
        self.exact: dict[str, Place] = {}
        self.lower: dict[str, Place] = {}
        self.first_words: set[str] = set()  # first word of every name, in every form looked up
        self.max_words = 1
        for name, section, ambiguous in entries:
            place = Place(section, ambiguous)
            for form in (name, name.upper()):
                self.exact.setdefault(form, place)
            if (" " in name or section == "countries") and not ambiguous and len(name) > 3:
                self.lower.setdefault(name.lower(), place)
            first = name.split()[0]
            self.first_words |= {first, first.upper(), first.lower(), first.rstrip(",."), first.upper().rstrip(",.")}
            self.max_words = max(self.max_words, len(name.split()))
        # How many tokens (`_TOKEN`) a name can have that starts with a first word (less a final "."): a phrase of more
        # tokens from that word is not looked up. The name a phrase of tokens `i`..`j` gives (the phrase with its
        # whitespace made single spaces, or that less a final ".") has as many tokens, and starts with token `i`'s word
        # less its final "." (a token ends with at most one).
        names = sorted(self.exact)
        self.reach: dict[str, int] = {}
        for word in {w.rstrip(".") for w in self.first_words}:
            most = 0
            k = bisect.bisect_left(names, word)
            while k < len(names) and names[k].startswith(word):
                most = max(most, len(_ASCII_TOKEN.findall(plain(names[k]))))
                k += 1
            self.reach[word] = most
        # the first words of the countries' names as looked up (an address's country line starts with one)
        self.country_first_words: frozenset[str] = frozenset(
            phrase.split()[0] for table in (self.exact, self.lower) for phrase, place in table.items()
            if place.section == "countries" and phrase.split())

    @classmethod
    def parse(cls, text: str) -> Gazetteer:
        entries = []
        section = ""
        for line in text.splitlines():
            if line.startswith("## "):
                section = line[3:].strip()
            elif line.startswith("- ") and section:
                name = line[2:].strip()
                ambiguous = name.endswith(" *")
                entries.append((name.removesuffix(" *").strip(), section, ambiguous))
        return cls(entries)

    def get(self, phrase: str, *, lowercase_text: bool = False) -> Place | None:
        place = self.exact.get(phrase)
        if place is None and lowercase_text:
            place = self.lower.get(phrase)
        return place


@functools.cache
def gazetteer() -> Gazetteer:
    text = resources.files("llmops_guardrails").joinpath("data/places.md").read_text(encoding="utf-8")
    return Gazetteer.parse(text)


class Towns:
    """Town names (`data/towns.txt`: GeoNames' places of 1,000 people or more, built by `data/build_towns.py`),
    looked up as written or in ALL CAPS. Too many of them are also words or names to count anywhere: the
    recognizer uses them only after a place cue."""

    def __init__(self, names: Iterable[str]) -> None:
        self.by_fold: dict[str, str] = {}
        for name in names:
            self.by_fold.setdefault(name.casefold(), name)

    @classmethod
    def parse(cls, text: str) -> Towns:
        return cls(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))

    def get(self, phrase: str, *, lowercase_text: bool = False) -> str | None:
        """The town `phrase` names, written as the list writes it or in capitals (or, in a text without capital
        letters, in lower case); else None."""
        name = self.by_fold.get(phrase.casefold())
        if name is None or not (phrase == name or phrase.isupper() or (lowercase_text and phrase.islower())):
            return None
        return name


@functools.cache
def towns() -> Towns:
    text = resources.files("llmops_guardrails").joinpath("data/towns.txt").read_text(encoding="utf-8")
    return Towns.parse(text)


# Possessive runs (a run never gives letters back: what follows it is optional): the same tokens as
# `[\p{L}\p{M}]+(?:['’.-][\p{L}\p{M}]+)*\.?`, faster.
_TOKEN = regex.compile(r"[\p{L}\p{M}]++(?:['’.-][\p{L}\p{M}]++)*+\.?")
# A token of `_TOKEN` that starts with a capital letter, found without reading the tokens before it: a letter that no
# token reaches (a token goes on across letters, and across one of ' ’ . - between two letters). `\p{Lu}` holds
# every letter `str.isupper` calls a capital (and, in `regex`'s newer Unicode tables, a few more): the caller
# still asks `isupper`.
_CAPITAL_TOKEN = regex.compile(r"(?<![\p{L}\p{M}])(?<![\p{L}\p{M}]['’.-])(?=\p{Lu})" + _TOKEN.pattern)
# The two in the standard library's `re`, for ASCII text (`classes`: twice as fast as `regex` here).
_ASCII_TOKEN = re.compile(r"[A-Za-z]++(?:['.-][A-Za-z]++)*+\.?")
_ASCII_CAPITAL_TOKEN = re.compile(r"(?<![A-Za-z])(?<![A-Za-z]['.-])(?=[A-Z])" + _ASCII_TOKEN.pattern)
# ... the same tokens, the pattern starting with its capital and its look-behinds read after it: `re` skips to the
# capitals (a pattern that starts with a look-behind is tried at every position), ~2x faster; the first letter run
# `[A-Za-z]++` from a capital is the capital and `[A-Za-z]*+`
_ASCII_CAPITAL_TOKEN_FROM_CAPITAL = re.compile(
    r"[A-Z](?<![A-Za-z][A-Z])(?<![A-Za-z]['.-][A-Z])[A-Za-z]*+(?:['.-][A-Za-z]++)*+\.?")
_WORD_BACK = regex.compile(r"(?r)\S+")  # words, found from the end back
_TAIL_TOKEN = regex.compile(r"^(?:\S*\d\S*|nan|\p{Lu}{2}|,)$")
_LOCALITY = regex.compile(r"^[\p{L}\p{M}][\p{L}\p{M}'’. -]*[\p{L}\p{M}.]$|^[\p{L}\p{M}]$")
_ADDRESS_PLACE = regex.compile(
    r"(?i:\b(?:lives?\s+at|lived\s+at|living\s+at|address(?:\s+is)?:?|located\s+at|based\s+at|"
    r"(?:ship|shipped|deliver|delivered|send|sent|mail|mailed|post|posted)\s+(?:it\s+|this\s+|them\s+)?to))\s+"
    r"(?P<street>[^\n,;]{0,60}?\d[^\n,;]{0,60}?),\s*"
    r"(?P<place>[\p{L}\p{M}][\p{L}\p{M}'’-]*(?:[ ](?:[\p{L}\p{M}][\p{L}\p{M}'’-]*|\d{1,2})){0,3})"
    r"(?=\s*(?:$|[.,;!?)\n]))")
_PLACE_CUE = regex.compile(
    r"(?i:\b(?:in|near|from|across|around|outside|inside|visit|visited|visiting|to|at|of|toward|towards|via|"
    r"leave|left|reach|reached|capital|city))\s+$")
# A town's name: capitalised words and particles ("Villafranca del Cid").
_TOWN_NAME = (r"(?P<name>\p{Lu}[\p{L}\p{M}'’-]*(?:[ ](?:\p{Lu}[\p{L}\p{M}'’-]*|"
              r"(?:del|de|la|le|di|do|da|am|an|im|sur)(?![\p{L}\p{M}])))*)")
# A town before a comma and a country, state or region of the gazetteer ("Tujetsch, Switzerland").
_TOWN_BEFORE_REGION = regex.compile(
    rf"(?<![\p{{L}}\p{{M}}\p{{N}}'’.-]){_TOWN_NAME},[ ]?"
    r"(?P<region>\p{Lu}[\p{L}\p{M}'’-]*(?:[ ]\p{Lu}[\p{L}\p{M}'’-]*){0,3})")
_TOWN_CUE_LOWER = regex.compile(
    r"\b(?:in|near|from|to|toward|towards|via|visit|visited|visiting|reached)[ \t]+"
    r"(?P<name>\p{Ll}[\p{Ll}\p{M}'’-]{3,}(?:[ ]\p{Ll}[\p{Ll}\p{M}'’-]+)?)")
_ORG_NEXT_LOWER = regex.compile(rf"(?i)(?:[ ]\p{{L}}+){{0,3}}?[ ]{ORG_WORD}\b")
# A town counts after one of these (not "at" or "of": "at Teradata", "of Lexisnexis" name firms), as the whole
# run of capitalised words (and particles) that follows.
_TOWN_CUE = regex.compile(  # the cue in a look-behind: 4x faster than matching it first, same matches
    r"(?<=(?i:\b(?:in|near|from|across|around|outside|visit|visited|visiting|to|toward|towards|via|reached|"
    r"town|city|village))[ \t]+)" + _TOWN_NAME)

# Where a `_TOWN_BEFORE_REGION` match can lie, in `classes.plain(text)`: a run of letters, joiners and spaces (every
# character of a town's name and its particles reads as one of these) right before a comma and a capital (the
# region's first letter), the comma optionally followed by one space; the run from its first character (not after
# another such character, so each run is read once).
_TOWN_RUN = re.compile(r"(?<![A-Za-z' -])[A-Za-z' -]++(?=,[ ]?[A-Z])")
_ASCII_CAPITAL = re.compile("[A-Z]")  # `classes.plain`'s stand-ins of the capitals (`\p{Lu}`)
_COMMA_CAPITAL = re.compile(",[ ]?[A-Z]")  # where a `_TOWN_RUN` ends (at the comma)
_TOWN_RUN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz' -")


def town_runs(read: str) -> list[tuple[int, int]]:
    """The spans of `_TOWN_RUN.finditer(read)`: each the whole run of its characters that ends at a comma followed by
    an optional space and a capital, found from the comma back (`_TOWN_RUN` starts with a look-behind, so `re` tries
    it at every position; a comma is a character `re` skips to)."""
    runs = []
    for m in _COMMA_CAPITAL.finditer(read):
        end = start = m.start()
        while start > 0 and read[start - 1] in _TOWN_RUN_CHARS:
            start -= 1
        if start < end:
            runs.append((start, end))
    return runs


def towns_before_regions(text: str) -> Iterator[regex.Match[str]]:
    """`_TOWN_BEFORE_REGION.finditer(text)`, the pattern tried only where a match can start (`cues.matches`): at a
    capital of a run of letters, joiners and spaces right before a comma and a capital (`_TOWN_RUN`). A text without
    a comma has no match."""
    if "," not in text:
        return iter(())
    read = plain(text)
    starts = [c.start() for run in town_runs(read) for c in _ASCII_CAPITAL.finditer(read, *run)]
    return cues.matches(_TOWN_BEFORE_REGION, text, starts)


def content_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of the content of each line of `text` that holds more than whitespace: after its bullet
    (`BULLET`), without its trailing whitespace, when anything is left (the lines of `LINE.finditer(text)`, read by
    `str.split`)."""
    lines = []
    at = 0
    for line in text.split("\n"):
        if line.strip():
            bullet = BULLET.match(line)
            cs = at + (bullet.end() if bullet else 0)
            ce = at + len(line.rstrip())
            if ce > cs:
                lines.append((cs, ce))
        at += len(line) + 1
    return lines


class PlaceRecognizer(ScanningRecognizer):
    """LOCATION from the gazetteer and from the lines of a postal address.

    - A gazetteer name (`data/places.md`): 0.95 for countries, states and regions, 0.9 for cities; a name that
      is also a person's name or a word (marked `*`) only after a place cue ("in", "from", "to"...), 0.6.
    - In a block of address lines: a country line (a country name, optionally followed by a postal code)
      makes the line above it, when it reads like a locality (letters only, at most four words, no street or
      unit word), a place; so does a locality line followed by a postal code or a two-letter country code
      ("Aalborg NO 9100") right under a line with digits (street, unit). 0.88.
    - The last comma-separated part after a street with a number, introduced by "lives at", "address:",
      "ship to"... ("lives at 12 Rua Nova 3, Goiania"). 0.88.
    - A town of `data/towns.txt` (as written or in capitals) right after "in", "from", "to", "near", "via"...
      ("I'm in HARSTAD", "flew to Flateyri"), unless its first word is also a first name, a surname or a
      common word ("said Anna to Logan"): 0.88. So is a town before a comma and a country, state or region of
      the gazetteer ("Tujetsch, Switzerland", "KOKKOLA, Finland"), unless it starts with a first name. In a
      text without capital letters, a town (or a place of the gazetteer) in lower case after a cue ("drove to
      kiel"), on the same conditions.
    """

    ENTITY = "LOCATION"

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_language)
        self.places = gazetteer()

    def _scan(self, text: str, whys: list[str] | None) -> list[Span]:
        """The matches (`whys`: their explanations, when asked for), in the order `analyze` gave them."""
        name = type(self).__name__
        out = self._gazetteer(text, name, whys)
        out.extend(self._towns(text, out, name, whys))
        if "\n" in text:
            out.extend(self._address_lines(text, name, whys))
        if "," in text:
            for m in cues.matches(_ADDRESS_PLACE, text, cues.starts(text).address):  # `.finditer(text)`
                start, end = m.span("place")
                value = m.group("place")
                if UNIT_OR_STREET.search(value) or (value[0].islower() and any(c.isupper() for c in text)):
                    continue
                add_span(out, whys, name, self.ENTITY, (start, end), score=0.88, why="place after a street address")
        return out

    def _gazetteer(self, text: str, name: str, whys: list[str] | None) -> list[Span]:
        """Gazetteer names, each starting at a token (`_TOKEN`) on the gazetteer's list of first words, with a capital
        letter unless the text has none; the longest name from there (up to `max_words` tokens) wins, and the scan
        goes on after it. In a text with capitals only the tokens that start with one are read as starts
        (`_CAPITAL_TOKEN`), and the tokens after a start only when it is a first word: the same names as reading
        every token (`_gazetteer_tokens`)."""
        if not any(c.isupper() for c in text):
            return self._gazetteer_tokens(text, [m.span() for m in _TOKEN.finditer(text)], name, whys,
                                          lowercase_text=True)
        first_words, max_words, reach = self.places.first_words, self.places.max_words, self.places.reach
        out: list[Span] = []
        reached = 0  # the end of the last token of the last name found: the tokens before it are its own
        read = plain(text)  # `_CAPITAL_TOKEN`, `_TOKEN` as `_ASCII_CAPITAL_TOKEN`, `_ASCII_TOKEN` in it (`classes`)
        for m in _ASCII_CAPITAL_TOKEN_FROM_CAPITAL.finditer(read):  # `_ASCII_CAPITAL_TOKEN.finditer(read)`
            start, end = m.span()
            word = text[start:end]
            if start < reached or not word[0].isupper() or (
                    word not in first_words and word.rstrip(".") not in first_words):
                continue
            # (no name from here has more tokens than `reach` says)
            limit = min(max_words, reach.get(word.rstrip("."), max_words))
            if limit == 0:
                continue
            tokens = [(start, end)]
            if limit > 1:
                tokens.extend(t.span() for t in itertools.islice(_ASCII_TOKEN.finditer(read, end), limit - 1))
            found = self._place_from(text, tokens, 0, name, whys, lowercase_text=False, out=out)
            if found is not None:
                reached = tokens[found][1]
        return out

    def _gazetteer_tokens(self, text: str, tokens: list[tuple[int, int]], name: str, whys: list[str] | None, *,
                          lowercase_text: bool) -> list[Span]:
        """`_gazetteer` reading every token of `text` as a possible start."""
        out: list[Span] = []
        i = 0
        while i < len(tokens):
            start = tokens[i][0]
            if (not lowercase_text and not text[start].isupper()) or (
                    text[start:tokens[i][1]] not in self.places.first_words
                    and text[start:tokens[i][1]].rstrip(".") not in self.places.first_words):
                i += 1
                continue
            found = self._place_from(text, tokens, i, name, whys, lowercase_text=lowercase_text, out=out)
            i = i + 1 if found is None else found + 1
        return out

    def _place_from(self, text: str, tokens: list[tuple[int, int]], i: int, name: str, whys: list[str] | None, *,
                    lowercase_text: bool, out: list[Span]) -> int | None:
        """The longest gazetteer name of tokens `i`... (at most `max_words`), added to `out` when it counts (an
        ambiguous one only after a place cue); the index of its last token, or None when there is no name."""
        start = tokens[i][0]
        found = None
        for j in range(min(len(tokens), i + self.places.max_words) - 1, i - 1, -1):
            end = tokens[j][1]
            phrase = text[start:end]
            if "\n" in phrase:
                continue
            phrase = " ".join(phrase.split())
            place = self.places.get(phrase, lowercase_text=lowercase_text)
            if place is None and phrase.endswith("."):
                place = self.places.get(phrase[:-1], lowercase_text=lowercase_text)
                end -= 1
            if place is not None:
                found = (j, end, place)
                break
        if found is None:
            return None
        j, end, place = found
        if place.ambiguous:
            if _PLACE_CUE.search(text, max(0, start - 20), start):
                add_span(out, whys, name, self.ENTITY, (start, end), score=0.6, why="gazetteer place after a place cue",
                         rule="gazetteer")
        else:
            score = 0.9 if place.section == "cities" else 0.95
            add_span(out, whys, name, self.ENTITY, (start, end), score=score, why=f"gazetteer place ({place.section})",
                     rule="gazetteer")
        return j

    def _towns(self, text: str, found: list[Span], name: str, whys: list[str] | None) -> list[Span]:
        places = towns()
        names, common = name_words(), common_words()
        out: list[Span] = []
        for m in _TOWN_CUE.finditer(text):
            start = m.start("name")
            if any(r.start <= start < r.end for r in found):
                continue  # the gazetteer already named it
            phrase = m.group("name").rstrip(".")
            if places.get(phrase) is None:
                continue  # also when more capitalised words follow the town: "from Faina D. Yefremova"
            first = phrase.split()[0]  # "Villafranca del Cid": a name word later on ("Cid") is part of the town
            if not (first in names or first.capitalize() in names or first.lower() in common):
                add_span(out, whys, name, self.ENTITY, (start, start + len(phrase)), score=0.88,
                         why="town after a place cue", rule="towns")
        if not any(c.isupper() for c in text):
            for m in _TOWN_CUE_LOWER.finditer(text):
                words = m.group("name").split(" ")
                for n in (2, 1):
                    phrase = " ".join(words[:n])
                    known = gazetteer().get(phrase.title())
                    if n > len(words) or (places.get(phrase, lowercase_text=True) is None
                                          and (known is None or known.ambiguous)):
                        continue
                    end = m.start("name") + len(phrase)
                    if _ORG_NEXT_LOWER.match(text, end):
                        break  # "from stillwater supercomputing inc.": a firm
                    if not any(w.capitalize() in names or w in common for w in words[:1]):
                        start = m.start("name")
                        add_span(out, whys, name, self.ENTITY, (start, start + len(phrase)), score=0.88,
                                 why="town after a place cue", rule="towns")
                    break
        if "," in text:
            gaz, firsts = gazetteer(), first_names()
            for m in towns_before_regions(text):  # `_TOWN_BEFORE_REGION.finditer(text)`
                start, end = m.span("name")
                region = m.group("region")
                # the region as the longest run of its words that the gazetteer knows ("Sweden", "New York")
                parts = region.split()
                known = next((place for n in range(len(parts), 0, -1)
                              if (place := gaz.get(" ".join(parts[:n]))) is not None), None)
                if (known is None or known.ambiguous or known.section == "cities" or places.get(m.group("name")) is None
                        or m.group("name").split()[0] in firsts
                        or any(r.start <= start < r.end for r in [*found, *out])):
                    continue
                add_span(out, whys, name, self.ENTITY, (start, end), score=0.88, why="town before a country or state",
                         rule="towns")
        return out

    def _address_lines(self, text: str, name: str, whys: list[str] | None) -> list[Span]:
        lines = content_lines(text)
        if len(lines) < 2:
            return []
        lowercase_text = not any(c.isupper() for c in text)
        country_firsts = self.places.country_first_words
        out: list[Span] = []
        for k in range(1, len(lines)):
            cs, ce = lines[k]
            # A line gives a place only as a country line (the line's words up to its tail name a country: its first
            # word is a country name's first word) or, with a tail, right under a line with a digit: other lines are
            # not read further.
            if text[cs:ce].split(None, 1)[0] not in country_firsts:
                ps, pe = lines[k - 1]
                if not any(map(str.isdigit, text[ps:pe])):
                    continue
                # ... and only with a tail: its last word (ending the line) holds a digit, is "nan" or ",", or is two
                # capitals (`_TAIL_TOKEN`; a capital, `\p{Lu}`, is never lower case)
                line = text[cs:ce]
                if not (any(map(str.isdigit, line)) or line.endswith((",", "nan"))
                        or (not line[-1].islower() and not line[-2:-1].islower())):
                    continue
            core_end, tail = self._split_tail(text, cs, ce)
            core = text[cs:core_end]
            place = self.places.get(" ".join(core.split()), lowercase_text=lowercase_text) if core else None
            if place is not None and place.section == "countries":
                loc_end = self._locality(text, *lines[k - 1]) if k >= 2 and len(lines) >= 3 else None
                if loc_end is not None:
                    add_span(out, whys, name, self.ENTITY, (lines[k - 1][0], loc_end), score=0.88,
                             why="locality line above a country")
                if place.ambiguous:
                    add_span(out, whys, name, self.ENTITY, (cs, core_end), score=0.88, why="country line of an address")
                continue
            # (the tail's test before the locality's, and the line's tail cut once: both read without side effects)
            if (tail and k >= 1 and any(map(str.isdigit, text[lines[k - 1][0]:lines[k - 1][1]]))
                    and any(ch.isdigit() or ch.isupper() or ch == "n" for ch in tail)
                    and (loc_end := self._locality(text, cs, ce, core_end)) is not None):
                add_span(out, whys, name, self.ENTITY, (cs, loc_end), score=0.85, why="locality line with postal code")
        return out

    @staticmethod
    def _split_tail(text: str, cs: int, ce: int) -> tuple[int, str]:
        """Where a line's postal code / country code / 'nan' tail starts, and the tail."""
        # the line's words from the last one back (not all of a long line's words): tail tokens are cut while a
        # word is left before them
        words = _WORD_BACK.finditer(text, cs, ce)
        word = next(words, None)
        cut = False
        while word is not None:
            before = next(words, None)
            if before is None or not _TAIL_TOKEN.match(word.group()):
                break
            word, cut = before, True
        if word is None or not cut:
            return ce, ""
        end = word.end()
        return end, text[end:ce].strip()

    def _locality(self, text: str, cs: int, ce: int, tail_start: int = -1) -> int | None:
        """End of the locality part of an address line, or None when the line does not read like one (`tail_start`:
        `_split_tail(text, cs, ce)[0]`, when the caller has it)."""
        end = tail_start if tail_start >= 0 else self._split_tail(text, cs, ce)[0]
        core = text[cs:end].rstrip(",")
        end = cs + len(core)
        if not core or len(core.split()) > 4 or not _LOCALITY.match(core) or UNIT_OR_STREET.search(core):
            return None
        if ORG_WORD_RE.search(core) or not (core[0].isupper() or not any(c.isupper() for c in text)):
            return None
        return end
