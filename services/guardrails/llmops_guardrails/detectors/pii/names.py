"""First names and surnames, for the needs-NER check (`ner_gate`): the lists Faker ships for its locales.

Faker (MIT, an installed package, nothing downloaded) holds first names and surnames for about 80 locales in
its person providers; `name_words` collects those written in Latin letters (about 37,000). They only decide
where the NER model looks: no word is reported as a name because it is on a list. (presidio-research's
synthetic set, on which the quality script scores, was itself generated with Faker: a recognizer built on
these lists would be scored on its own data.)
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

_LISTS = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary", "last_names")


def _latin(name: str) -> bool:
    return name.isalpha() and name[0].isupper() and all(ord(c) < 0x250 for c in name)


@functools.cache
def name_words() -> frozenset[str]:
    """Capitalised first names and surnames (one word each) of every Faker locale, in Latin letters."""
    from faker.providers import person

    out: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = getattr(importlib.import_module(f"{person.__name__}.{module.name}"), "Provider", None)
        for attr in _LISTS:
            names = vars(provider).get(attr) if provider is not None else None
            if isinstance(names, dict | tuple | list | set | frozenset):
                out.update(n for n in names if isinstance(n, str) and _latin(n))
    return frozenset(out)


@functools.cache
def lower_name_words() -> frozenset[str]:
    """`name_words` in lower case, less spaCy's English stop words ("my", "back", "will" stay out)."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(n.lower() for n in name_words()) - STOP_WORDS
