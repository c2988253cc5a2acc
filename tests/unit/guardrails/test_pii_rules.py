"""The PII detector's own rules: card issuers and card-vs-phone overlaps, the place gazetteer and address
lines, people named by cues, the tidying of NER spans, and which texts skip the NER model."""

from __future__ import annotations

import pytest
from presidio_analyzer import RecognizerResult

from llmops_guardrails.detectors.pii import (
    PersonRecognizer,
    PiiDetector,
    PlaceRecognizer,
    gazetteer,
    needs_ner,
    refine,
    resolve_overlaps,
)
from llmops_guardrails.detectors.pii_patterns import CardNumberRecognizer, card_issuer, luhn_ok
from llmops_guardrails.engine import PolicyEngine

ENTITIES = ["PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"]


@pytest.fixture(scope="module")
def detector(engine: PolicyEngine) -> PiiDetector:
    return PiiDetector(engine.ner(), entities=ENTITIES, score_threshold=0.4,
                       phone_regions=["US", "GB", "DE", "FR", "IN", "CA", "AU"])


def found(detector: PiiDetector, text: str) -> list[tuple[str, str]]:
    return [(h.kind, text[h.start:h.end]) for h in detector.detect(text)]


def values(results: list[RecognizerResult], text: str, entity: str) -> list[str]:
    return [text[r.start:r.end] for r in results if r.entity_type == entity]


# -- cards ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "issuer"),
    [
        ("4111111111111111", "visa"),
        ("4222222222222", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223000048400011", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("3530111333300000", "jcb"),
        ("30569309025904", "diners"),
        ("6200000000000005", "unionpay"),
        ("502914177766", "maestro"),  # 12-digit Maestro, prefix 50
        ("563170669078", "maestro"),  # 56-69
        ("698124158685", "maestro"),
        ("911111111111", None),  # no issuer starts with 9
        ("411111111111", None),  # Visa is never 12 digits long
        ("34000000000", None),  # too short for anything
    ],
)
def test_card_issuer_prefixes_and_lengths(digits: str, issuer: str | None) -> None:
    assert card_issuer(digits) == issuer


@pytest.mark.parametrize(
    "text",
    [
        "Please block card 5029 1417 7766 today",  # Maestro, 12 digits in groups of four
        "my maestro 5631-7066-9078 was stolen",
        "ref 584391500082 for the refund",
        "card 4111-1111-1111-1111 expired",
        "Amex 3782 822463 10005 please",
    ],
)
def test_luhn_valid_cards_with_known_issuers_are_found(detector: PiiDetector, text: str) -> None:
    kinds = [k for k, _ in found(detector, text)]
    assert kinds == ["CREDIT_CARD"]


@pytest.mark.parametrize(
    "text",
    [
        "Please block card 5029 1417 7767 today",  # fails Luhn
        "ticket 9111 1111 1116 is open",  # Luhn-valid, but no issuer starts with 9
        "the serial is 5029 1417-7766",  # spaces and dashes mixed
        "000000000000 is not a card",
        "order 41111111111 shipped",  # 11 digits
    ],
)
def test_card_false_positives_are_avoided(detector: PiiDetector, text: str) -> None:
    assert "CREDIT_CARD" not in [k for k, _ in found(detector, text)]


def test_a_luhn_valid_maestro_number_beats_the_phone_reading_of_the_same_digits(detector: PiiDetector) -> None:
    text = "my card number is 563170669078, please cancel it"
    assert luhn_ok("563170669078")
    assert found(detector, text) == [("CREDIT_CARD", "563170669078")]
    # with only phone words around it, the phone reading stays
    call = "Call me at 630636083770 tonight"
    assert found(detector, call) == [("PHONE_NUMBER", "630636083770")]


def test_card_scores() -> None:
    card = CardNumberRecognizer()
    [long] = card.analyze("ref 4111111111111111", ["CREDIT_CARD"])
    [short] = card.analyze("ref 502914177766", ["CREDIT_CARD"])
    [with_word] = card.analyze("debit card 502914177766", ["CREDIT_CARD"])
    [unknown] = card.analyze("ref 9111 1111 1116", ["CREDIT_CARD"])
    assert (long.score, short.score, with_word.score, unknown.score) == pytest.approx((0.9, 0.6, 0.9, 0.3))


