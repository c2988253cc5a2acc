"""The local supervisor's restart policy: backoff doubling with the crashes of the last minute, and giving
up at the fifth crash within a minute (`llmops_devtools.stack.supervisor.RestartPolicy`)."""

from __future__ import annotations

from llmops_devtools.stack.supervisor import RestartPolicy


def test_backoff_doubles_with_recent_crashes_and_is_capped() -> None:
    policy = RestartPolicy(backoff_base_s=0.5, backoff_max_s=3, max_crashes=10, window_s=60)
    crashes: list[float] = []
    waits = []
    for now in (0.0, 1.0, 2.0, 3.0, 4.0, 5.0):
        crashes.append(now)
        waits.append(policy.after_crash(crashes, now))
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_the_fifth_crash_within_a_minute_gives_up() -> None:
    policy = RestartPolicy()
    assert policy.after_crash([0, 5, 10, 15], 15) == 4.0
    assert policy.after_crash([0, 5, 10, 15, 20], 20) is None


def test_crashes_older_than_the_window_are_forgotten() -> None:
    """A service that crashes now and then (not in a loop) is restarted for ever, promptly."""
    policy = RestartPolicy()
    assert policy.after_crash([0, 61, 122, 183, 244], 244) == 0.5
    assert policy.after_crash([0, 150, 160, 170, 180], 180) == 4.0  # 4 within the last minute: not given up


def test_the_environment_tunes_it() -> None:
    policy = RestartPolicy.from_env({"LLMOPS_SUPERVISOR_BACKOFF_BASE_S": "0.1", "LLMOPS_SUPERVISOR_MAX_CRASHES": "3",
                                     "LLMOPS_SUPERVISOR_WINDOW_S": "10"})
    assert policy == RestartPolicy(backoff_base_s=0.1, backoff_max_s=30, max_crashes=3, window_s=10)
