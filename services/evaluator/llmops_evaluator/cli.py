"""`llmops eval ...`: golden-dataset regression runs. Also `python -m llmops_evaluator.cli ...`.

    llmops eval run --dataset golden.jsonl --model M --base-url URL
                    [--api-key-env OPENAI_API_KEY] [--judge-model J] [--judge-base-url URL] [--judge-api-key-env V]
                    [--rubrics relevance@1,correctness@1] [--threshold correctness@1=0.75 ...]
                    [--default-threshold 0.5] [--min-pass-rate 1.0] [--max-drop 0.05] [--concurrency 4]
                    [--baseline RUN_ID | latest | run.json] [--junit report.xml] [--output run.json]
                    [--config eval.yaml] [--tenant acme] [--name DATASET] [--no-store]
    llmops eval runs --tenant acme [--dataset NAME] [--limit 20] [--json]

`run` sends every item of the dataset (JSON Lines, see docs/evaluator.md) to the target model, judges the
answers on each rubric, stores the run and its items in Postgres (`LLMOPS_DATABASE_URL`; `--tenant`
required unless `--no-store`), shows progress on stderr (a bar with rate and time left on a terminal, one
line per item when piped), prints a comparison table against the baseline on
stdout, and writes JUnit XML for CI. Options override the config file (YAML: the fields of
`GoldenRunConfig` plus `tenant`). Keys are read from the environment variables named by `--api-key-env` /
`--judge-api-key-env`, never from the command line.

The gate is safe by default: a rubric fails when any item scores below its threshold (the minimum pass
rate is 1.0 unless `--min-pass-rate` or the config file's `min_pass_rate` / `min_pass_rates` lower it), and
the table says FAIL for it.

Exit codes: 0 every rubric passed its gate; 1 a regression (a rubric below its minimum pass rate, fallen
more than `--max-drop` from the baseline, or not judged at all); 2 the run could not be made (bad options,
dataset, config, baseline or database).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from llmops_evaluator.golden import (
    GoldenDatasetError,
    GoldenItem,
    GoldenRunConfig,
    ItemResult,
    RubricSummary,
    RunResult,
    TargetClient,
    compare,
    dataset_sha256,
    junit_xml,
    parse_golden,
    run_golden,
)
from llmops_evaluator.judge_client import JudgeClient, JudgeStatus
from llmops_evaluator.settings import EvaluatorSettings
from llmops_shared.contract import describe_errors
from llmops_shared.terminal import (
    ArgumentParser,
    Cell,
    Column,
    is_terminal,
    plain_table,
    print_json,
    print_table,
    progress,
)

PASSED, REGRESSION, CANNOT_RUN = 0, 1, 2
DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class UsageError(Exception):
    """The run cannot be made as asked; the message says why (exit code 2)."""


# -- options -> config (pure) -----------------------------------------------------------------------


def parse_thresholds(values: Sequence[str]) -> dict[str, float]:
    """`["relevance@1=0.7", ...]` -> `{"relevance@1": 0.7}`."""
    thresholds: dict[str, float] = {}
    for value in values:
        rubric, sep, number = value.partition("=")
        try:
            threshold = float(number)
        except ValueError:
            threshold = -1.0
        if not sep or not rubric or not 0 <= threshold <= 1:
            raise UsageError(f"--threshold {value!r}: want RUBRIC=NUMBER with the number from 0 to 1, "
                             "e.g. relevance@1=0.7")
        thresholds[rubric.strip()] = threshold
    return thresholds


def dataset_name(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._:/@-]", "-", Path(path).stem).lstrip("._:/@-") or "golden"


def build_config(args: argparse.Namespace, file_values: dict[str, Any]) -> tuple[GoldenRunConfig, str | None]:
    """The run's config (config file, then options on top) and the tenant; `UsageError` naming what is wrong."""
    raw = dict(file_values)
    tenant = args.tenant or raw.pop("tenant", None)
    raw.pop("tenant", None)
    raw["dataset"] = args.name or raw.get("dataset") or dataset_name(args.dataset)

    target = dict(raw.get("target") or {})
    for key, value in (("model", args.model), ("base_url", args.base_url), ("api_key_env", args.api_key_env)):
        if value is not None:
            target[key] = value
    target.setdefault("api_key_env", DEFAULT_KEY_ENV)
    missing = [f"--{k.replace('_', '-')}" for k in ("model", "base_url") if not target.get(k)]
    if missing:
        raise UsageError(f"{' and '.join(missing)} required (or target.{{model, base_url}} in --config)")
    judge = dict(raw.get("judge") or {})
    for key, value, fallback in (("model", args.judge_model, target["model"]),
                                 ("base_url", args.judge_base_url, target["base_url"]),
                                 ("api_key_env", args.judge_api_key_env, target["api_key_env"])):
        if value is not None:
            judge[key] = value
        judge.setdefault(key, fallback)
    raw["target"], raw["judge"] = target, judge

    if args.rubrics:
        raw["rubrics"] = [r.strip() for r in args.rubrics.split(",") if r.strip()]
    raw.setdefault("rubrics", ["relevance@1"])
    raw["thresholds"] = {**(raw.get("thresholds") or {}), **parse_thresholds(args.threshold or [])}
    for key, value in (("default_threshold", args.default_threshold), ("min_pass_rate", args.min_pass_rate),
                       ("max_drop", args.max_drop), ("max_concurrency", args.concurrency)):
        if value is not None:
            raw[key] = value
    try:
        return GoldenRunConfig.model_validate(raw), tenant
    except ValidationError as exc:
        raise UsageError("bad run configuration:\n  " + "\n  ".join(describe_errors(exc))) from exc


