"""Refinement: tidy NER spans, settle conflicts between the model and the rules (`refine`), and keep one
result per span (`resolve_overlaps`)."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

import regex

from llmops_guardrails.detectors.keys import fold
from llmops_guardrails.detectors.pii.lexicon import NAME_WORD, ORG_WORD_RE
from llmops_guardrails.detectors.pii.patterns import CardNumberRecognizer, PhoneNumberRecognizer
from llmops_guardrails.detectors.pii.places import gazetteer
from llmops_guardrails.detectors.pii.results import MODELS, Span, word_start

_REGION_PREFIX = regex.compile(r"^(?:(?:the|southern|northern|eastern|western|central|south|north|east|west|"
                               r"greater|downtown|upper|lower)\s+)+", regex.IGNORECASE)
_POSSESSIVE = regex.compile(r"['’]s?$")
_PLACE_PARTICLE_TAIL = regex.compile(r"[ ](?:de|del|de la|da|do|dos|das|di|della|la|le|les|sur|am|im|upon)[ -]"
                                     r"\p{Lu}[\p{L}\p{M}'’-]+")
_NAME_TOKEN = regex.compile(r"\p{Lu}[\p{L}'’-]{2,}")
_TRAILING_UNIT = regex.compile(r"(?:\s+(?:Apt|Apartment|Suite|Unit|Box|Room|Floor)\.?)+$", regex.IGNORECASE)
_ORG_AFTER = regex.compile(r"\s*(?:,\s*)?(?:(?:Inc|Ltd|LLC|LLP|PLC|GmbH|AG|Corp|Corporation|Company|Co|Group|"
                           r"Holdings|Partners|Associates|Orchestra|Band)\b|and\s+(?:Sons|Brothers|Daughters|"
                           r"Partners|Associates|Co)\b|&\s*\p{Lu})")
# The first character of each of `_ORG_AFTER`'s alternatives after its whitespace and comma, but "and"'s ("a").
_ORG_AFTER_FIRST = frozenset("ILPGACHOB&")
_ASCII_SPACE = " \t\n\x0b\x0c\r"  # the ASCII characters `regex`'s `\s` matches (all of them)
_EMPLOYER_BEFORE = regex.compile(r"(?i:\b(?:work|works|worked|working|employed|job|intern|interned|internship)"
                                 r"\s+(?:for|at|by|with)\s+)$")
# Every match of `_EMPLOYER_BEFORE` holds one of these, case-insensitively (as `keys.fold` lower-cases): a text
# without any cannot match it anywhere, and is not searched result by result (nine texts in ten).
_EMPLOYER_KEYS = ("work", "employed", "job", "intern")
_FIRM_LIST = regex.compile(rf"\b{NAME_WORD}(?:,\s+{NAME_WORD})+,?\s+(?:and|&)\s+{NAME_WORD}\b")
# Every `_FIRM_LIST` match holds a match of each of these (a comma, then "and" or "&", each before a capital): two
# searches 4-15x cheaper than `_FIRM_LIST`'s own, which a text failing either skips (most texts).
_FIRM_LIST_NEEDS = (regex.compile(r",\s+\p{Lu}"), regex.compile(r"(?:and|&)\s+\p{Lu}"))
# Every `_TRAILING_UNIT` match holds one of these, case-insensitively (`keys.fold`: the `regex` module's
# case-insensitive matches of these letters are their capitals and U+0130, U+212A, U+017F, which `fold` maps back).
_UNIT_KEYS = ("apt", "apartment", "suite", "unit", "box", "room", "floor")
_FIRM_CUE_BEFORE = regex.compile(r"(?i:\b(?:at|for|from|of|with|by|joined|the)\s+)$")


def refine(text: str, results: list[Span]) -> list[Span]:
    """Tidy NER spans and settle conflicts with the rules:

    - drop a leading "Southern"/"the" from places (unless the whole is a gazetteer name: "South Africa"), a
      trailing possessive, and a trailing "Suite"/"Apt" from names; extend a place over a particle and the
      word after it ("Reguengos de Monsaraz", "Frankfurt am Main");
    - drop names and places that are part of an organisation's name: followed by an organisation word
      ("... Orchestra", "... Inc", "... and Sons"), named as an employer ("works for X"), or a list of
      surnames after a preposition ("at Jones, Smith and Davis");
    - a gazetteer place inside a longer NER person ("Jack London") gives way to the person;
    - mark later mentions of a detected person's name (a first name used again alone) as PERSON too; a
      NER place with exactly that text becomes a person when a rule (not the model) found the name.
    """
    firms = [m.span() for m in _firm_lists(text)
             if _FIRM_CUE_BEFORE.search(text, max(0, m.start() - 12), m.start())
             or _ORG_AFTER.match(text, m.end(), min(len(text), m.end() + 30))]
    ner_persons = [(r.start, r.end) for r in results if r.entity_type == "PERSON" and r.source in MODELS]
    folded = fold(text)
    employer = _EMPLOYER_BEFORE if any(k in folded for k in _EMPLOYER_KEYS) else None
    units: bool | None = None  # whether a trailing unit can match: looked up at the first person
    out = []
    for r in results:
        if r.entity_type in ("PERSON", "LOCATION"):
            value = text[r.start:r.end]
            if r.entity_type == "LOCATION":
                m = _REGION_PREFIX.match(value)
                if m and m.end() < len(value) and gazetteer().get(" ".join(value.split())) is None:
                    r.start += m.end()
                m4 = _PLACE_PARTICLE_TAIL.match(text, r.end) if text[r.end:r.end + 1] == " " else None  # its 1st char
                if m4:
                    r.end = m4.end()
            value = text[r.start:r.end]
            m2 = _POSSESSIVE.search(value) if "'" in value or "’" in value else None
            if m2 and m2.start() > 0:
                r.end = r.start + m2.start()
            if r.entity_type == "PERSON" and units is None:
                units = any(k in folded for k in _UNIT_KEYS)
            if r.entity_type == "PERSON" and units:
                m3 = _TRAILING_UNIT.search(text, r.start, r.end)
                if m3 and m3.start() > r.start:
                    r.end = m3.start()
            # a sure rule result (0.9+) is kept whatever follows it: the organisation searches only for the others
            if (r.source in MODELS or r.score < 0.9) and (_org_after(text, r.end) or _org_word(text, r.start, r.end)):
                continue
            if employer is not None and employer.search(text, max(0, r.start - 30), r.start):
                continue
            if firms and any(s <= r.start and r.end <= e for s, e in firms):
                continue
            if (ner_persons and r.rule == "gazetteer"
                    and any(s <= r.start and r.end <= e and (s, e) != (r.start, r.end) for s, e in ner_persons)):
                continue
        out.append(r)
    rule_names: set[str] = set()
    names: set[str] = set()
    for r in out:
        if r.entity_type == "PERSON":
            tokens = _name_tokens(text[r.start:r.end])
            names.update(tokens)
            if r.source not in MODELS:
                rule_names.update(tokens)
    names -= _NOT_NAMES
    if not names:
        return out
    for name in sorted(names, key=len, reverse=True):
        for start, end in _whole_words(text, name):
            if (firms and any(s <= start and end <= e for s, e in firms)) or (
                    employer is not None and employer.search(text, max(0, start - 30), start)):
                continue
            # the results it overlaps: none, one (`clash`) or more (`clashes` 2: how many more does not matter)
            clash: Span | None = None
            clashes = 0
            for r in out:
                if not (end <= r.start or start >= r.end):
                    clashes += 1
                    if clashes > 1:
                        break
                    clash = r
            if clash is None:
                out.append(Span("PERSON", start, end, 0.7))
            elif (name in rule_names and clashes == 1 and clash.entity_type == "LOCATION"
                  and clash.source in MODELS and clash.start == start and clash.end == end):
                clash.entity_type = "PERSON"
    return out


def _org_after(text: str, at: int) -> bool:
    """Whether `_ORG_AFTER.match(text, at, min(len(text), at + 30))` matches, without running it where the first
    character after ASCII whitespace rules it out (eight names in ten: a line break, a lower-case word, "."). The
    pattern's `\\s*` takes some of the whitespace from `at`, whose run ends at that character `c`; then a comma or one
    of the alternatives must start (`_ORG_AFTER_FIRST`, or "and"). A `c` that is printable ASCII, not a space, is no
    whitespace for `regex`, so when it is none of those (nor "and" from it) nothing can start at or before it; any
    other `c` (a control character, one that is not ASCII) leaves the decision to the pattern."""
    end = min(len(text), at + 30)
    i = at
    while i < end and text[i] in _ASCII_SPACE:
        i += 1
    if i == end:
        return False  # nothing but whitespace before the window's end: no alternative fits
    c = text[i]
    if " " < c < "\x7f" and c != "," and c not in _ORG_AFTER_FIRST and not (c == "a" and text.startswith("and", i)):
        return False
    return _ORG_AFTER.match(text, at, end) is not None


_ORG_WORDS: dict[tuple[str, str], bool] = {}  # (the character before a result, its text) -> `_org_word`
_ORG_WORDS_MAX = 4096


def _org_word(text: str, start: int, end: int) -> bool:
    """Whether `ORG_WORD_RE.search(text, start, end)` finds an organisation word, remembered by the character before
    `start` and `text[start:end]` (up to `_ORG_WORDS_MAX` of them, then from scratch): the pattern reads nothing else
    (`endpos` ends the text for it, and of what lies before `start` only its `\\b` reads, one character), and a
    result's text recurs (four in five on the distinct name-dense events)."""
    key = (text[start - 1] if start > 0 else "", text[start:end])
    got = _ORG_WORDS.get(key)
    if got is None:
        if len(_ORG_WORDS) >= _ORG_WORDS_MAX:
            _ORG_WORDS.clear()
        got = _ORG_WORDS[key] = ORG_WORD_RE.search(text, start, end) is not None
    return got


