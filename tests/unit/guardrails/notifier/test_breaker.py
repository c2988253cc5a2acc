"""The circuit breaker of a channel: closed -> open after N failures in a row -> one probe after the cool-down."""

from __future__ import annotations

from llmops_guardrails.notifier.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_after_failures_in_a_row_and_lets_one_probe_through_after_the_cool_down() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown_s=30, clock=clock)
    for _ in range(2):
        assert breaker.allow() and not breaker.record(False)
    assert breaker.allow() and breaker.record(True) is False  # a success resets the count
    for _ in range(2):
        assert breaker.allow() and not breaker.record(False)
    assert breaker.allow() and breaker.record(False)  # the third in a row opens it
    assert (breaker.state, breaker.wait_s()) == ("open", 30)
    clock.now += 10
    assert not breaker.allow() and breaker.wait_s() == 20
    clock.now += 20
    assert breaker.allow() and breaker.state == "half_open"
    assert not breaker.allow()  # one probe at a time
    assert breaker.record(False) and breaker.state == "open" and breaker.wait_s() == 30  # failed probe: open again
    clock.now += 30
    assert breaker.allow()
    assert not breaker.record(True) and breaker.state == "closed" and breaker.allow()


def test_a_changed_channel_starts_afresh() -> None:
    breaker = CircuitBreaker(failures=1, cooldown_s=30, clock=Clock())
    assert breaker.record(False) and not breaker.allow()
    breaker.reset()
    assert breaker.allow() and breaker.wait_s() == 0
