"""On-call from the terminal: `llmops alerts ...` (the guardrails API) and `llmops usage` (the billing API).

    llmops alerts list [--status open] [--severity critical] [--app A] [--rule R] [--limit 50] [--json]
    llmops alerts show ALERT_ID [--json]
    llmops alerts ack ALERT_ID [--json]           acknowledge (scope alerts:write)
    llmops alerts resolve ALERT_ID [--json]       resolve; PagerDuty resolves too (scope alerts:write)
    llmops usage [--from ISO] [--to ISO] [--by model,app] [--granularity day] [--app A] [--model M] [--json]

HTTP clients of the services' public APIs, so they need no database and no service installed: the URLs
and the key come from `llmops_shared.profile` (`LLMOPS_API_KEY` or `~/.config/llmops/profile.toml`).
`--json` prints the API's own document (every page of it for `usage`), the schema its OpenAPI page shows.
"""

from __future__ import annotations

import argparse
from typing import Any

from llmops_shared.profile import Profile, load_profile
from llmops_shared.terminal import USAGE, CliError, Column, print_json, print_table

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
STATUS_STYLE = {"open": "bold", "acknowledged": "magenta", "resolved": "green"}
USAGE_GROUPS = ("app", "environment", "model", "provider", "prompt", "user", "tag")
GROUP_COLUMNS = {"app": ["app_id"], "environment": ["environment"], "model": ["model"], "provider": ["provider"],
                 "prompt": ["prompt_name", "prompt_version", "prompt_variant"], "user": ["user_id"], "tag": ["tag"]}


def add_arguments(sub: argparse._SubParsersAction[Any]) -> None:
    alerts = sub.add_parser("alerts", help="on-call: list, show, acknowledge, resolve alerts (guardrails API)")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    lst = alerts_sub.add_parser("list", help="alerts, newest first (default: open and acknowledged)")
    lst.add_argument("--status", action="append", choices=["open", "acknowledged", "resolved"],
                     help="repeatable (default: open and acknowledged)")
    lst.add_argument("--severity", action="append", choices=["info", "warning", "critical"], help="repeatable")
    lst.add_argument("--app", help="only this app")
    lst.add_argument("--rule", help="only this rule")
    lst.add_argument("--limit", type=int, default=50, help="at most this many (1-500)")
    for name, helptext in (("show", "one alert"), ("ack", "acknowledge an open alert"),
                           ("resolve", "resolve an alert (PagerDuty resolves too)")):
        one = alerts_sub.add_parser(name, help=helptext)
        one.add_argument("alert_id")
    for parser in (lst, *[alerts_sub.choices[n] for n in ("show", "ack", "resolve")]):
        parser.add_argument("--json", action="store_true", help="the API's JSON document, for scripts")
        parser.add_argument("--profile", help="a section of the profile file (default: LLMOPS_PROFILE or default)")

    usage = sub.add_parser("usage", help="on-call: usage and cost, grouped (billing API)")
    usage.add_argument("--from", dest="start", help="inclusive, ISO 8601 (default: start of this UTC month)")
    usage.add_argument("--to", dest="end", help="exclusive (default: start of next month)")
    usage.add_argument("--by", default="model", help=f"comma-separated: {', '.join(USAGE_GROUPS)} (default model)")
    usage.add_argument("--granularity", choices=["hour", "day", "month"], help="buckets (default: day)")
    for name in ("app", "environment", "model", "provider"):
        usage.add_argument(f"--{name}", help=f"only this {name}")
    usage.add_argument("--json", action="store_true", help="every page's rows in one JSON document, for scripts")
    usage.add_argument("--profile", help="a section of the profile file")


# -- HTTP ------------------------------------------------------------------------------------------


def request(profile: Profile, service: str, method: str, path: str, params: Any = None) -> Any:
    """One call to a service's API; any failure is a `CliError` saying what to do."""
    import httpx

    if not profile.api_key:
        raise CliError(f"no API key for the {service} API",
                       fix="set LLMOPS_API_KEY or api_key in ~/.config/llmops/profile.toml (docs/cli.md)", code=USAGE)
    url = profile.url(service)
    try:
        resp = httpx.request(method, url + path, params=params, timeout=30,
                             headers={"Authorization": f"Bearer {profile.api_key}"})
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the {service} API at {url}: {exc or type(exc).__name__}",
                       fix=f"is it running (`llmops status`)? else set {service}_url in the profile "
                           f"or LLMOPS_{service.upper()}_URL") from exc
    if resp.status_code < 400:
        return resp.json()
    raise _http_error(resp.status_code, _problem(resp), service, profile)


def _problem(resp: Any) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200] or resp.reason_phrase
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors:
        return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'request'}: {e.get('msg')}"
                         for e in errors)
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)
    return str(body)


def _http_error(status: int, detail: str, service: str, profile: Profile) -> CliError:
    scopes = {"guardrails": "alerts:read (alerts:write to change them)", "billing": "billing:read"}[service]
    if status == 401:
        return CliError(f"the {service} API refused the key ({detail})",
                        fix=f"check the key in {profile.source}; create one with `llmops keys create`")
    if status == 403:
        return CliError(f"the key may not do this ({detail})", fix=f"use a key with the scope {scopes}")
    if status == 404:
        return CliError(f"not found ({detail})", fix="check the id (`llmops alerts list`)")
    if status == 422:
        return CliError(f"the {service} API rejected the request: {detail}", fix="correct the option named",
                        code=USAGE)
    return CliError(f"the {service} API answered {status}: {detail}",
                    fix="retry; if it persists, see the service's log")


