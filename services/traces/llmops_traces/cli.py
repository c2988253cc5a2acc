"""`llmops traces ...`: the traces service's operator commands.

    llmops traces tail [--tenant T] [--app A] [--status error] [--kind K] [--model M] [--user U]
                       [--session S] [--since 60] [--no-color] [--once]

Follows the spans the writer stores (metadata only, never text), one line each, coloured on a terminal
(errors red, findings yellow; `--no-color` or `NO_COLOR` turns it off). Also runnable as
`python -m llmops_traces.cli ...`; the shared CLI forwards `llmops traces` here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta

from llmops_shared.clock import Clock, utc_now
from llmops_shared.terminal import ArgumentParser
from llmops_traces.settings import TracesSettings
from llmops_traces.tail import follow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="traces_command", required=True)
    tail = sub.add_parser("tail", help="follow live spans (metadata, no text)")
    tail.add_argument("--tenant", help="only this tenant")
    tail.add_argument("--app", help="only this app")
    tail.add_argument("--status", choices=["ok", "error"])
    for name in ("kind", "model", "user", "session", "environment"):
        tail.add_argument(f"--{name}", help=f"only this {name}")
    tail.add_argument("--since", type=float, default=60.0, help="start with spans stored this many seconds ago")
    tail.add_argument("--no-color", action="store_true", help="no colours (also: NO_COLOR set, or not a terminal)")
    tail.add_argument("--once", action="store_true", help="print what is there and stop")


def run(args: argparse.Namespace, settings: TracesSettings, *, clock: Clock = utc_now,
        out: Callable[[str], None] = print) -> int:
    from llmops_shared import db

    filters = {name: value for name in ("status", "kind", "model", "user", "session", "environment")
               if (value := getattr(args, name))}
    colour = not args.no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()

    async def tail() -> int:
        pool = await db.create_pool(settings.database_url, max_size=2)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await follow(pool, tenant_id=args.tenant, app_id=args.app, filters=filters, out=out, clock=clock,
                         colour=colour, since=timedelta(seconds=args.since), poll_s=settings.tail_poll_s,
                         once=args.once, stop=stop)
        finally:
            await pool.close()
        return 0

    return asyncio.run(tail())


def main(argv: Sequence[str] | None = None, *, clock: Clock = utc_now) -> int:
    parser = ArgumentParser(prog="llmops traces", description="traces: follow live spans")
    add_arguments(parser)
    return run(parser.parse_args(argv), TracesSettings(), clock=clock)


if __name__ == "__main__":
    sys.exit(main())
