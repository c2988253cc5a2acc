"""Regular expressions that tenants write (term-list `patterns`, rule `values`), run in linear time.

Python's `re` backtracks: a tenant's `(a+)+$` on a 500,000-character text would hold the policy engine
for minutes, for every tenant. Tenant patterns are compiled with RE2 (Google's linear-time engine,
`google-re2` on PyPI): matching time grows with the text, never exponentially. RE2 refuses what it cannot
run in linear time (backreferences, lookaround), and the size of a pattern and of its compiled program
are bounded, so a refused pattern is a validation error naming it, before the policy is stored.
The suite's own patterns (detectors, the escaped term lists) are written by us and stay on `re`.
"""

from __future__ import annotations

from typing import Any

import re2

MAX_PATTERN_CHARS = 1_000
MAX_PROGRAM_BYTES = 4 << 20


class PatternRefused(ValueError):
    """A tenant pattern that is too long, invalid, or needs what a linear-time engine cannot do."""


TenantPattern = Any  # re2's compiled pattern: search, fullmatch, finditer with `re`'s meaning


def compile_pattern(pattern: str, *, ignore_case: bool = False) -> TenantPattern:
    """The pattern compiled for linear-time matching, or `PatternRefused` saying why."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternRefused(f"pattern is {len(pattern)} characters; the limit is {MAX_PATTERN_CHARS}")
    options = re2.Options()
    options.max_mem = MAX_PROGRAM_BYTES
    options.case_sensitive = not ignore_case
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        raise PatternRefused(f"pattern {pattern!r} cannot run in linear time or is invalid: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    text = exc.args[0] if exc.args else str(exc)
    return text.decode(errors="replace") if isinstance(text, bytes) else str(text)
