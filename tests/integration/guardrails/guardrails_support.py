"""Fresh test values the detectors must find: Luhn-valid card numbers and GitHub-style tokens."""

from __future__ import annotations

import random
import string


def luhn_card(prefix: str = "4", length: int = 16) -> str:
    """A card number that passes the Luhn check (Visa by default), fresh each call."""
    digits = [int(c) for c in prefix] + [random.randint(0, 9) for _ in range(length - len(prefix) - 1)]
    total = 0
    for i, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if i % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return "".join(map(str, [*digits, (10 - total % 10) % 10]))


def github_token() -> str:
    return "ghp_" + "".join(random.choice(string.ascii_letters + string.digits) for _ in range(36))
