"""`llmops prompts push | pull | diff` against the real API: files become versions, unchanged files none."""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from llmops_prompts.api import create_app
from llmops_prompts.cli import add_arguments, run
from llmops_shared import apikeys
from llmops_shared.settings import CommonSettings
from tests.integration.prompts.test_prompts_api import prompts_settings
from tests.support.servers import serve

pytestmark = pytest.mark.integration


async def test_push_pull_and_diff(stack: CommonSettings, pg_pool: asyncpg.Pool, tmp_path: Path) -> None:
    tenant = f"pc-{uuid.uuid4().hex[:8]}"
    key = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["prompts:read", "prompts:write"])).secret
    settings = prompts_settings(stack)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    repo, pulled = tmp_path / "prompts", tmp_path / "pulled"
    repo.mkdir()
    (repo / "greet.prompt.json").write_text(json.dumps({"type": "text", "template": "Hi {{ name }}",
                                                        "config": {"model": "gpt-4o-mini"}}))
    (repo / "triage.prompt.json").write_text(json.dumps({"type": "chat", "template": [
        {"role": "system", "content": "Triage for {{ team }}"}]}))
    (repo / "notes.txt").write_text("not a prompt")
    auth = {"Authorization": f"Bearer {key}"}
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, headers=auth) as http:
        def cli(*argv: str) -> tuple[int, list[str]]:
            lines: list[str] = []
            code = run(parser.parse_args(argv), settings, client=http, out=lines.append)
            return code, lines

        assert cli("push", str(repo), "--label", "production", "--message", "first") == (
            0, ["greet: version 1", "triage: version 1"])
        assert cli("push", str(repo)) == (0, ["greet: unchanged (version 1)", "triage: unchanged (version 1)"])
        assert cli("diff", str(repo)) == (0, ["0 prompt(s) differ"])
        (repo / "greet.prompt.json").write_text(json.dumps({"type": "text", "template": "Hello {{ name }}",
                                                            "config": {"model": "gpt-4o-mini"}}))
        code, lines = cli("diff", str(repo))
        assert code == 1 and '-  "template": "Hi {{ name }}"' in lines[0]
        assert '+  "template": "Hello {{ name }}"' in lines[0]
        assert cli("push", str(repo), "--label", "staging") == (0, ["greet: version 2",
                                                                    "triage: unchanged (version 1)"])
        assert cli("pull", str(pulled)) == (0, ["greet: written", "triage: written"])
        assert json.loads((pulled / "greet.prompt.json").read_text())["template"] == "Hi {{ name }}"  # production
        assert cli("pull", str(pulled), "--label", "staging")[0] == 0
        assert json.loads((pulled / "greet.prompt.json").read_text())["template"] == "Hello {{ name }}"
        assert cli("push", str(pulled)) == (0, ["greet: unchanged (version 2)", "triage: unchanged (version 1)"])
        (repo / "bad.prompt.json").write_text('{"type": "image"}')
        code, lines = cli("push", str(repo))
        assert code == 2 and "bad.prompt.json" in lines[-1]
