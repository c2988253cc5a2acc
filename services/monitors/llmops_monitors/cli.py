"""`llmops monitors ...`: monitor definitions from the command line, straight on the database (operators).

    llmops monitors list --tenant T
    llmops monitors create --tenant T --file monitor.json      (the API's JSON body; `-` reads stdin)
    llmops monitors replace --tenant T ID --file monitor.json
    llmops monitors delete --tenant T ID
    llmops monitors firings --tenant T ID

It reaches `llmops` as a plugin (`plugin.py`, the entry point `llmops.plugins` in services/monitors/pyproject.toml),
so it exists wherever the monitors service is installed. A definition is validated as the API validates
it; a bad one prints the field and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import BaseModel, ValidationError

from llmops_monitors import service
from llmops_monitors.schemas import MonitorCreate
from llmops_shared.problems import DomainError
from llmops_shared.settings import CommonSettings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmops monitors", description="monitor definitions and their firings")
    sub = p.add_subparsers(dest="action", required=True)
    for name in ("list", "get", "create", "replace", "delete", "firings"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--tenant", required=True)
        if name in ("get", "replace", "delete", "firings"):
            cmd.add_argument("monitor_id", type=int)
        if name in ("create", "replace"):
            cmd.add_argument("--file", required=True, help="the definition as JSON (the API's body); - for stdin")
    return p


def _body(path: str) -> MonitorCreate:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return MonitorCreate.model_validate_json(text)


def run(args: argparse.Namespace, settings: CommonSettings) -> int:
    try:
        opts = parser().parse_args(args.rest)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        body = _body(opts.file) if opts.action in ("create", "replace") else None
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            print(f"error: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}", file=sys.stderr)
        return 2
    from llmops_monitors.settings import MonitorsSettings

    limit = MonitorsSettings().max_monitors_per_tenant
    actions: dict[str, Callable[[asyncpg.Pool], Awaitable[BaseModel | None]]] = {
        "list": lambda db: service.list_monitors(db, tenant_id=opts.tenant),
        "get": lambda db: service.get(db, tenant_id=opts.tenant, monitor_id=opts.monitor_id),
        "create": lambda db: service.create(db, tenant_id=opts.tenant, body=body, limit=limit),  # type: ignore[arg-type]
        "replace": lambda db: service.replace(db, tenant_id=opts.tenant, monitor_id=opts.monitor_id,
                                              body=body),  # type: ignore[arg-type]
        "delete": lambda db: service.delete(db, tenant_id=opts.tenant, monitor_id=opts.monitor_id),
        "firings": lambda db: service.list_firings(db, tenant_id=opts.tenant, monitor_id=opts.monitor_id, limit=100),
    }

    async def go() -> Any:
        from llmops_shared.db import create_pool

        pool = await create_pool(settings.database_url, max_size=2)
        try:
            return await actions[opts.action](pool)
        finally:
            await pool.close()

    try:
        result = asyncio.run(go())
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    if result is not None:
        print(result.model_dump_json(indent=2))
    return 0
