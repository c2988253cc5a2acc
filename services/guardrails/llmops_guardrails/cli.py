"""`llmops guardrails ...`: the guardrails operator commands (also `python -m llmops_guardrails.cli ...`).

    llmops guardrails policy validate FILE [--tenant-file FILE]   merge over the default and validate; no I/O
    llmops guardrails policy set --tenant T [--app A] FILE          store a new version (validated as the API does)
    llmops guardrails policy show --tenant T [--app A] [--json]     the stored override and the effective version

The same rules as `PUT /v1/policy`: the merged policy must validate, and a tenant-wide change must keep
every app override of that tenant valid. Errors name their path; the exit code is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from llmops_guardrails import policies_service
from llmops_guardrails.policy import PolicyError, load_policy
from llmops_guardrails.settings import GuardrailsSettings
from llmops_shared.terminal import ArgumentParser, print_json


def parser() -> argparse.ArgumentParser:
    root = ArgumentParser(prog="llmops guardrails", description="guardrails: policies")
    sub = root.add_subparsers(dest="command", required=True)
    policy = sub.add_parser("policy", help="stored policy overrides")
    psub = policy.add_subparsers(dest="policy_command", required=True)
    validate = psub.add_parser("validate", help="merge a file over the default (and a tenant file) and validate it")
    validate.add_argument("file", type=Path)
    validate.add_argument("--tenant-file", type=Path, help="the tenant override the file (an app's) goes on top of")
    put = psub.add_parser("set", help="store a new version of a tenant's or an app's override")
    put.add_argument("file", type=Path)
    put.add_argument("--tenant", required=True)
    put.add_argument("--app", default="", help="an app's override; absent: the tenant-wide one")
    show = psub.add_parser("show", help="the stored override and the effective policy's version")
    show.add_argument("--tenant", required=True)
    show.add_argument("--app", default="")
    show.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    return root


def _errors(messages: Sequence[str]) -> int:
    for error in messages:
        print(f"error: {error}", file=sys.stderr)
    return 1


async def _run(args: argparse.Namespace, settings: GuardrailsSettings) -> int:
    from llmops_shared.db import create_pool

    pool = await create_pool(settings.database_url, max_size=2)
    try:
        if args.policy_command == "set":
            stored = await policies_service.put_policy(pool, tenant_id=args.tenant, app_id=args.app,
                                                       document=args.file.read_text(encoding="utf-8"),
                                                       created_by="cli")
            print(f"stored {args.tenant}/{args.app or '*'} version {stored.version}")
            return 0
        stored_doc = await policies_service.get_stored(pool, tenant_id=args.tenant, app_id=args.app)
        effective = await policies_service.effective_policy(pool, tenant_id=args.tenant, app_id=args.app)
        if args.json:
            print_json({"tenant_id": args.tenant, "app_id": args.app or None, "effective_version": effective.version,
                        "stored_version": stored_doc.version if stored_doc else None,
                        "stored_document": stored_doc.document if stored_doc else None})
            return 0
        print(f"# effective policy version: {effective.version}")
        print(f"# stored override: {'version ' + str(stored_doc.version) if stored_doc else 'none'}")
        if stored_doc:
            print(stored_doc.document)
        return 0
    except PolicyError as exc:
        return _errors(exc.errors)
    except policies_service.InvalidPolicy as exc:
        return _errors(exc.messages)
    finally:
        await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.policy_command == "validate":
        try:
            tenant = args.tenant_file.read_text(encoding="utf-8") if args.tenant_file else None
            policy = load_policy(tenant, args.file.read_text(encoding="utf-8"))
        except PolicyError as exc:
            return _errors(exc.errors)
        print(f"ok: {len(policy.active_rules)} active rules")
        return 0
    return asyncio.run(_run(args, GuardrailsSettings()))


if __name__ == "__main__":
    sys.exit(main())
