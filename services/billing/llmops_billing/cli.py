"""`llmops billing ...`: billing's operator commands.

    llmops billing reprice --from ISO --to ISO [--tenant T] [--model M] [--chunk N] [--dry-run]
    llmops billing prices import FILE [--effective-from ISO] [--source NAME] [--dry-run]
    llmops billing prices list [--model M] [--tenant T] [--json]

Re-pricing and imports show a progress bar on a terminal (plain lines piped); errors are one line.

Also runnable as `python -m llmops_billing.cli ...`. The shared CLI hooks it in with `register(subparsers)`
and `run(args, settings)`; `clock` is what "now" is (the default `--effective-from`, the prices in force,
re-pricing's `priced_at`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from llmops_billing.money import money_str
from llmops_billing.prices import ModelPrice
from llmops_billing.settings import BillingSettings
from llmops_shared.clock import Clock, utc_now
from llmops_shared.settings import CommonSettings
from llmops_shared.terminal import USAGE, ArgumentParser, CliError, Column, guard, print_json, print_table, progress

PRICE_FIELDS = ("input_per_token", "output_per_token", "cache_read_per_token", "cache_write_per_token",
                "reasoning_per_token", "request_fee", "tiers")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `billing` and its sub-commands to a parent CLI."""
    billing = subparsers.add_parser("billing", help="billing: re-pricing and the price catalogue")
    add_arguments(billing)
    return billing


def add_arguments(billing: argparse.ArgumentParser) -> None:
    sub = billing.add_subparsers(dest="billing_command", required=True)

    reprice = sub.add_parser("reprice", help="recompute ledger costs in [from, to) with the current prices")
    reprice.add_argument("--from", dest="start", required=True,
                         help="inclusive: an ISO 8601 instant with time zone, or a date (midnight UTC)")
    reprice.add_argument("--to", dest="end", required=True, help="exclusive: the same forms as --from")
    reprice.add_argument("--tenant", help="only this tenant")
    reprice.add_argument("--model", help="only this model (its catalogue key)")
    reprice.add_argument("--chunk", type=int, default=2_000, help="rows per transaction")
    reprice.add_argument("--dry-run", action="store_true", help="report what would change; change nothing")

    prices = sub.add_parser("prices", help="the price catalogue")
    prices_sub = prices.add_subparsers(dest="prices_command", required=True)
    imp = prices_sub.add_parser("import", help="import a LiteLLM-format price file as list prices")
    imp.add_argument("file", type=Path)
    imp.add_argument("--effective-from", help="when the file's prices take effect (default: now)")
    imp.add_argument("--source", help="a name for the file's rows (default: import-<date>)")
    imp.add_argument("--all", action="store_true",
                     help="also add rows whose prices equal the price already in force")
    imp.add_argument("--dry-run", action="store_true")
    lst = prices_sub.add_parser("list", help="list prices in force now")
    lst.add_argument("--model")
    lst.add_argument("--tenant", help="include this tenant's own price rows")
    lst.add_argument("--json", action="store_true", help="a JSON array, for scripts")


def run(args: argparse.Namespace, settings: CommonSettings, *, clock: Clock = utc_now) -> int:
    billing_settings = settings if isinstance(settings, BillingSettings) else BillingSettings()
    try:
        if args.billing_command == "reprice":
            return asyncio.run(_reprice(args, billing_settings, clock))
        if args.prices_command == "import":
            return asyncio.run(_import(args, billing_settings, clock))
        return asyncio.run(_list(args, billing_settings, clock))
    except ValueError as exc:
        raise CliError(str(exc), fix="see `llmops billing --help`", code=USAGE) from exc


def _instant(text: str, what: str) -> datetime:
    """An ISO 8601 instant with a time zone, or a date (`2026-11-01`: midnight UTC)."""
    from llmops_billing.catalogue import parse_instant

    if len(text.strip()) == 10:
        try:
            return datetime.combine(date.fromisoformat(text.strip()), time(), tzinfo=UTC)
        except ValueError:
            pass
    return parse_instant(text, what=what)


