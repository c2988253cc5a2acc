"""People from name lists and name shapes (`people.KnownNameRecognizer`), and the lists behind them."""

from __future__ import annotations

import pytest

from llmops_guardrails.detectors.pii.detector import PiiDetector
from llmops_guardrails.detectors.pii.names import common_words, first_names, surnames
from llmops_guardrails.detectors.pii.people import KnownNameRecognizer
from tests.unit.guardrails.detectors.pii.pii_support import found


def test_first_names_leave_out_common_words() -> None:
    assert {"Anna", "Gladys", "Homero"} <= first_names()
    assert "Will" not in first_names() and "May" not in first_names()  # names, but mostly words
    assert "will" in common_words() and "Portillo" in surnames()


def _people(text: str) -> list[tuple[str, float]]:
    return [(text[r.start:r.end], r.score) for r in KnownNameRecognizer().analyze(text, ["PERSON"])]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a known first name and the capitalised words after it (0.89 when one of them is a known surname)
        ("A great song made even greater by a mandolin coda (not by Elle Sandström).", [("Elle Sandström", 0.89)]),
        ("Have you been to a Homero Portillo concert before?", [("Homero Portillo", 0.89)]),  # a known surname
        # the name ends at a possessive, and before an organisation word
        ("They sang about Emmie Ström's Cautionary Tales.", [("Emmie Ström", 0.89)]),
        ("Ask Anna Berg Bank about it.", [("Anna Berg", 0.89)]),
        # two words around a middle initial, listed or not
        ("Have you been to a Ravil G Yefimov concert before?", [("Ravil G Yefimov", 0.89)]),
        # words that are also names ("Will", "May", "Sunday") are not first names here
        ("Will Power and May Day are here.", []),
        ("I met Gladys yesterday, on Sunday.", [("Gladys", 0.6)]),  # a lone known first name: low score
        ("Gladys called.", []),  # ... but not as a sentence's first word
        # capitalised runs: after leading common words and possessives, two or three words
        ("Is Alpatu Shervashidze coming?", [("Alpatu Shervashidze", 0.5)]),
        ("and Consumer Reports's Impi Nummelin", [("Impi Nummelin", 0.5)]),
        ("Your Credit Card Statement is ready.", []),  # common words
        ("He works at Ngap Incorporated now.", []),  # an organisation word
        ("Ship it to VILLA NOVA today", []),  # capitals
        # in a text without capital letters: a known first name and a known surname
        ("naomi ryan\nsewer pipe cleaner", [("naomi ryan", 0.86)]),
        ("the main road is open", []),
    ],
)
def test_known_name_recognizer(text: str, expected: list[tuple[str, float]]) -> None:
    assert _people(text) == expected


def test_known_names_end_to_end(detector: PiiDetector) -> None:
    """The small NER model calls these names places (or misses them); the lists and shapes win."""
    text = "A great song made even greater by a mandolin coda (not by Elle Sandström)."
    assert found(detector, text) == [("PERSON", "Elle Sandström")]
    text = "Have you been to a Ravil G Yefimov concert before?"
    assert found(detector, text) == [("PERSON", "Ravil G Yefimov")]
