"""`llmops`: one command-line tool for the whole suite.

    llmops migrate                     apply pending SQL migrations
    llmops topics                      create the suite's Kafka topics
    llmops keys create --tenant T --scopes ingest:write,...   (prints the key once, as the last word)
    llmops keys list [--tenant T] | keys revoke KEY_ID
    llmops dlq list | dlq replay [--consumer C] [--reason R]   dead letters
    llmops retention [--dry-run]       drop what is past retention (partitions, old rows); says what
    llmops run SERVICE                 run one service in the foreground (ingest-api, ...)
    llmops schema                      print the interaction event's JSON Schema
    llmops alerts list|show|ack|resolve   on-call, against the guardrails API (llmops_shared.oncall)
    llmops usage [--by model,app]      usage and cost, against the billing API
    llmops billing | eval | guardrails | traces | prompts ...   forwarded to the service's own command line

Every command that reads data takes `--json`; long jobs show a progress bar on a terminal and plain
lines in a pipe; errors are one line with the fix (`llmops_shared.terminal`).
Service-specific commands are imported only when used, so a deployment carries only what it runs.
Other distributions add commands as plugins (`llmops_shared.plugins`): the development tools
(`llmops-devtools`) add `up`, `down`, `status` and `demo` where they are installed.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmops_shared import oncall
from llmops_shared.plugins import Plugin, Run, load_plugins
from llmops_shared.services import SERVICES
from llmops_shared.terminal import USAGE, ArgumentParser, CliError, Column, guard, print_json, print_table, progress

if TYPE_CHECKING:
    from llmops_shared.settings import CommonSettings


def _cmd_migrate(args: argparse.Namespace, settings: CommonSettings) -> int:
    import asyncio  # here, not at start-up

    from llmops_shared import db, migrations

    async def run() -> list[migrations.Migration]:
        await db.ensure_database(settings.database_url)
        return await migrations.migrate(settings.database_url)

    applied = asyncio.run(run())
    for m in applied:
        print(f"applied {m.component}/{m.version}_{m.name}")
    print(f"{len(applied)} migration(s) applied")
    return 0


def _cmd_topics(args: argparse.Namespace, settings: CommonSettings) -> int:
    import asyncio  # here, not at start-up

    from llmops_shared import kafka

    created = asyncio.run(kafka.ensure_topics(settings.kafka_bootstrap))
    print(f"created: {', '.join(created)}" if created else "all topics exist")
    return 0


def _cmd_keys(args: argparse.Namespace, settings: CommonSettings) -> int:
    import asyncio  # here, not at start-up

    import redis.asyncio as aioredis

    from llmops_shared import apikeys, db

    async def run() -> int:
        pool = await db.create_pool(settings.database_url, max_size=2)
        try:
            if args.keys_command == "create":
                try:
                    scopes = apikeys.parse_scopes([s.strip() for s in args.scopes.split(",") if s.strip()])
                except ValueError as exc:
                    raise CliError(f"--scopes: {exc}", fix="see docs/security.md for the scopes", code=USAGE) from exc
                new = await apikeys.create_key(pool, tenant_id=args.tenant, scopes=scopes, name=args.name,
                                               rate_limit_per_s=args.rate_limit)
                print(f"created key {new.key_id} for tenant {new.tenant_id} with scopes {','.join(scopes)}")
                print("store it now; it is not shown again:")
                print(new.secret)
                return 0
            if args.keys_command == "list":
                keys = [dict(row) for row in await apikeys.list_keys(pool, args.tenant)]
                if args.json:
                    print_json(keys)
                    return 0
                print_table([Column("key"), Column("tenant"), Column("state"), Column("scopes"), Column("name")],
                            [[k["key_id"], k["tenant_id"],
                              ("revoked", "dim") if k["revoked_at"] else ("active", "green"),
                              ",".join(k["scopes"]), k["name"] or ""] for k in keys])
                return 0
            redis = aioredis.from_url(settings.redis_url)
            try:
                revoked = await apikeys.revoke_key(pool, args.key_id, redis)
            finally:
                await redis.aclose()
            print(f"revoked {args.key_id}" if revoked else f"no active key {args.key_id}")
            return 0 if revoked else 1
        finally:
            await pool.close()

    return asyncio.run(run())


def _cmd_dlq(args: argparse.Namespace, settings: CommonSettings) -> int:
    import asyncio  # here, not at start-up

    from llmops_shared import db, deadletters

    async def run() -> int:
        pool = await db.create_pool(settings.database_url, max_size=2)
        try:
            if args.dlq_command == "list":
                rows = [dict(r) for r in await deadletters.pending(pool, args.consumer, args.reason, args.limit)]
                if args.json:
                    print_json(rows)
                    return 0
                print_table([Column("id", right=True), Column("consumer"), Column("where"), Column("reason"),
                             Column("error")],
                            [[str(r["id"]), r["consumer"], f"{r['topic']}[{r['partition']}]@{r['offset']}",
                              (r["reason"], "yellow"), r["error"][:80]] for r in rows])
                print(f"{len(rows)} pending dead letter(s)")
                return 0
            report = await deadletters.replay(pool, settings.kafka_bootstrap, consumer=args.consumer,
                                              reason=args.reason, limit=args.limit)
            print(f"replayed {report.replayed} of {report.pending}; "
                  f"{report.missing} no longer on the dead-letter topic")
            return 0 if report.missing == 0 else 1
        finally:
            await pool.close()

    return asyncio.run(run())


def _cmd_retention(args: argparse.Namespace, settings: CommonSettings) -> int:
    import asyncio  # here, not at start-up

    from llmops_shared import db
    from llmops_shared.clock import utc_now
    from llmops_shared.retention import STEPS, Outcome, RetentionSettings, run_retention

    retention = RetentionSettings()

    async def run() -> int:
        pool = await db.create_pool(retention.database_url, max_size=2)
        try:
            with progress("retention", STEPS, unit="tables") as bar:
                def step(_name: str, outcomes: list[Outcome]) -> None:
                    for outcome in outcomes:  # on stdout, as before (above the bar on a terminal)
                        print(outcome.line(dry_run=args.dry_run), flush=True)
                    bar.advance(1)

                report = await run_retention(pool, retention, now=utc_now(), dry_run=args.dry_run, on_step=step)
        finally:
            await pool.close()
        verb = "would drop" if report.dry_run else "dropped"
        print(f"{verb} {len(report.dropped)} partition(s), {'would delete' if report.dry_run else 'deleted'} "
              f"{report.rows_deleted} row(s); {len(report.skipped)} skipped")
        return 1 if report.skipped else 0

    try:
        return asyncio.run(run())
    except RuntimeError as exc:
        raise CliError(str(exc), fix="wait for the other run to finish") from exc


def _cmd_run(args: argparse.Namespace, settings: CommonSettings) -> int:
    by_name = {s.name: s for s in SERVICES}
    for plugin in load_plugins():
        by_name.update({p.name: p for p in plugin.processes if p.name not in by_name})
    service = by_name.get(args.service)
    if service is None:
        raise CliError(f"unknown service {args.service!r}", fix=f"one of {', '.join(by_name)}", code=USAGE)
    sys.argv = [service.module]
    runpy.run_module(service.module, run_name="__main__", alter_sys=True)
    return 0


# Service-specific commands live with their service and are forwarded: `llmops billing reprice ...` runs
# `python -m llmops_billing.cli reprice ...`. A deployment without that service says so.
FORWARDED = {
    "billing": ("llmops_billing.cli", "billing: prices import, reprice"),
    "eval": ("llmops_evaluator.cli", "evaluator: golden-dataset runs (llmops eval run ...)"),
    "guardrails": ("llmops_guardrails.cli", "guardrails: policies"),
    "traces": ("llmops_traces.cli", "traces: follow live spans (llmops traces tail ...)"),
    "prompts": ("llmops_prompts.cli", "prompts: prompt files as code, experiment reports (llmops prompts push ...)"),
}


def _cmd_forward(args: argparse.Namespace, settings: CommonSettings) -> int:
    import importlib.util

    module, _ = FORWARDED[args.command]
    if importlib.util.find_spec(module) is None:
        raise CliError(f"`llmops {args.command}` needs the module {module}", fix="install that service's package",
                       code=USAGE)
    sys.argv = [f"llmops {args.command}", *args.rest]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _cmd_schema(args: argparse.Namespace, settings: CommonSettings) -> int:
    import orjson

    from llmops_shared.contract import interaction_json_schema

    sys.stdout.write(orjson.dumps(interaction_json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def build_parser(plugins: Sequence[Plugin] = ()) -> tuple[argparse.ArgumentParser, dict[str, Run]]:
    """The command line, and what runs each command (a plugin never shadows a built-in command)."""
    parser = ArgumentParser(prog="llmops", description="The LLMOps event-streaming suite")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Run] = dict(_COMMANDS)
    for plugin in plugins:  # first, so that `llmops up | down | status` head the help as they head the README
        for command in plugin.commands:
            if command.name in commands or command.name in FORWARDED:
                print(f"llmops: a plugin's command {command.name!r} is a built-in one; ignored", file=sys.stderr)
                continue
            command.configure(sub.add_parser(command.name, help=command.help))
            commands[command.name] = command.run

    sub.add_parser("migrate", help="apply pending SQL migrations")
    sub.add_parser("topics", help="create the suite's Kafka topics")

    keys = sub.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; prints it once, as the last word")
    create.add_argument("--tenant", required=True)
    create.add_argument("--scopes", required=True, help="comma-separated, e.g. ingest:write,billing:read")
    create.add_argument("--name", default="")
    create.add_argument("--rate-limit", type=int, default=None, help="events per second (default: the service's)")
    lst = keys_sub.add_parser("list", help="list keys (never their secrets)")
    lst.add_argument("--tenant")
    lst.add_argument("--json", action="store_true", help="a JSON array, for scripts")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")

    dlq = sub.add_parser("dlq", help="dead letters: list, replay once the cause is fixed")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    for name in ("list", "replay"):
        p = dlq_sub.add_parser(name)
        p.add_argument("--consumer", help="the worker (consumer group) that dead-lettered them")
        p.add_argument("--reason", help="e.g. schema_violation, processing_error")
        p.add_argument("--limit", type=int, default=10_000)
    dlq_sub.choices["list"].add_argument("--json", action="store_true", help="a JSON array, for scripts")

    retention = sub.add_parser("retention", help="drop what is past retention (LLMOPS_RETENTION_*) and say what")
    retention.add_argument("--dry-run", action="store_true", help="say what would be dropped; change nothing")

    run = sub.add_parser("run", help="run one service in the foreground")
    run.add_argument("service")

    sub.add_parser("schema", help="print the interaction event's JSON Schema")
    oncall.add_arguments(sub)
    for name, (_module, helptext) in FORWARDED.items():
        forwarded = sub.add_parser(name, help=helptext, add_help=False)
        forwarded.add_argument("rest", nargs=argparse.REMAINDER)
    return parser, commands


_COMMANDS: dict[str, Run] = {
    "migrate": _cmd_migrate, "topics": _cmd_topics, "keys": _cmd_keys, "dlq": _cmd_dlq, "retention": _cmd_retention,
    "run": _cmd_run, "schema": _cmd_schema, "alerts": oncall.cmd_alerts, "usage": oncall.cmd_usage,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORWARDED:  # the service's own parser reads the rest, --help included
        args = argparse.Namespace(command=argv[0], rest=argv[1:])
        command: Run = _cmd_forward
    else:
        parser, commands = build_parser(load_plugins())
        args = parser.parse_args(argv)
        command = commands[args.command]

    def run() -> int:
        from llmops_shared.settings import CommonSettings  # pydantic-settings: not for `llmops --help`

        return command(args, CommonSettings())

    return guard(f"llmops {args.command}", run)


if __name__ == "__main__":
    sys.exit(main())
