"""The command line as a person at a terminal sees it (a pseudo-terminal: a progress bar with rate and time
left, coloured tables) and as a script sees it (pipes: plain lines, no control codes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmops_devtools.fake_openai import FakeLLMServer
from llmops_shared.settings import CommonSettings
from tests.support.terminal import LLMOPS, run_in_pty, run_piped, terminal_env

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BAR = "━"  # Rich's bar


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    path = tmp_path / "golden.jsonl"
    path.write_text("".join(json.dumps({"id": f"q-{n}", "input": f"Question {n}?", "reference": f"Answer {n}."}) + "\n"
                            for n in range(6)))
    return path


def eval_argv(golden: Path, server: FakeLLMServer) -> list[str]:
    return [*LLMOPS, "eval", "run", "--dataset", str(golden), "--model", "m", "--base-url", server.url,
            "--api-key-env", "TERMINAL_TEST_KEY", "--rubrics", "correctness@1", "--no-store"]


def test_eval_run_shows_a_bar_and_a_coloured_table_on_a_terminal_and_plain_lines_in_a_pipe(golden: Path) -> None:
    with FakeLLMServer(poll_interval_s=0.02) as server:
        server.config.json_reply = {"reasoning": "Wrong.", "score": 1}  # every item fails: the gate says FAIL
        env = terminal_env({"TERMINAL_TEST_KEY": "sk-test"})
        code, screen = run_in_pty(eval_argv(golden, server), env)
        piped = run_piped(eval_argv(golden, server), env)

    assert code == 1, screen
    assert BAR in screen and "6/6" in screen and "items/s" in screen and "eta" in screen  # the bar: count, rate, ETA
    assert re.search(r"\x1b\[[0-9;]*31m[^\x1b]*FAIL", screen), "FAIL in red"
    assert re.search(r"\x1b\[[0-9;]*mrubric", screen), "a styled header"
    assert "Traceback" not in screen

    assert piped.returncode == 1
    assert "\x1b" not in piped.stdout + piped.stderr and BAR not in piped.stderr
    items = [line for line in piped.stderr.splitlines() if line.startswith("[")]
    assert len(items) == 6 and all(re.fullmatch(r"\[\d/6\] q-\d: correctness@1=0\.00", line) for line in items), items
    table = piped.stdout.splitlines()
    header = next(line for line in table if line.startswith("rubric"))
    row = next(line for line in table if line.startswith("correctness@1"))
    assert header.index("result") == row.index("FAIL")  # aligned columns
    assert table[-1] == "REGRESSION"


def test_retention_shows_a_bar_on_a_terminal_and_plain_lines_piped(stack: CommonSettings) -> None:
    env = terminal_env()
    code, screen = run_in_pty([*LLMOPS, "retention", "--dry-run"], env)
    assert code == 0, screen
    assert BAR in screen and "tables/s" in screen
    assert re.search(r"retention\S* .*(\d+)/\1", ANSI.sub("", screen)), screen  # every step done
    piped = run_piped([*LLMOPS, "retention", "--dry-run"], env)
    assert piped.returncode == 0 and "\x1b" not in piped.stdout + piped.stderr
    assert re.search(r"^retention: (\d+)/\1 tables$", piped.stderr, re.M), piped.stderr
    assert "would drop" in piped.stdout


def test_a_failing_command_is_one_line_with_the_fix_and_no_traceback(stack: CommonSettings) -> None:
    env = terminal_env({"LLMOPS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"})
    done = run_piped([*LLMOPS, "keys", "list"], env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("llmops keys: error: cannot connect") and "(fix: " in done.stderr
    code, screen = run_in_pty([*LLMOPS, "keys", "list"], env)
    assert code == 1 and "Traceback" not in screen and "(fix: " in screen