async def _reprice(args: argparse.Namespace, settings: BillingSettings, clock: Clock) -> int:
    from llmops_billing.catalogue import catalogue_cache, load_catalogue
    from llmops_billing.normalise import normalise_model
    from llmops_billing.reprice import reprice
    from llmops_billing.store.ledger import count_range
    from llmops_shared.db import create_pool

    start, end = _instant(args.start, "--from"), _instant(args.end, "--to")
    if end <= start:
        raise ValueError("--to must be after --from")
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        catalogue = await load_catalogue(pool, catalogue_cache(settings).base)
        model_key = normalise_model(args.model) if args.model else None
        total = await count_range(pool, tenant_id=args.tenant, start=start, end=end, model_key=model_key)
        with progress("reprice", total, unit="rows") as bar:
            report = await reprice(pool, catalogue, start=start, end=end, tenant_id=args.tenant, model_key=model_key,
                                   chunk_size=args.chunk, dry_run=args.dry_run,
                                   budget_alert_max_age=timedelta(hours=settings.budget_alert_max_age_h),
                                   clock=clock, on_chunk=bar.advance)
    finally:
        await pool.close()
    verb = "would change" if report.dry_run else "changed"
    print(f"re-pricing run {report.run_id}: examined {report.rows_examined} ledger row(s), {verb} "
          f"{report.rows_changed}; cost of those rows {money_str(report.cost_before)} -> "
          f"{money_str(report.cost_after)} USD (difference {money_str(report.delta)}); "
          f"{report.alerts} new budget alert(s)")
    return 0


async def _import(args: argparse.Namespace, settings: BillingSettings, clock: Clock) -> int:
    from llmops_billing.catalogue import catalogue_cache, load_catalogue
    from llmops_billing.litellm_import import load_litellm_file
    from llmops_billing.store.prices import insert_prices
    from llmops_shared.db import create_pool

    effective_from = (_instant(args.effective_from, "--effective-from") if args.effective_from
                      else clock().replace(microsecond=0))
    source = args.source or f"import-{effective_from.strftime('%Y%m%dT%H%M%SZ')}"
    imported = load_litellm_file(args.file, effective_from=effective_from, source=source)
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        current = await load_catalogue(pool, catalogue_cache(settings).base)
        wanted, unchanged = [], 0
        for price in imported.prices:
            in_force = current.price_for(None, price.model_key, price.provider or None, effective_from)
            same = (in_force is not None and in_force.provider == price.provider
                    and in_force.model_key == price.model_key
                    and all(getattr(in_force, f) == getattr(price, f) for f in PRICE_FIELDS))
            if same and not args.all:
                unchanged += 1
            else:
                wanted.append(price)
        if args.dry_run:
            print(f"would add {len(wanted)} price row(s); {unchanged} unchanged; "
                  f"{len(imported.skipped)} entr(ies) of the file skipped")
            return 0
        with progress("import", len(wanted), unit="prices") as bar:
            async with pool.acquire() as conn, conn.transaction():
                report = await insert_prices(conn, prices=wanted, on_row=bar.advance)
    finally:
        await pool.close()
    print(f"added {len(report.inserted)} price row(s) in force from {effective_from.isoformat()} (source {source}); "
          f"{unchanged} unchanged; {len(report.existing)} already present; "
          f"{len(imported.skipped)} entr(ies) of the file skipped")
    if effective_from < clock() - timedelta(minutes=1) and report.inserted:
        print("these prices start in the past: run `llmops billing reprice` over that period to correct "
              "events already priced")
    return 0


async def _list(args: argparse.Namespace, settings: BillingSettings, clock: Clock) -> int:
    from llmops_billing.catalogue import catalogue_cache, load_catalogue
    from llmops_billing.normalise import normalise_model
    from llmops_shared.db import create_pool

    pool = await create_pool(settings.database_url, max_size=2)
    try:
        catalogue = await load_catalogue(pool, catalogue_cache(settings).base)
    finally:
        await pool.close()
    now = clock()
    key = normalise_model(args.model) if args.model else None
    latest: dict[tuple[str | None, str, str], ModelPrice] = {}
    for price in sorted(catalogue.prices, key=lambda p: p.effective_from):
        if (key is None or price.model_key == key) and price.tenant_id in (None, args.tenant) and price.in_force(now):
            latest[(price.tenant_id, price.provider, price.model_key)] = price  # the latest in force wins
    shown = sorted(latest.values(), key=lambda p: (p.model_key, p.provider, p.tenant_id or ""))
    if args.json:
        print_json([{"provider": p.provider, "model_key": p.model_key, "tenant_id": p.tenant_id,
                     "input_per_token": money_str(p.input_per_token),
                     "output_per_token": money_str(p.output_per_token), "price_version": p.price_version}
                    for p in shown])
        return 0
    print_table([Column("provider"), Column("model"), Column("input / token", right=True),
                 Column("output / token", right=True), Column("version")],
                [[p.provider or "-", p.model_key, (money_str(p.input_per_token), "green"),
                  (money_str(p.output_per_token), "green"), p.price_version] for p in shown])
    print(f"{len(shown)} price(s) in force")
    return 0


def main(argv: Sequence[str] | None = None, *, clock: Clock = utc_now) -> int:
    parser = ArgumentParser(prog="llmops billing", description="billing: re-pricing and prices")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return guard("llmops billing", lambda: run(args, BillingSettings(), clock=clock))


if __name__ == "__main__":
    sys.exit(main())
