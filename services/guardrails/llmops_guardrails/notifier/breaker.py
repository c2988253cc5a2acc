"""A circuit breaker per channel: stop calling an endpoint that keeps failing, probe it now and then.

closed -> (`failures` failed attempts in a row) -> open -> (`cooldown_s` later) -> half-open: one attempt,
the probe, may go -> closed if it succeeds, open again (for another cool-down) if it fails. While it is
open, the channel's deliveries are parked at once, due when the probe may go, instead of each waiting
through its own attempts. Pure: the clock is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, *, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = max(1, failures)
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.state: State = "closed"
        self.in_a_row = 0
        self.opened_at = 0.0

    def allow(self) -> bool:
        """May an attempt go now? In half-open state only the one probe may, until its outcome is recorded."""
        if self.state == "closed":
            return True
        if self.state == "open" and self.clock() >= self.opened_at + self.cooldown_s:
            self.state = "half_open"
            return True
        return False

    def record(self, ok: bool) -> bool:
        """The outcome of an attempt. True when this failure opened the breaker."""
        if ok:
            self.state, self.in_a_row = "closed", 0
            return False
        self.in_a_row += 1
        if self.state == "half_open" or (self.state == "closed" and self.in_a_row >= self.failures):
            self.state, self.opened_at = "open", self.clock()
            return True
        return False

    def wait_s(self) -> float:
        """Seconds until the probe may go (0 unless open)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self.opened_at + self.cooldown_s - self.clock())

    def reset(self) -> None:
        """The channel changed (a new URL or key): start afresh."""
        self.state, self.in_a_row = "closed", 0