def read_config_file(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"--config {path}: {exc}") from exc
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UsageError(f"--config {path}: want a mapping of options")
    return values


# -- output (pure) ----------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


TABLE_COLUMNS = [Column("rubric"), *[Column(name, right=True) for name in (
    "items", "passed", "pass rate", "baseline", "change", "mean", "threshold")], Column("result")]


def table_rows(summaries: Sequence[RubricSummary]) -> list[list[Cell]]:
    """Per rubric: pass rate now and in the baseline, the change, the verdict (green ok, red FAIL)."""
    rows: list[list[Cell]] = []
    for s in summaries:
        change = "-" if s.drop is None else f"{0.0 - s.drop:+.1%}"  # 0.0 - 0.0 is +0.0
        mean = "-" if s.mean_score is None else f"{s.mean_score:.3f}"
        verdict = ("ok", "bold green") if s.ok else ("FAIL: " + "; ".join(s.problems), "bold red")
        rows.append([s.rubric, str(s.items), str(s.passed), _pct(s.pass_rate), _pct(s.baseline_pass_rate), change,
                     mean, f"{s.threshold:.2f}", verdict])
    return rows


def table_notes(summaries: Sequence[RubricSummary], *, baseline: RunResult | None) -> list[str]:
    lines = []
    if baseline is None:
        lines.append("(no baseline: pass rates only)")
    for s in summaries:
        if s.regressions:
            lines.append(f"regressed on {s.rubric} (passed in the baseline, not now): {', '.join(s.regressions)}")
    return lines


def format_table(summaries: Sequence[RubricSummary], *, baseline: RunResult | None) -> str:
    """The comparison table as plain text (what a pipe gets)."""
    return "\n".join([plain_table(TABLE_COLUMNS, table_rows(summaries)), *table_notes(summaries, baseline=baseline)])


def progress_line(done: int, total: int, item: GoldenItem, results: Sequence[ItemResult]) -> str:
    def one(r: ItemResult) -> str:
        if r.status is JudgeStatus.OK:
            return f"{r.rubric}={r.score:.2f}"
        return f"{r.rubric}={r.error_type or r.status.value}"

    width = len(str(total))
    return f"[{done:>{width}}/{total}] {item.id}: {', '.join(one(r) for r in results)}"


# -- the commands -----------------------------------------------------------------------------------


def _key(env_name: str, what: str, *, option: str = "--api-key-env") -> str:
    value = os.environ.get(env_name)
    if not value:
        raise UsageError(f"the {what}'s API key variable {env_name} is not set (see {option})")
    return value


def _baseline_in_db(spec: str | None) -> bool:
    return spec is not None and not spec.endswith(".json") and not Path(spec).is_file()


