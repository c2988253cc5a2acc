"""`llmops guardrails policy ...` against the session's Postgres."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from llmops_guardrails import cli

pytestmark = pytest.mark.integration


async def test_policy_set_show_and_validate(pg_pool: asyncpg.Pool, tenant: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    await pg_pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("rules: [{id: pii-redact, redaction: hash}]\n")
    bad.write_text("rules: [{id: x, detector: pii, action: alert}]\n")

    assert cli.main(["policy", "validate", str(good)]) == 0
    assert cli.main(["policy", "validate", str(bad)]) == 1
    assert "rules[8](id=x): action 'alert' needs a severity" in capsys.readouterr().err
    # asyncio.run inside the command: give it a thread of its own
    assert await asyncio.to_thread(cli.main, ["policy", "set", "--tenant", tenant, str(good)]) == 0
    assert await asyncio.to_thread(cli.main, ["policy", "set", "--tenant", tenant, "--app", "bot", str(bad)]) == 1
    assert await asyncio.to_thread(cli.main, ["policy", "show", "--tenant", tenant, "--app", "bot"]) == 0
    out = capsys.readouterr().out
    assert f"stored {tenant}/* version 1" in out and "# effective policy version: t1" in out
    assert await pg_pool.fetchval("SELECT count(*) FROM guardrail_policies WHERE tenant_id = $1", tenant) == 1
