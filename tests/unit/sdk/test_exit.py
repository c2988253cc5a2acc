"""Events still buffered when the process exits are delivered by the exit flush, within its time bound."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from tests.unit.sdk.receiver import Receiver, free_port

# Nothing would be sent before exit: the batch never fills and the interval is long.
SCRIPT = textwrap.dedent("""
    import sys
    import llmops_sdk

    endpoint, count, ending, how = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    options = dict(endpoint=endpoint, api_key="k", app_id="exit-test", flush_interval_s=60, batch_size=1000,
                   exit_timeout_s=float(sys.argv[5]), backoff_base_s=0.05, backoff_max_s=0.2)
    if how == "default":
        llmops_sdk.configure(**options)
        record = llmops_sdk.record
    else:
        record = llmops_sdk.Recorder(**options).record  # an instance of the app's own, never closed
    for i in range(count):
        record(name=f"event-{i}")
    print("recorded", flush=True)
    if ending == "exit3":
        sys.exit(3)
    if ending == "raise":
        raise RuntimeError("the app crashed")
""")


def run(endpoint: str, count: int, ending: str, how: str, exit_timeout_s: float = 5.0
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, endpoint, str(count), ending, how, str(exit_timeout_s)],
                          capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(("ending", "how", "code"), [
    ("return", "default", 0),
    ("exit3", "default", 3),
    ("raise", "instance", 1),
])
def test_pending_events_are_delivered_at_exit(receiver: Receiver, ending: str, how: str, code: int) -> None:
    done = run(receiver.url, 500, ending, how)
    assert done.returncode == code, done.stderr
    assert "recorded" in done.stdout
    names = sorted(e["name"] for e in receiver.events())
    assert names == sorted(f"event-{i}" for i in range(500))


def test_exit_with_ingest_down_waits_no_longer_than_its_timeout() -> None:
    started = time.monotonic()
    done = run(f"http://127.0.0.1:{free_port()}", 50, "return", "default", exit_timeout_s=1.0)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert took < 8  # interpreter start-up, 1 s of trying, and some slack for a busy machine
    assert "not delivered" in done.stderr or "gave up" in done.stderr  # it says what it lost
