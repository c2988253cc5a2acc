"""`llmops eval run` end to end: a small golden dataset, a baseline run, a regression that exits 1, JUnit XML.

The target model and the judge are both the local OpenAI-compatible test server; runs are stored in the
session's Postgres database (LLMOPS_DATABASE_URL, set by the `stack` fixture).
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from llmops_devtools.fake_openai import FakeLLMServer
from llmops_evaluator import cli
from llmops_shared import cli as llmops_cli
from llmops_shared.settings import CommonSettings

pytestmark = pytest.mark.integration

KEY_ENV = "EVAL_CLI_TEST_KEY"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    with FakeLLMServer(poll_interval_s=0.02) as fake:
        fake.config.json_reply = {"reasoning": "Agrees with the reference.", "score": 5}
        yield fake


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "golden.jsonl"
    lines = ["# refunds and plans", ""]
    for n in range(5):
        lines.append(json.dumps({"id": f"q-{n}", "input": f"Question {n}: how do refunds work?",
                                 "reference": f"Refunds within 30 days ({n}).", "metadata": {"topic": "refunds"}}))
    lines.append(json.dumps({"id": "chat-1", "input": [{"role": "system", "content": "Be brief."},
                                                       {"role": "user", "content": "Which plan has SSO?"}],
                             "reference": "The Team plan.", "context": ["Team plan: SSO, audit logs."]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def base_args(dataset: Path, server: FakeLLMServer, tenant: str) -> list[str]:
    return ["run", "--dataset", str(dataset), "--model", "app-model", "--base-url", server.url,
            "--api-key-env", KEY_ENV, "--judge-model", "judge-model", "--rubrics", "correctness@1,relevance@1",
            "--threshold", "correctness@1=0.75", "--min-pass-rate", "0.8", "--max-drop", "0.1",
            "--tenant", tenant]


@pytest.mark.filterwarnings("ignore:'llmops_evaluator.cli' found in sys.modules:RuntimeWarning")
async def test_a_baseline_then_a_regression_that_exits_1_with_junit_xml(
        *, stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, server: FakeLLMServer, dataset: Path,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junit = tmp_path / "baseline.xml"
    saved = tmp_path / "baseline.json"
    # The baseline, through the suite's own command line (`llmops eval run ...`).
    code = await asyncio.to_thread(llmops_cli.main, ["eval", *base_args(dataset, server, tenant),
                                                     "--junit", str(junit), "--output", str(saved)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "PASSED" in captured.out and "correctness@1" in captured.out
    assert "[6/6]" in captured.err  # progress, one line per item
    baseline_id = json.loads(saved.read_text())["run_id"]
    run = await pg_pool.fetchrow("SELECT * FROM eval_runs WHERE run_id = $1", uuid.UUID(baseline_id))
    assert (run["tenant_id"], run["status"], run["dataset"], run["target_model"], run["judge_model"]) == \
        (tenant, "passed", "golden", "app-model", "judge-model")
    assert run["summary"] and json.loads(run["summary"])["correctness@1"]["pass_rate"] == 1.0
    items = await pg_pool.fetch("SELECT * FROM eval_run_items WHERE run_id = $1", uuid.UUID(baseline_id))
    assert len(items) == 12 and {i["status"] for i in items} == {"ok"} and all(i["passed"] for i in items)
    suites = ET.parse(junit).getroot()  # noqa: S314 - our own output
    assert (suites.get("tests"), suites.get("failures"), suites.get("errors")) == ("14", "0", "0")  # 12 + 2 gates

    # The model gets worse: the judge now scores 2 of 5 (normalised 0.25) -> every item fails.
    server.config.json_reply = {"reasoning": "Contradicts the reference.", "score": 2}
    junit2 = tmp_path / "regression.xml"
    code, out, err = await asyncio.to_thread(run_cli, [*base_args(dataset, server, tenant), "--baseline", baseline_id,
                                                       "--junit", str(junit2)])
    assert code == 1, err
    assert f"against baseline {baseline_id}" in out and "REGRESSION" in out
    assert "FAIL: pass rate 0.0% is below the minimum 80.0%" in out
    assert "fell by 100.0%" in out and "-100.0%" in out
    assert "regressed on correctness@1 (passed in the baseline, not now): chat-1, q-0" in out
    regression = await pg_pool.fetchrow(
        "SELECT * FROM eval_runs WHERE tenant_id = $1 AND run_id <> $2", tenant, uuid.UUID(baseline_id))
    assert (regression["status"], str(regression["baseline_run_id"])) == ("failed", baseline_id)
    root = ET.parse(junit2).getroot()  # noqa: S314 - our own output
    assert (root.get("tests"), root.get("failures")) == ("14", "14")
    gate = root.find("./testsuite[@name='correctness@1']/testcase[@name='gate']/failure")
    assert gate is not None and "fell by 100.0%" in (gate.get("message") or "")
    case = root.find("./testsuite[@name='relevance@1']/testcase[@name='q-3']/failure")
    assert case is not None and case.text == "Contradicts the reference."

    # Fixed again: `--baseline latest` is the last run that passed, i.e. the first one.
    server.config.json_reply = {"reasoning": "Agrees.", "score": 5}
    code, out, _ = await asyncio.to_thread(run_cli, [*base_args(dataset, server, tenant), "--baseline", "latest"])
    assert code == 0 and f"against baseline {baseline_id}" in out
    # A run saved as JSON serves as a baseline without the database.
    code, out, _ = await asyncio.to_thread(run_cli, [*base_args(dataset, server, tenant)[:-2], "--no-store",
                                                     "--baseline", str(saved)])
    assert code == 0 and f"against baseline {baseline_id}" in out
    assert await pg_pool.fetchval("SELECT count(*) FROM eval_runs WHERE tenant_id = $1", tenant) == 3


async def test_a_run_that_cannot_be_made_exits_2_and_says_why(
        *, stack: CommonSettings, tenant: str, server: FakeLLMServer, dataset: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "input": "x"}\n{"id": "a", "input": "y"}\n{"input": "z"}\nnot json\n')
    cases = [
        ([*base_args(bad, server, tenant)], "line 2: id 'a' is already used on line 1"),
        ([*base_args(dataset, server, tenant), "--baseline", str(uuid.uuid4())], "no such run for tenant"),
        ([*base_args(dataset, server, tenant), "--threshold", "correctness@1"], "want RUBRIC=NUMBER"),
        ([*base_args(dataset, server, tenant), "--rubrics", "nope@1"], "unknown"),
        ([*base_args(dataset, server, tenant)[:-2]], "--tenant is required"),
        (["run", "--dataset", str(dataset)], "--model and --base-url required"),
        ([*base_args(tmp_path / "missing.jsonl", server, tenant)], "missing.jsonl"),
    ]
    for argv, message in cases:
        code, _, err = await asyncio.to_thread(run_cli, argv)
        assert (code, message in err) == (2, True), (argv, err)
    monkeypatch.delenv(KEY_ENV)
    code, _, err = await asyncio.to_thread(run_cli, base_args(dataset, server, tenant))
    assert code == 2 and f"{KEY_ENV} is not set" in err
    assert server.stats.requests == 0  # nothing was sent anywhere


async def test_with_default_options_a_run_with_failing_items_fails_and_a_lowered_pass_rate_lets_it_pass(
        *, stack: CommonSettings, server: FakeLLMServer, tmp_path: Path) -> None:
    # Three items, as a new user tries it: the judge scores item "good" 5 of 5 and the others 1 of 5, so
    # each rubric passes 1 of 3 items (33%). Nothing is lowered: the run must fail, and say so.
    path = tmp_path / "three.jsonl"
    path.write_text("".join(json.dumps({"id": i, "input": f"Question {i}?", "reference": f"Answer {i}."}) + "\n"
                            for i in ("good", "bad-1", "bad-2")))
    server.config.json_reply = {"reasoning": "Wrong.", "score": 1}
    server.config.marked_json_replies = {"Question good?": {"reasoning": "Right.", "score": 5}}
    args = ["run", "--dataset", str(path), "--model", "app-model", "--base-url", server.url, "--api-key-env", KEY_ENV,
            "--rubrics", "relevance@1,correctness@1", "--no-store"]

    code, out, err = await asyncio.to_thread(run_cli, args)
    assert code == cli.REGRESSION, err
    assert "PASSED" not in out and out.rstrip().endswith("REGRESSION")
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("relevance@1", "correctness@1"))}
    assert set(rows) == {"relevance@1", "correctness@1"}
    assert all("33.3%" in row and "FAIL: pass rate 33.3% is below the minimum 100.0%" in row for row in rows.values())
    assert not any(row.rstrip().endswith(" ok") for row in rows.values())

    code, out, err = await asyncio.to_thread(run_cli, [*args, "--min-pass-rate", "0.3"])
    assert code == cli.PASSED, out + err
    assert out.rstrip().endswith("PASSED")
