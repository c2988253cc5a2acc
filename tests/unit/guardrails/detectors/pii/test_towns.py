"""Towns of the GeoNames list (`data/towns.txt`) after a place cue or before a country."""

from __future__ import annotations

import pytest

from llmops_guardrails.detectors.pii.detector import PiiDetector
from llmops_guardrails.detectors.pii.places import PlaceRecognizer, Towns, towns
from tests.unit.guardrails.detectors.pii.pii_support import found, values


def test_towns_are_looked_up_as_written_or_in_capitals() -> None:
    listed = Towns.parse("# header\nLappeenranta\nVillafranca del Cid\n")
    assert listed.get("Lappeenranta") == "Lappeenranta" and listed.get("LAPPEENRANTA") == "Lappeenranta"
    assert listed.get("lappeenranta") is None and listed.get("lappeenranta", lowercase_text=True) == "Lappeenranta"
    assert listed.get("Villafranca Del Cid") is None  # neither as written nor in capitals
    assert towns().get("Harstad") is not None  # the shipped list
    assert towns().get("Copenhagen") is None  # the hand-written gazetteer's names are not repeated


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm in HARSTAD, at the conference", ["HARSTAD"]),
        ("The title refers to a street in Villafranca del Cid. It was there.", ["Villafranca del Cid"]),
        ("We met in Lappeenranta, Finland.", ["Finland", "Lappeenranta"]),
        ("Office: LAPPEENRANTA, Finland", ["Finland", "LAPPEENRANTA"]),  # before a country, no cue
        ("said Gladys to Logan", []),  # a town that is also a first name or surname
        ("We went from Faina D. Yefremova to here", []),  # more capitalised words follow: not the town alone
        ("mr. elliott flew to novo mesto on friday", ["novo mesto"]),  # lower case, in a lower-case text
        ("selma is from stillwater supercomputing inc.", []),  # a firm's name
    ],
)
def test_towns_after_a_cue_or_before_a_country(text: str, expected: list[str]) -> None:
    assert values(PlaceRecognizer().analyze(text, ["LOCATION"]), text, "LOCATION") == expected


def test_towns_end_to_end(detector: PiiDetector) -> None:
    assert found(detector, "I'm in HARSTAD, at the conference") == [("LOCATION", "HARSTAD")]