_NOT_NAMES = frozenset({"The", "And", "Van", "Von", "Der", "Den", "Del", "Della"})
_NAME_TOKENS: dict[str, tuple[str, ...]] = {}  # a person's text -> its name words (`_name_tokens`)
_NAME_TOKENS_MAX = 4096


def _name_tokens(value: str) -> tuple[str, ...]:
    """`_NAME_TOKEN.findall(value)`, remembered (up to `_NAME_TOKENS_MAX` texts, then from scratch): a person's text
    recurs (four in five on the distinct name-dense events: the same names from the same lists). `refine` reads the
    words of `text[r.start:r.end]` so, the same words as `findall(text, r.start, r.end)`: the pattern reads nothing
    outside its match (no look-around, anchor or word boundary)."""
    got = _NAME_TOKENS.get(value)
    if got is None:
        if len(_NAME_TOKENS) >= _NAME_TOKENS_MAX:
            _NAME_TOKENS.clear()
        got = _NAME_TOKENS[value] = tuple(_NAME_TOKEN.findall(value))
    return got


def _firm_lists(text: str) -> list[regex.Match[str]]:
    """`list(_FIRM_LIST.finditer(text))`, searched from where the first comma before a capital allows. Every match
    holds a comma before a capital, and after it "and" or "&" before a capital (`_FIRM_LIST_NEEDS`): a text without
    the first has none, nor one without the second after the first. A match starts in the whitespace-delimited word
    holding its first comma (a name word and the comma hold no whitespace), so not before the word holding the text's
    first such comma; at that word's start the pattern's `\b` sees whitespace or the text's edge alike."""
    comma, conjunction = _FIRM_LIST_NEEDS
    first = comma.search(text)
    if first is None or conjunction.search(text, first.start()) is None:
        return []
    return list(_FIRM_LIST.finditer(text, word_start(text, first.start())))


