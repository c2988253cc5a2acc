"""Word lists and text patterns the place and person recognizers, the refinement and the needs-NER check share."""

from __future__ import annotations

import regex

from llmops_guardrails.detectors.keys import folded

LINE = regex.compile(r"[^\n]*")
BULLET = regex.compile(r"^[\s?•*·>–-]*")
_UNIT_OR_STREET_WORDS = (
    "apt", "apartment", "suite", "ste", "unit", "floor", "box", r"p\.?\s?o\.?", "postbox", "room", "building", "bldg",
    "street", "st", "road", "rd", "avenue", "ave", "avda", "lane", "ln", "drive", "dr", "boulevard", "blvd", "way",
    "place", "pl", "court", "ct", "square", "sq", "terrace", "highway", "hwy", "rue", "via", "calle", "avenida", "rua",
    "strasse", "straße", "str", "ul", "dpo", "apo", "fpo", "psc")
UNIT_OR_STREET = regex.compile(r"(?i)\b(?:" + "|".join(_UNIT_OR_STREET_WORDS) + r")\b\.?")
_ORG_WORDS = ("Inc", "Incorporated", "Ltd", "LLC", "LLP", "PLC", "GmbH", "AG", "SA", "NV", "BV", "Corp", "Corporation",
              "Company", "Co", "Group", "Holdings", "Partners", "Associates", "Bank", "Foundation", "University",
              "Institute", "College", "School", "Orchestra", "Band", "Quartet", "Trio", "Ensemble", "Choir", "Sons",
              "Brothers", "Industries", "Technologies", "Systems", "Solutions", "Consulting", "Services", "Agency",
              "Studios?", "Records", "Hotel", "Hospital", "Clinic", "Church", "Club", "Society", "Association",
              "Council", "Committee", "Ministry", "Department", "Office", "Airlines?", "Motors", "Pharma", "Labs?",
              "Software", "Media", "Capital", "Ventures")
ORG_WORD = "(?:" + "|".join(_ORG_WORDS) + ")"
ORG_WORD_RE = regex.compile(rf"\b{ORG_WORD}\b\.?")

# `ORG_WORD_RE`'s and `UNIT_OR_STREET`'s whole matches by a look-up (`org_word`, `street_word`: ~0.1 µs against ~0.6
# for the pattern; every capitalised word of a name run and every new word the tagger meets asks).
_ORG_WORD_SET = frozenset(w for a in _ORG_WORDS for w in ((a[:-2], a[:-1]) if a.endswith("s?") else (a,)))
_STREET_WORD_SET = frozenset(a if a.isalpha() else "po" for a in _UNIT_OR_STREET_WORDS)


def org_word(word: str) -> bool:
    """Whether `ORG_WORD_RE` matches the whole of `word`: its alternatives are words of letters, case as written (three
    with an optional final "s"), between word boundaries, so a whole match is one of them with or without one final
    "." (`_ORG_WORD_SET`)."""
    return word in _ORG_WORD_SET or (word[-1:] == "." and word[:-1] in _ORG_WORD_SET)


def street_word(word: str) -> bool:
    """Whether `UNIT_OR_STREET` matches the whole of `word`. A word of letters only (`str.isalpha`: no dot, space or
    mark) can match only as one of the alternatives read case-insensitively ("p.o." as "po"), so only a word that
    `keys.folded` reads as one of them (it reads each character an ASCII letter or "ß" matches case-insensitively as
    that letter; it may change others too, so the pattern then decides) is tried; any other word is tried as it is."""
    if word.isalpha() and folded(word) not in _STREET_WORD_SET:
        return False
    return UNIT_OR_STREET.fullmatch(word) is not None


# One capitalised word of a name ("Anna", "O’Brien", "Jean-Luc").
NAME_WORD = r"\p{Lu}[\p{L}\p{M}'’-]*[\p{L}\p{M}]"


def words(text: str) -> list[str]:
    """A word list written as one string, split on whitespace."""
    return text.split()


# Common words that open a sentence (or a line, or a quote) in chat messages: capitalised there, not names.
OPENERS = frozenset(words("""
a about actually after again all also although always am an and another any anyone anything are as at be
because been before being besides both bot but by can can't cannot could couldn't dear did didn't do does
doesn't don't during each either even every everyone everything excuse finally first for from further good
great had has hasn't have haven't he he's hello her here here's hers hey hi him his how however i if in
instead is isn't it it's its just kindly last let let's many may maybe me meanwhile might mine more most my
need neither never next no none nor not nothing now of often ok okay on once one only or other otherwise our
ours perhaps please quick quickly really she she's should shouldn't since so some someone something sometimes
soon sorry still such thank thanks that that's the their theirs them then there there's therefore these they
they're this those though thus to today tomorrow too unfortunately unless unlike until user usually very was
wasn't we we're well were weren't what what's whatever when whenever where where's whether which while who
who's whom whose why will with without won't would wouldn't yes yesterday yet you you're your yours
"""))

# Capitalised words that are first names somewhere but, standing alone in English text, rarely people.
NOT_ALONE = frozenset(words("""
monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
september october november december christmas easter american british english french german italian spanish
portuguese dutch danish swedish norwegian finnish icelandic polish czech slovak hungarian romanian bulgarian
greek turkish russian ukrainian chinese japanese korean indian brazilian mexican canadian australian irish
scottish welsh swiss austrian belgian estonian latvian lithuanian slovenian croatian serbian tunisian cypriot
african asian european christian muslim jewish catholic hindu buddhist god lord king queen prince princess
"""))
