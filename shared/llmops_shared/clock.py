"""The wall clock, as a value that can be replaced: services take a `Clock`, tests pass a fixed one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def fixed(at: datetime) -> Clock:
    """A clock that always says `at` (tests)."""
    return lambda: at