# -- alerts ----------------------------------------------------------------------------------------


def _alert_row(a: dict[str, Any]) -> list[str | tuple[str, str]]:
    return [a["alert_id"], (a["severity"], SEVERITY_STYLE.get(a["severity"], "")),
            (a["status"], STATUS_STYLE.get(a["status"], "")), a["app_id"], a["rule_id"], str(a["count"]),
            a["last_seen"][:19].replace("T", " "), a["title"]]


ALERT_COLUMNS = [Column("alert"), Column("severity"), Column("status"), Column("app"), Column("rule"),
                 Column("count", right=True), Column("last seen (UTC)"), Column("title")]


def cmd_alerts(args: argparse.Namespace, _settings: object = None) -> int:
    profile = load_profile(args.profile)
    command = args.alerts_command
    if command == "list":
        if not 1 <= args.limit <= 500:
            raise CliError(f"--limit {args.limit}: want 1 to 500", fix="--limit 500 at most", code=USAGE)
        params: list[tuple[str, str | int]] = [("limit", args.limit)]
        params += [("status", s) for s in (args.status or ["open", "acknowledged"])]
        params += [("severity", s) for s in (args.severity or [])]
        params += [(k, v) for k, v in (("app_id", args.app), ("rule", args.rule)) if v]
        page = request(profile, "guardrails", "GET", "/v1/alerts", params)
        if args.json:
            print_json(page)
        else:
            print_table(ALERT_COLUMNS, [_alert_row(a) for a in page["alerts"]])
            more = " (more: raise --limit or narrow the filters)" if page.get("next_cursor") else ""
            print(f"{len(page['alerts'])} alert(s){more}")
        return 0
    path = f"/v1/alerts/{args.alert_id}"
    if command == "show":
        alert = request(profile, "guardrails", "GET", path)
    else:
        alert = request(profile, "guardrails", "POST", path + ("/acknowledge" if command == "ack" else "/resolve"))
    if args.json:
        print_json(alert)
    elif command == "show":
        width = max(len(k) for k in alert)
        for key, value in alert.items():
            shown = ", ".join(value) if isinstance(value, list) else ("-" if value is None else value)
            print(f"{key:<{width}}  {shown}")
    else:
        print(f"{alert['status']} {alert['alert_id']} ({alert['severity']}, {alert['app_id']}): {alert['title']}")
    return 0


# -- usage -----------------------------------------------------------------------------------------


def cmd_usage(args: argparse.Namespace, _settings: object = None) -> int:
    profile = load_profile(args.profile)
    groups = [g.strip() for g in args.by.split(",") if g.strip()]
    unknown = [g for g in groups if g not in USAGE_GROUPS]
    if unknown:
        raise CliError(f"--by {','.join(unknown)}: not a grouping", fix=f"use {', '.join(USAGE_GROUPS)}", code=USAGE)
    params: dict[str, str | int] = {"limit": 1000, **({"group_by": ",".join(groups)} if groups else {})}
    for key, value in (("from", args.start), ("to", args.end), ("granularity", args.granularity),
                       ("app_id", args.app), ("environment", args.environment), ("model", args.model),
                       ("provider", args.provider)):
        if value:
            params[key] = value
    page = request(profile, "billing", "GET", "/v1/usage", params)
    rows = list(page["rows"])
    while page.get("next_cursor"):
        page = request(profile, "billing", "GET", "/v1/usage", {**params, "cursor": page["next_cursor"]})
        rows += page["rows"]
    document = {**page, "rows": rows, "next_cursor": None}
    if args.json:
        print_json(document)
        return 0
    from decimal import Decimal

    group_cols = [c for g in groups for c in GROUP_COLUMNS[g]]
    bucketed = any(r.get("bucket") for r in rows)  # the API buckets by day unless told otherwise
    columns = ([Column("bucket")] if bucketed else []) + [Column(c) for c in group_cols] + [
        Column("events", right=True), Column("input tokens", right=True), Column("output tokens", right=True),
        Column(f"cost ({document['currency']})", right=True)]
    table = []
    for r in rows:
        cells: list[str | tuple[str, str]] = [(r.get("bucket") or "-")[:16].replace("T", " ")] if bucketed else []
        cells += [("-" if r.get(c) is None else str(r[c])) for c in group_cols]
        cost = r["cost_total"] + (" *" if r["unpriced_count"] else "")
        cells += [f"{r['event_count']:,}", f"{r['input_tokens']:,}", f"{r['output_tokens']:,}", (cost, "green")]
        table.append(cells)
    print_table(columns, table, title=f"usage {document['from']} to {document['to']} (source {document['source']})")
    total = sum((Decimal(r["cost_total"]) for r in rows), Decimal(0))
    events = sum(r["event_count"] for r in rows)
    print(f"{len(rows)} row(s); {events:,} event(s); total cost {total} {document['currency']}")
    if any(r["unpriced_count"] for r in rows):
        print("* some events have no price yet: their costs are missing (GET /v1/unpriced-models)")
    return 0
