"""The place gazetteer and address lines."""

from __future__ import annotations

import pytest

from llmops_guardrails.detectors.pii.detector import PiiDetector
from llmops_guardrails.detectors.pii.places import PlaceRecognizer, gazetteer
from tests.unit.guardrails.detectors.pii.pii_support import found, values


def test_gazetteer_is_loaded_from_the_package_data() -> None:
    places = gazetteer()
    assert places.get("Denmark") is not None and places.get("DENMARK") is not None
    assert places.get("denmark") is None and places.get("denmark", lowercase_text=True) is not None
    assert places.get("Jordan") is not None and places.get("Jordan").ambiguous  # type: ignore[union-attr]
    assert places.get("Atlantis") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I flew from Copenhagen to South Africa.", ["Copenhagen", "South Africa"]),
        ("Our office in ZURICH is closed", ["ZURICH"]),
        ("Greetings from the Isle of Man!", ["Isle of Man"]),
        ("She moved to Jordan last year.", ["Jordan"]),  # a name that is also a person's, after a place cue
        ("Jordan called me yesterday.", []),  # ... and without one
        ("i live in new zealand now", ["new zealand"]),  # a text without capitals
        ("Ship it to 12 Harbour Road, Keswick.", ["Keswick"]),  # after a street with a number
        ("She lives at 172 Maneeži 75, Saareküla", ["Saareküla"]),
    ],
)
def test_place_recognizer(text: str, expected: list[str]) -> None:
    assert values(PlaceRecognizer().analyze(text, ["LOCATION"]), text, "LOCATION") == expected


def test_address_lines_give_the_locality_above_a_country_and_one_before_a_postal_code() -> None:
    block = "Jane Roe\n12 Harbour Road\nApt. 4\nKeswick\nNew Zealand 9012"
    assert sorted(values(PlaceRecognizer().analyze(block, ["LOCATION"]), block, "LOCATION")) == [
        "Keswick", "New Zealand"]
    nordic = "Ola Nordmann Storgata 5\nFAUSKE NO 8200"
    assert values(PlaceRecognizer().analyze(nordic, ["LOCATION"]), nordic, "LOCATION") == ["FAUSKE"]
    # a job title or a company under a name is not a locality
    card = "Jane Roe\nSenior Buyer\nAcme Inc\n12 Harbour Road"
    assert values(PlaceRecognizer().analyze(card, ["LOCATION"]), card, "LOCATION") == []


def test_region_words_stay_on_gazetteer_names(detector: PiiDetector) -> None:
    assert ("LOCATION", "South Africa") in found(detector, "We shipped it to South Africa.")
