"""Fresh test values the detectors must find: Luhn-valid card numbers and GitHub-style tokens (generated
in `llmops_devtools.testing`, which the benchmarks use too)."""

from __future__ import annotations

from llmops_devtools.testing import github_token, luhn_card

__all__ = ["github_token", "luhn_card"]