def _whole_words(text: str, word: str) -> Iterator[tuple[int, int]]:
    """Occurrences of `word` not inside a longer word (as a regex `\\bword\\b` would find them)."""
    i = text.find(word)
    while i != -1:
        j = i + len(word)
        if (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) and (
                j == len(text) or not (text[j].isalnum() or text[j] == "_")):
            yield i, j
        i = text.find(word, i + 1)


def resolve_overlaps(results: list[Span], text: str | None = None) -> list[Span]:
    """Keep the best of overlapping results: higher score first, then longer span.

    A card number (always Luhn-valid, see `CardNumberRecognizer`) beats a phone number over the same digits,
    whatever their scores, unless `text` is given and has phone words but no card words near the digits.
    """
    cards = [r for r in results if r.entity_type == "CREDIT_CARD"]
    if cards and any(r.entity_type == "PHONE_NUMBER" for r in results):
        dropped = set()
        for card in cards:
            if text is not None and (PhoneNumberRecognizer.CONTEXT.near(text, card.start, card.end)
                                     and not CardNumberRecognizer.CONTEXT.near(text, card.start, card.end)):
                continue
            dropped |= {id(r) for r in results if r.entity_type == "PHONE_NUMBER"
                        and not (r.end <= card.start or r.start >= card.end)}
        results = [r for r in results if id(r) not in dropped]
    ranked = sorted(results, key=lambda r: (-r.score, -(r.end - r.start), r.start))
    if any(r.end <= r.start for r in results):  # empty spans (never from our recognizers): the plain way
        kept: list[Span] = []
        for r in ranked:
            if all(r.end <= k.start or r.start >= k.end for k in kept):
                kept.append(r)
        return sorted(kept, key=lambda r: r.start)
    # The kept spans never overlap, so sorted by start their ends are sorted too: a span overlaps one of
    # them exactly when the last kept span starting before its end ends after its start. O(n log n): a
    # text of 60,000 short e-mail addresses took 90 s with the pairwise check.
    starts: list[int] = []
    ends: list[int] = []
    chosen: list[Span] = []
    for r in ranked:
        i = bisect.bisect_left(starts, r.end)
        if i > 0 and ends[i - 1] > r.start:
            continue
        starts.insert(i, r.start)
        ends.insert(i, r.end)
        chosen.insert(i, r)
    return chosen
