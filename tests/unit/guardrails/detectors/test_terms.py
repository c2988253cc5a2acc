from __future__ import annotations

from llmops_guardrails.detectors.terms import TermsDetector


def test_terms_match_whole_words_case_insensitively() -> None:
    detector = TermsDetector({"competitors": (["Globex", "Initech Corp"], []), "internal": ([], [r"\bPRJ-\d{4}\b"])})
    text = "Is globex cheaper than INITECH  corp? See PRJ-1234. Globexian is not a match."
    found = [(h.kind, text[h.start:h.end], h.score) for h in detector.detect(text)]
    assert found == [("competitors", "globex", 1.0), ("competitors", "INITECH  corp", 1.0),
                     ("internal", "PRJ-1234", 1.0)]


def test_no_lists_no_hits() -> None:
    assert TermsDetector({}).detect("anything") == []
