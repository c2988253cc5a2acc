"""People named by cues the NER model misses."""

from __future__ import annotations

import pytest

from llmops_guardrails.detectors.pii.detector import PiiDetector
from llmops_guardrails.detectors.pii.people import PersonRecognizer
from tests.unit.guardrails.detectors.pii.pii_support import found, values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("“That's enough,” said Ingrid to Tomasz.", ["Ingrid", "Tomasz"]),
        ('Oksana: "Where were you?"', ["Oksana"]),
        ("Bertrand lives at 4 Elm Street.", ["Bertrand"]),
        ("Priya, can you send me the file?", ["Priya"]),
        ("Henrike Vogelsang\nSenior buyer\n+49 30 1234567\nhenrike@example.de", ["Henrike Vogelsang"]),
        ("Billing address: Ana Dias\n31401 Rua Nova 10\nPorto", ["Ana Dias"]),
        ("Since then, it has grown.", []),
        ("Thanks, can you help?", []),
        ("Jack London wrote The Call of the Wild.", ["Jack London"]),  # "The Call" after "wrote" is a title
        ("Support Team\nAcme Inc\n12 Main Street", []),  # an organisation word on the first line
    ],
)
def test_person_recognizer(text: str, expected: list[str]) -> None:
    assert values(PersonRecognizer().analyze(text, ["PERSON"]), text, "PERSON") == expected


def test_people_found_end_to_end(detector: PiiDetector) -> None:
    text = "Bertrand lives at 4 Elm Street, Leeds."
    assert found(detector, text) == [("PERSON", "Bertrand"), ("LOCATION", "Leeds")]


def test_contact_block_label_after_a_bullet() -> None:
    """The label is matched where the first line's content starts (it once began with "^": missed after a bullet)."""
    text = "- Billing address: Ana Dias\n31401 Rua Nova 10\nPorto"
    assert values(PersonRecognizer().analyze(text, ["PERSON"]), text, "PERSON") == ["Ana Dias"]
