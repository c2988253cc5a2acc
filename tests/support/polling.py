"""Waiting in integration tests for a condition that another task or process makes true."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], Awaitable[bool] | bool], what: str, timeout_s: float = 30,
                every_s: float = 0.05) -> None:
    """Return once `condition()` (plain or awaited) is true, checking every `every_s`; fail naming `what` after
    `timeout_s`."""
    for _ in range(int(timeout_s / every_s)):
        got = condition()
        if got if isinstance(got, bool) else await got:
            return
        await asyncio.sleep(every_s)
    raise AssertionError(f"not reached: {what}")
