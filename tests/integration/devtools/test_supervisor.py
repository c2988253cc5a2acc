"""`llmops up` supervises what it starts: a SIGKILLed service runs again within seconds, its restart counted
in `llmops status`; a crash loop is given up on, loudly, until `llmops up` again.

On a run directory and API ports of the test's own (`LLMOPS_STACK_DIR`, `LLMOPS_*_PORT`): the shared
stack's services are never touched. Kafka, Postgres and Redis are the shared ones, found listening and
used as they are (this session's database); `llmops down` on the test's run directory stops only what that
directory's supervisor started.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops_devtools.testing import free_port
from llmops_shared.settings import CommonSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LLMOPS = str(Path(sys.executable).parent / "llmops")


@pytest.fixture
def run_env(stack: CommonSettings, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**os.environ, "LLMOPS_STACK_DIR": str(tmp_path / "stack"), "LLMOPS_DATABASE_URL": stack.database_url,
           "LLMOPS_FAKE_LLM_PORT": str(free_port()), "LLMOPS_INGEST_PORT": str(free_port()),
           "LLMOPS_SUPERVISOR_BACKOFF_BASE_S": "0.2"}
    yield env
    down = llmops(env, "down", "--mode", "native")
    assert "supervisor: stopped" in down, down


def llmops(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([LLMOPS, *args], env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def status(env: dict[str, str]) -> dict[str, str]:
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in llmops(env, "status").splitlines()
                if line.strip())


def pid_of(env: dict[str, str], name: str) -> int:
    return int((Path(env["LLMOPS_STACK_DIR"]) / "services" / f"{name}.pid").read_text())


def wait_until(condition, timeout_s: float = 60) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return bool(condition())


def test_a_killed_service_runs_again_and_its_restart_is_counted(run_env: dict[str, str]) -> None:
    out = llmops(run_env, "up", "--mode", "native", "--services", "fake-llm,ingest-api")
    assert "ingest-api: started on port" in out and "supervised" in out, out
    before = status(run_env)
    assert before["supervisor"] == "running"
    assert re.fullmatch(r"running \(pid \d+, restarts 0\)", before["ingest-api"]), before
    first = pid_of(run_env, "ingest-api")

    os.kill(first, signal.SIGKILL)
    assert wait_until(lambda: status(run_env)["ingest-api"].endswith("restarts 1)")), status(run_env)
    after = status(run_env)["ingest-api"]
    assert after.startswith("running (pid ") and f"pid {first}," not in after
    second = pid_of(run_env, "ingest-api")
    assert second != first and os.path.exists(f"/proc/{second}")
    assert status(run_env)["fake-llm"].endswith("restarts 0)")  # the others untouched

    again = llmops(run_env, "up", "--mode", "native", "--services", "fake-llm,ingest-api")  # idempotent
    assert "ingest-api: running" in again and pid_of(run_env, "ingest-api") == second


def test_a_crash_loop_is_given_up_on_loudly_until_up_again(run_env: dict[str, str]) -> None:
    llmops(run_env, "up", "--mode", "native", "--services", "fake-llm")
    home = Path(run_env["LLMOPS_STACK_DIR"]) / "services"
    for crash in range(5):  # the fifth crash within a minute is the last
        pid = pid_of(run_env, "fake-llm")
        os.kill(pid, signal.SIGKILL)
        if crash < 4:
            assert wait_until(lambda p=pid: (home / "fake-llm.pid").exists() and pid_of(run_env, "fake-llm") != p
                              and status(run_env)["fake-llm"].startswith("running")), status(run_env)
    assert wait_until(lambda: status(run_env)["fake-llm"].startswith("FAILED"))
    failed = status(run_env)["fake-llm"]
    assert "gave up after 5 crashes within 60.0 s" in failed and "restarts 4" in failed, failed
    assert "fake-llm: GAVE UP after 5 crashes" in (home / "supervisor.log").read_text()
    assert not (home / "fake-llm.pid").exists()

    llmops(run_env, "up", "--mode", "native", "--services", "fake-llm")
    assert status(run_env)["fake-llm"].startswith("running (pid ")