def _baseline_file(spec: str | None) -> RunResult | None:
    if spec is None or _baseline_in_db(spec):
        return None
    try:
        return RunResult.model_validate_json(Path(spec).read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        raise UsageError(f"--baseline {spec}: not a run saved with --output ({exc})") from exc


async def _baseline_in_database(conn: Any, spec: str, *, tenant: str | None, dataset: str) -> RunResult | None:
    from llmops_evaluator import run_store

    if conn is None or tenant is None:
        raise UsageError("--baseline RUN_ID or latest needs the database and --tenant")
    if spec == "latest":
        run_id = await run_store.latest_passed_run(conn=conn, tenant_id=tenant, dataset=dataset)
        return None if run_id is None else await run_store.load_run(conn=conn, tenant_id=tenant, run_id=run_id)
    try:
        run_id = uuid.UUID(spec)
    except ValueError as exc:
        raise UsageError(f"--baseline {spec!r}: a run id, 'latest', or a run.json file") from exc
    found = await run_store.load_run(conn=conn, tenant_id=tenant, run_id=run_id)
    if found is None:
        raise UsageError(f"--baseline {spec}: no such run for tenant {tenant}")
    return found


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        text = Path(args.dataset).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--dataset {args.dataset}: {exc.strerror or exc}") from exc
    try:
        items = parse_golden(text)
    except GoldenDatasetError as exc:
        raise UsageError(f"--dataset {args.dataset}: {exc}") from exc
    config, tenant = build_config(args, read_config_file(args.config))
    if not args.no_store and not tenant:
        raise UsageError("--tenant is required to store the run in Postgres (or --no-store)")
    run, summaries, baseline = asyncio.run(_run(args, items, text, config, tenant=tenant, err=err))

    against = f" against baseline {baseline.run_id}" if baseline is not None else ""
    print(f"\nrun {run.run_id}{against}", file=out)
    print_table(TABLE_COLUMNS, table_rows(summaries), out=out)
    for note in table_notes(summaries, baseline=baseline):
        print(note, file=out)
    if args.junit:
        Path(args.junit).write_text(junit_xml(run, summaries), encoding="utf-8")
    if args.output:
        Path(args.output).write_text(run.model_dump_json(indent=2), encoding="utf-8")
    passed = all(s.ok for s in summaries)
    print("PASSED" if passed else "REGRESSION", file=out)
    if not args.no_store:
        print(f"stored as run {run.run_id}; next time: --baseline {run.run_id} (or --baseline latest)", file=err)
    return PASSED if passed else REGRESSION


async def _run(args: argparse.Namespace, items: list[GoldenItem], text: str, config: GoldenRunConfig, *,
               tenant: str | None, err: TextIO) -> tuple[RunResult, list[RubricSummary], RunResult | None]:
    import asyncpg

    from llmops_evaluator import run_store

    store = not args.no_store
    target_key = _key(config.target.api_key_env, "target")
    judge_key = _key(config.judge.api_key_env, "judge", option="--judge-api-key-env")
    settings = EvaluatorSettings()
    digest = dataset_sha256(text)
    baseline = _baseline_file(args.baseline)

    conn = None
    if store or _baseline_in_db(args.baseline):
        try:
            conn = await asyncpg.connect(settings.database_url, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise UsageError(f"cannot reach the database at LLMOPS_DATABASE_URL: {exc}") from exc
    try:
        if _baseline_in_db(args.baseline):
            baseline = await _baseline_in_database(conn, args.baseline, tenant=tenant, dataset=config.dataset)
        if baseline is not None and baseline.dataset_sha256 and baseline.dataset_sha256 != digest:
            print("note: the baseline ran on another version of the dataset; items are compared by id", file=err)
        run_id = uuid.uuid4()
        if conn is not None and store and tenant:
            stored_baseline = None
            if baseline is not None and await run_store.load_run(conn=conn, tenant_id=tenant, run_id=baseline.run_id):
                stored_baseline = baseline.run_id
            await run_store.ensure_tenant(conn=conn, tenant_id=tenant)
            await run_store.start_run(conn=conn, run_id=run_id, tenant_id=tenant, config=config, dataset_sha256=digest,
                                 baseline_run_id=stored_baseline)
        print(f"run {run_id}: {len(items)} items of {config.dataset}, target {config.target.model}, "
              f"judge {config.judge.model}, rubrics {', '.join(config.rubrics)}", file=err)
        # The operator's own run, with the operator's key, to endpoints the operator names: not guarded by
        # the egress policy (which keeps tenants' judges off the internal network).
        judge = JudgeClient.from_spec(config.judge, api_key=judge_key, egress=None,
                                      max_concurrency=config.max_concurrency, policy=settings.retry_policy())
        target = TargetClient(spec=config.target, api_key=target_key, policy=settings.retry_policy())
        try:
            with progress("eval", len(items), unit="items", err=err) as ticks:
                def on_item(item: GoldenItem, results: list[ItemResult]) -> None:
                    # piped: one line per item; on a terminal the bar (rate, time left) and a line per
                    # item the judge could not score
                    line = progress_line(ticks.done + 1, len(items), item, results)
                    quiet = is_terminal(err) and all(r.status is JudgeStatus.OK for r in results)
                    ticks.advance(1, None if quiet else line)

                run = await run_golden(items, config, target=target, judge=judge, dataset_hash=digest,
                                       run_id=run_id, on_item=on_item)
        except BaseException as exc:
            if conn is not None and store:
                await run_store.fail_run(conn=conn, run_id=run_id, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            await target.close()
            await judge.close()
        summaries = compare(run, config, baseline)
        if conn is not None and store:
            await run_store.finish_run(conn=conn, run=run, config=config, summaries=summaries)
    finally:
        if conn is not None:
            await conn.close()
    return run, summaries, baseline


def cmd_runs(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return asyncio.run(_runs(args, out, err))


async def _runs(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import asyncpg

    from llmops_evaluator import run_store

    try:
        conn = await asyncpg.connect(EvaluatorSettings().database_url, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise UsageError(f"cannot reach the database at LLMOPS_DATABASE_URL: {exc}") from exc
    try:
        rows = await run_store.list_runs(conn=conn, tenant_id=args.tenant, dataset=args.dataset, limit=args.limit)
    finally:
        await conn.close()
    if args.json:
        print_json([dict(r) for r in rows], out=out)
        return 0
    status_style = {"passed": "green", "failed": "red", "regression": "red", "running": "yellow"}
    print_table([Column("run"), Column("started (UTC)"), Column("status"), Column("dataset"), Column("target"),
                 Column("judge")],
                [[str(r["run_id"]), f"{r['started_at']:%Y-%m-%d %H:%M}",
                  (r["status"], status_style.get(r["status"], "")), r["dataset"], r["target_model"], r["judge_model"]]
                 for r in rows], out=out)
    if not rows:
        print("no runs", file=err)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="llmops eval", description="Golden-dataset regression runs")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a golden dataset through a model and the judge; gate on regressions")
    run.add_argument("--dataset", required=True, help="JSON Lines: id, input, reference?, context?, metadata?")
    run.add_argument("--model", help="the target model")
    run.add_argument("--base-url", help="the target's OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    run.add_argument("--api-key-env", help=f"variable holding the target's key (default {DEFAULT_KEY_ENV})")
    run.add_argument("--judge-model", help="default: the target model")
    run.add_argument("--judge-base-url", help="default: the target's base URL")
    run.add_argument("--judge-api-key-env", help="default: the target's variable")
    run.add_argument("--rubrics", help="comma-separated name@version (default relevance@1)")
    run.add_argument("--threshold", action="append", metavar="RUBRIC=N",
                     help="normalised score an item needs to pass a rubric, e.g. relevance@1=0.75; repeatable")
    run.add_argument("--default-threshold", type=float)
    run.add_argument("--min-pass-rate", type=float,
                     help="a rubric fails below this pass rate (0..1; default 1.0: every item must pass)")
    run.add_argument("--max-drop", type=float, help="a rubric fails if its pass rate falls more than this")
    run.add_argument("--concurrency", type=int, help="items in flight (default 4)")
    run.add_argument("--baseline", help="a stored run id, 'latest' (last passed run), or a run.json file")
    run.add_argument("--junit", help="write JUnit XML here")
    run.add_argument("--output", help="write the run as JSON here (a later --baseline)")
    run.add_argument("--config", help="YAML with the same options (GoldenRunConfig fields, tenant)")
    run.add_argument("--tenant", help="the tenant the run is stored under")
    run.add_argument("--name", help="the dataset's name (default: the file's stem)")
    run.add_argument("--no-store", action="store_true", help="do not store the run in Postgres")
    lst = sub.add_parser("runs", help="list stored runs")
    lst.add_argument("--tenant", required=True)
    lst.add_argument("--dataset")
    lst.add_argument("--limit", type=int, default=20)
    lst.add_argument("--json", action="store_true", help="a JSON array, for scripts")
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    command = {"run": cmd_run, "runs": cmd_runs}[args.command]
    try:
        return command(args, out, err)
    except UsageError as exc:
        print(f"llmops eval {args.command}: error: {' '.join(str(exc).split())}", file=err)
        return CANNOT_RUN


if __name__ == "__main__":
    raise SystemExit(main())
