"""The command line's output helpers: plain tables and progress lines in a pipe, one-line errors, profiles,
and that `llmops --help` imports nothing heavy (start-up stays fast)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from llmops_shared import cli
from llmops_shared.profile import load_profile
from llmops_shared.terminal import (
    ArgumentParser,
    CliError,
    Column,
    describe,
    guard,
    plain_table,
    print_table,
    progress,
    to_json,
)

HEAVY = ("fastapi", "starlette", "uvicorn", "asyncpg", "aiokafka", "redis", "httpx", "rich", "presidio_analyzer",
         "spacy", "openai", "llmops_guardrails", "llmops_billing", "llmops_evaluator", "llmops_traces")


def test_llmops_help_and_the_cli_module_import_nothing_heavy() -> None:
    probe = ("import sys\nfrom llmops_shared import cli\n"
             "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert "alerts" in done.stdout and "usage" in done.stdout
    assert done.stderr.strip() == "", f"`llmops --help` imported {done.stderr.strip()}"


def test_a_table_in_a_pipe_is_aligned_and_has_no_control_codes() -> None:
    out = io.StringIO()
    print_table([Column("model"), Column("events", right=True), Column("result")],
                [["gpt-4o-mini", "1,024", ("ok", "green")], ["o1", "7", ("FAIL: below 1.0", "red")]], out=out)
    assert out.getvalue() == ("model        events  result\n"
                              "gpt-4o-mini   1,024  ok\n"
                              "o1                7  FAIL: below 1.0\n")
    assert plain_table([Column("a")], []) == "a"


def test_progress_in_a_pipe_is_plain_lines_a_tenth_of_the_way_apart_or_the_jobs_own() -> None:
    err = io.StringIO()
    with progress("reprice", 100, unit="rows", err=err) as bar:
        for _ in range(25):
            bar.advance(4)
        bar.advance(0, "a line of the job's own")
    lines = err.getvalue().splitlines()
    assert lines == [f"reprice: {n}/100 rows" for n in (12, 20, 32, 40, 52, 60, 72, 80, 92, 100)] + [
        "a line of the job's own"]  # a line as each tenth is passed, then the job's own
    assert "\x1b" not in err.getvalue()
    unknown = io.StringIO()
    with progress("import", None, err=unknown) as bar:
        bar.advance(2)
    assert unknown.getvalue() == "import: 2 items\n"


def test_errors_are_one_line_with_the_fix_and_never_a_traceback() -> None:
    err = io.StringIO()

    def boom() -> int:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

    assert guard("llmops keys", boom, err=err) == 1
    line = err.getvalue()
    assert line.count("\n") == 1 and "Traceback" not in line
    assert line.startswith("llmops keys: error: cannot connect") and "(fix: is the stack running?" in line

    class UndefinedTableError(Exception):
        pass

    assert describe(UndefinedTableError('relation "api_keys" does not exist')).fix == "run `llmops migrate`"
    usage = CliError("--limit 0: want 1 to 500", fix="--limit 500 at most", code=2)
    err = io.StringIO()
    assert guard("llmops alerts", lambda: (_ for _ in ()).throw(usage), err=err) == 2
    assert err.getvalue() == "llmops alerts: error: --limit 0: want 1 to 500 (fix: --limit 500 at most)\n"


def test_a_usage_error_is_one_line_naming_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["keys", "create", "--tenant", "acme"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == ("llmops keys create: error: the following arguments are required: --scopes "
                   "(fix: see `llmops keys create --help`)\n")
    assert isinstance(cli.build_parser()[0], ArgumentParser)


def test_json_output_carries_decimals_ids_and_times_as_strings() -> None:
    import uuid
    from datetime import UTC, datetime

    value = {"cost": Decimal("0.004"), "id": uuid.UUID(int=1), "at": datetime(2026, 12, 1, tzinfo=UTC)}
    schema = {"type": "object", "required": ["cost", "id", "at"], "additionalProperties": False,
              "properties": {"cost": {"type": "string", "pattern": r"^\d+\.\d+$"}, "id": {"type": "string"},
                             "at": {"type": "string"}}}
    import json

    document = json.loads(to_json(value))
    jsonschema.validate(document, schema)
    assert document["at"] == "2026-12-01T00:00:00+00:00"


def test_a_profile_gives_urls_and_key_and_the_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "profile.toml"
    path.write_text('[default]\napi_key = "k-file"\nbilling_url = "http://billing:1/"\n'
                    '[prod]\nguardrails_url = "https://g.example"\n')
    os.chmod(path, 0o600)
    env = {"LLMOPS_PROFILE_FILE": str(path)}
    p = load_profile(env=env)
    assert (p.api_key, p.url("billing"), p.url("guardrails")) == ("k-file", "http://billing:1", "http://127.0.0.1:8081")
    assert load_profile(env={**env, "LLMOPS_API_KEY": "k-env"}).api_key == "k-env"
    assert load_profile("prod", env=env).url("guardrails") == "https://g.example"
    assert load_profile(env={**env, "LLMOPS_PROFILE": "prod"}).api_key is None
    with pytest.raises(CliError, match=r"no profile \[staging\]"):
        load_profile("staging", env=env)
    os.chmod(path, 0o644)
    with pytest.raises(CliError) as readable:
        load_profile(env=env)
    assert readable.value.fix == f"chmod 600 {path}"
    path.write_text('[default]\napi-key = "x"\n')
    with pytest.raises(CliError, match="unknown field"):
        load_profile(env=env)
    assert load_profile(env={"LLMOPS_PROFILE_FILE": str(tmp_path / "none.toml")}).api_key is None


def test_the_alerts_commands_without_a_key_say_how_to_set_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("LLMOPS_API_KEY", raising=False)
    monkeypatch.setenv("LLMOPS_PROFILE_FILE", str(tmp_path / "absent.toml"))
    assert cli.main(["alerts", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no API key for the guardrails API" in err and "LLMOPS_API_KEY" in err
    assert cli.main(["usage", "--by", "colour"]) == 2
    assert "--by colour: not a grouping" in capsys.readouterr().err