def test_resolve_overlaps_prefers_the_card_over_a_phone_number() -> None:
    text = "ref 5029 1417 7766"
    card = RecognizerResult("CREDIT_CARD", 4, 18, 0.6)
    phone = RecognizerResult("PHONE_NUMBER", 4, 18, 1.0)
    assert resolve_overlaps([phone, card], text) == [card]
    assert resolve_overlaps([phone, card]) == [card]
    assert resolve_overlaps([phone, card], "tel 5029 1417 7766") == [phone]


# -- places ----------------------------------------------------------------------------------------------


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


# -- people ----------------------------------------------------------------------------------------------


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


# -- tidying ---------------------------------------------------------------------------------------------


def _ner(entity: str, start: int, end: int) -> RecognizerResult:
    return RecognizerResult(entity, start, end, 0.85,
                            recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: "SpacyRecognizer"})


def test_refine_drops_names_inside_organisations_and_employers() -> None:
    text = "The Jones, Smith and Davis Orchestra played. I work for Hawkins now. Ask Davis Miller."
    results = [_ner("PERSON", text.index(w), text.index(w) + len(w)) for w in ("Smith", "Davis", "Hawkins")]
    assert refine(text, results) == []
    kept = refine(text, [_ner("PERSON", text.index("Davis Miller"), len(text) - 1)])
    assert [text[r.start:r.end] for r in kept] == ["Davis Miller"]


def test_refine_lets_a_ner_person_win_over_a_city_inside_it() -> None:
    text = "Jack London wrote it"
    city = PlaceRecognizer().analyze(text, ["LOCATION"])
    assert values(city, text, "LOCATION") == ["London"]
    kept = refine(text, [_ner("PERSON", 0, 11), *city])
    assert [(r.entity_type, text[r.start:r.end]) for r in kept] == [("PERSON", "Jack London")]


def test_refine_extends_places_over_particles_and_marks_later_mentions() -> None:
    text = "Dr. Amara flew to Frankfurt am Main; Amara loved it."
    place = _ner("LOCATION", 18, 27)
    person = RecognizerResult("PERSON", 4, 9, 0.9)
    kept = refine(text, [person, place])
    assert [(r.entity_type, text[r.start:r.end]) for r in kept] == [
        ("PERSON", "Amara"), ("LOCATION", "Frankfurt am Main"), ("PERSON", "Amara")]


# -- which texts skip the NER model ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needed"),
    [
        ("What are my options?", False),
        ("How do I reset my PIN? I can't log in.", False),  # acronym, the pronoun I
        ("Can I pay on Monday?", False),
        ("Please ask Margaret about it", True),
        ("my name is jo", True),  # no capitals at all: the model finds some lower-case names
        ("Dear Sir, I moved to Berlin", True),
    ],
)
def test_needs_ner(text: str, needed: bool) -> None:
    assert needs_ner(text) is needed


def test_words_the_rules_explain_do_not_need_the_model(detector: PiiDetector) -> None:
    assert not needs_ner("Dear Sir, I moved to Berlin", [(21, 27)])
    before = detector.ner.ner_calls
    assert found(detector, "My name is Margaret Thompson") == [("PERSON", "Margaret Thompson")]
    assert detector.ner.ner_calls == before  # the context rule explained every capitalised word


def test_skipping_the_model_changes_no_result(engine: PolicyEngine, detector: PiiDetector) -> None:
    texts = ["What are my options?", "My name is Margaret Thompson", "Call 415-555-0132, ask for Peter Parker.",
             "Henrike Vogelsang\nSenior buyer\n+49 30 1234567", "i live in new zealand now"]
    always = PiiDetector(engine.ner(), entities=ENTITIES, score_threshold=0.4,
                         phone_regions=["US", "GB", "DE", "FR", "IN", "CA", "AU"], skip_ner=False)
    assert detector.detect_many(texts) == always.detect_many(texts)


def test_context_enhancement_path_still_works(engine: PolicyEngine) -> None:
    enhanced = PiiDetector(engine.ner(), entities=ENTITIES, score_threshold=0.4, context_enhancement=True)
    text = "write to jane.doe@example.co.uk, card 4111 1111 1111 1111"
    assert [h.kind for h in enhanced.detect(text)] == ["EMAIL_ADDRESS", "CREDIT_CARD"]
