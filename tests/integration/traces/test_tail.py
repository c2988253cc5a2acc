"""`llmops traces tail` on the real Postgres: spans stored now, filtered by tenant, app and status, one line
each, never text; the shared `llmops` command forwards to it."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import asyncpg
import pytest

from llmops_shared.clock import utc_now
from llmops_shared.settings import CommonSettings
from llmops_traces.cli import add_arguments, run
from tests.integration.traces.traces_support import span_event, store_directly, traces_settings

pytestmark = pytest.mark.integration


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["tail", "--once", "--no-color", *argv])


async def test_tail_prints_the_spans_of_an_app_as_they_are_stored(stack: CommonSettings, pg_pool: asyncpg.Pool,
                                                                  tenant: str) -> None:
    now = utc_now()  # stored_at is the database's clock: the tail starts from the real now
    events = [span_event(tenant, at=now, app_id="on-call-app", name="answer", input="a secret prompt"),
              span_event(tenant, at=now, app_id="on-call-app", status="error",
                         error={"type": "rate_limited", "message": "slow down"},
                         metadata={"guardrails": {"findings": 1, "by_type": {"EMAIL": 1}}}),
              span_event(tenant, at=now, app_id="other-app"),
              span_event(f"{tenant}-x", at=now, app_id="on-call-app")]
    await store_directly(pg_pool, events, now=now)
    settings = traces_settings(stack)
    lines: list[str] = []
    assert await _run(run, _args("--tenant", tenant, "--app", "on-call-app"), settings, lines) == 0
    assert len(lines) == 2
    assert all("on-call-app" in line and tenant in line for line in lines)
    ok, error = sorted(lines, key=lambda line: "ERROR" in line)
    assert " ok " in ok and "answer" in ok and "secret" not in ok
    assert "ERROR" in error and "rate_limited" in error and "findings: EMAIL" in error and "slow down" not in error
    errors: list[str] = []
    await _run(run, _args("--tenant", tenant, "--status", "error"), settings, errors)
    assert len(errors) == 1

    env = {**os.environ, "LLMOPS_DATABASE_URL": stack.database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llmops_shared.cli", "traces", "tail", "--once", "--no-color", "--tenant", tenant,
        "--app", "other-app", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert len(stdout.decode().splitlines()) == 1 and "other-app" in stdout.decode()


async def _run(command: object, args: argparse.Namespace, settings: object, lines: list[str]) -> int:
    return await asyncio.to_thread(command, args, settings, out=lines.append)  # type: ignore[arg-type]
