"""Banned terms and topics: named lists of words/phrases (whole-word, case-insensitive) and regexes.

Each match is a hit whose kind is the list's name, score 1.0: a listed term is there or it is not. The
words are escaped into one alternation (no backtracking hazard, so Python's `re`); the tenant's own
regexes run on RE2, in linear time (`llmops_guardrails.tenant_patterns`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from llmops_guardrails.findings import Detector, Hit
from llmops_guardrails.tenant_patterns import TenantPattern, compile_pattern


class TermsDetector:
    detector = Detector.TERMS

    def __init__(self, lists: Mapping[str, tuple[Sequence[str], Sequence[str]]]) -> None:
        """`lists`: name -> (terms, regex patterns)."""
        self.patterns: list[tuple[str, re.Pattern[str] | TenantPattern]] = []
        for name, (terms, patterns) in lists.items():
            words = sorted({t.strip() for t in terms if t.strip()}, key=len, reverse=True)
            if words:
                alternation = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words)
                self.patterns.append((name, re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)))
            for pattern in patterns:
                self.patterns.append((name, compile_pattern(pattern, ignore_case=True)))

    def detect(self, text: str) -> list[Hit]:
        hits = []
        for name, pattern in self.patterns:
            for m in pattern.finditer(text):
                if m.end() > m.start():
                    hits.append(Hit(Detector.TERMS, name, m.start(), m.end(), 1.0))
        return sorted(hits, key=lambda h: (h.start, h.end))
