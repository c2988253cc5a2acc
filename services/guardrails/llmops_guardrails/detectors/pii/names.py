"""First names and surnames: the lists Faker ships for its locales.

Faker (MIT, an installed package, nothing downloaded) holds first names and surnames for about 80 locales in
its person providers; `name_words` collects those written in Latin letters (about 37,000), `first_names` and
`surnames` the two kinds apart. `name_words` decides where the NER model looks (`ner_gate`); `first_names`
and `surnames` let `people.KnownNameRecognizer` report "first name + capitalised word" as a person.
`common_words` (Faker's English lorem list and spaCy's stop words) are the words that are names only by
accident ("Will", "May", "Hope").

Caution on the figures: presidio-research's synthetic set, on which the quality script scores, took its
people from generated name lists too (fakenamegenerator's, built from census-style lists of many
countries), so a list-based recognizer is scored partly on lists like its own; real traffic has rarer names.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

_FIRST = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary")
_LAST = ("last_names",)
_LISTS = _FIRST + _LAST


def _latin(name: str) -> bool:
    return name.isalpha() and name[0].isupper() and all(ord(c) < 0x250 for c in name)


@functools.cache
def _faker_names(attrs: tuple[str, ...]) -> frozenset[str]:
    from faker.providers import person

    out: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = getattr(importlib.import_module(f"{person.__name__}.{module.name}"), "Provider", None)
        for attr in attrs:
            names = vars(provider).get(attr) if provider is not None else None
            if isinstance(names, dict | tuple | list | set | frozenset):
                out.update(n for n in names if isinstance(n, str) and _latin(n))
    return frozenset(out)


def name_words() -> frozenset[str]:
    """Capitalised first names and surnames (one word each) of every Faker locale, in Latin letters."""
    return _faker_names(_LISTS)


@functools.cache
def common_words() -> frozenset[str]:
    """Common English words, lower case: Faker's English lorem words and spaCy's stop words."""
    from faker.providers.lorem.en_US import Provider as Lorem
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(w.lower() for w in Lorem.word_list) | frozenset(STOP_WORDS)


@functools.cache
def first_names() -> frozenset[str]:
    """Faker's first names (every locale, Latin letters) that are not also common English words."""
    common = common_words()
    return frozenset(n for n in _faker_names(_FIRST) if n.lower() not in common)


def surnames() -> frozenset[str]:
    """Faker's surnames (every locale, Latin letters)."""
    return _faker_names(_LAST)


@functools.cache
def lower_name_words() -> frozenset[str]:
    """`name_words` in lower case, less spaCy's English stop words ("my", "back", "will" stay out)."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(n.lower() for n in name_words()) - STOP_WORDS
