"""Which texts need the NER model: `needs_ner` lets a text skip it when no word is left for it to name."""

from __future__ import annotations

from collections.abc import Sequence

import regex

from llmops_guardrails.detectors.pii.lexicon import OPENERS, words
from llmops_guardrails.detectors.pii.places import gazetteer

_WORD = regex.compile(r"[\p{L}\p{M}][\p{L}\p{M}'’-]*")
# Capitalised anywhere, and not names: the pronoun I, titles (the name after one is what counts), weekdays
# and months that are not also first names (dates are not personal data here).
_NEVER_NAMES = frozenset(words("""
i i'm i'll i've i'd mr mrs ms miss dr prof sir madam monday tuesday wednesday thursday friday saturday sunday
january february march july september october november december
"""))


def needs_ner(text: str, explained: Sequence[tuple[int, int]] = ()) -> bool:
    """False when no word is left for the NER model to name: the text has capital letters, and each
    capitalised word is inside an `explained` span (what the rules found with confidence), a common word
    opening a sentence (or a line, or a quote), the pronoun I, a title, a weekday or month, or an acronym of up
    to four capitals that is not a place. A text without any capital letter still goes to the model, which
    finds some lower-case names."""
    if not any(c.isupper() for c in text):
        return True
    for m in _WORD.finditer(text):
        word = m.group()
        if not word[0].isupper():
            continue
        if any(s <= m.start() and m.end() <= e for s, e in explained):
            continue
        lower = word.lower()
        if lower in _NEVER_NAMES or (word.isupper() and len(word) <= 4 and gazetteer().get(word) is None):
            continue  # I, Mr, Monday; short all-caps words are acronyms ("ZIP", "IBAN", "ASAP")
        if lower not in OPENERS:
            return True
        before = text[:m.start()].rstrip(" \t\"'“‘(")
        if before and before[-1] not in ".!?:\n":
            return True
    return False
