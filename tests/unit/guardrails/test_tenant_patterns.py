"""Tenant-written patterns run in linear time: a catastrophic-backtracking pattern on a long text is a
plain, quick miss (under Python's `re` the same search would run for minutes)."""

from __future__ import annotations

import pytest

from llmops_guardrails.detectors.terms import TermsDetector
from llmops_guardrails.tenant_patterns import MAX_PATTERN_CHARS, PatternRefused, compile_pattern

EVIL = r"(a+)+$"
TEXT = "a" * 500_000 + "!"  # the shape that makes a backtracking engine try 2**n ways


def test_a_catastrophic_pattern_is_a_plain_miss_on_a_long_text() -> None:
    assert compile_pattern(EVIL).search(TEXT) is None  # returns at all: linear time (re would not, here)


def test_the_terms_detector_runs_tenant_patterns_linearly_and_case_insensitively() -> None:
    detector = TermsDetector({"evil": ((), (EVIL,)), "codes": (("Project X",), (r"PRJ-\d{4}",))})
    assert detector.detect(TEXT) == []
    hits = detector.detect("ask about project x and prj-1234 today, ünïcode first")
    assert [(h.kind, h.start, h.end) for h in hits] == [("codes", 10, 19), ("codes", 24, 32)]


def test_what_linear_time_cannot_do_is_refused_with_the_reason() -> None:
    for pattern in (r"(\w)\1", r"(?<=a)b", r"(?!x)y"):
        with pytest.raises(PatternRefused, match="linear time or is invalid"):
            compile_pattern(pattern)
    with pytest.raises(PatternRefused, match=f"the limit is {MAX_PATTERN_CHARS}"):
        compile_pattern("a" * (MAX_PATTERN_CHARS + 1))


def test_fullmatch_keeps_its_meaning_for_rule_values() -> None:
    pattern = compile_pattern(r"\d{3}-\d{2}-\d{4}")
    assert pattern.fullmatch("123-45-6789") is not None and pattern.fullmatch("x123-45-6789") is None
