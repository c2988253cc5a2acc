"""`llmops prompts ...`: prompts as code, and experiment reports, through the prompts API.

    llmops prompts push DIR [--label staging] [--message "why"]   one version per changed file, none if unchanged
    llmops prompts pull DIR [--label production]                  write the API's prompts as files
    llmops prompts diff DIR [--label latest]                      what push would change (exit 1 if anything)
    llmops prompts report EXPERIMENT_ID                           the experiment's report, as JSON

A prompt file is `DIR/<name>.prompt.json`: `{"type": "text" | "chat", "template": ..., "config": {...}}`
(keys sorted, two-space indented, as `pull` writes them; the file name is the prompt's name). The key is
`LLMOPS_API_KEY` (`prompts:write` to push, `prompts:read` otherwise), the API `LLMOPS_PROMPTS_API_URL`.
Also runnable as `python -m llmops_prompts.cli ...`; the shared CLI forwards `llmops prompts` here.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from llmops_prompts.settings import PromptsSettings

SUFFIX = ".prompt.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="prompts_command", required=True)
    push = sub.add_parser("push", help="create a version of every prompt file whose content changed")
    push.add_argument("dir", type=Path)
    push.add_argument("--label", action="append", default=[], help="move this label to each pushed version")
    push.add_argument("--message", default="", help="the commit message of the versions made")
    pull = sub.add_parser("pull", help="write each prompt's version under a label as a file")
    pull.add_argument("dir", type=Path)
    pull.add_argument("--label", default="production")
    diff = sub.add_parser("diff", help="compare the files with the API's versions under a label")
    diff.add_argument("dir", type=Path)
    diff.add_argument("--label", default="latest")
    report = sub.add_parser("report", help="an experiment's report (JSON)")
    report.add_argument("experiment_id")


def _file_text(content: dict[str, Any]) -> str:
    return json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def read_dir(folder: Path) -> dict[str, dict[str, Any]]:
    """The prompt files of a folder: name -> {type, template, config}; a bad file raises naming it."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            content = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from exc
        if not isinstance(content, dict) or content.get("type") not in ("text", "chat") or "template" not in content:
            raise ValueError(f'{path}: want {{"type": "text" | "chat", "template": ..., "config": {{...}}}}')
        found[path.name.removesuffix(SUFFIX)] = {"type": content["type"], "template": content["template"],
                                                 "config": content.get("config") or {}}
    return found


def run(args: argparse.Namespace, settings: PromptsSettings, *, client: httpx.Client | None = None,
        out: Callable[[str], None] = print) -> int:
    key = os.environ.get("LLMOPS_API_KEY", "")
    http = client or httpx.Client(base_url=settings.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    try:
        return _COMMANDS[args.prompts_command](args, http, out)
    except (ValueError, httpx.HTTPError) as exc:
        out(f"error: {exc}")
        return 2
    finally:
        if client is None:
            http.close()


def _checked(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        raise ValueError(f"{resp.request.method} {resp.request.url.path}: {resp.status_code} "
                         f"{resp.json().get('detail', resp.text) if resp.content else ''}")
    return resp.json()


def _push(args: argparse.Namespace, http: httpx.Client, out: Callable[[str], None]) -> int:
    for name, content in read_dir(args.dir).items():
        body = _checked(http.post("/v1/prompts", json={"name": name, **content, "labels": args.label,
                                                       "commit_message": args.message}))
        version = body["version"]
        out(f"{name}: version {version}" if body["created"] else f"{name}: unchanged (version {version})")
    return 0


def _remote(http: httpx.Client, name: str, label: str) -> dict[str, Any] | None:
    resp = http.get(f"/v1/prompts/{name}", params={"label": label})
    if resp.status_code == 404:
        return None
    body = _checked(resp)
    return {"type": body["type"], "template": body["template"], "config": body["config"]}


def _pull(args: argparse.Namespace, http: httpx.Client, out: Callable[[str], None]) -> int:
    args.dir.mkdir(parents=True, exist_ok=True)
    for item in _checked(http.get("/v1/prompts"))["items"]:
        content = _remote(http, item["name"], args.label)
        if content is None:
            out(f"{item['name']}: no version labelled {args.label}")
            continue
        (args.dir / f"{item['name']}{SUFFIX}").write_text(_file_text(content))
        out(f"{item['name']}: written")
    return 0


def _diff(args: argparse.Namespace, http: httpx.Client, out: Callable[[str], None]) -> int:
    changed = 0
    for name, content in read_dir(args.dir).items():
        remote = _remote(http, name, args.label)
        old = [] if remote is None else _file_text(remote).splitlines()
        lines = list(difflib.unified_diff(old, _file_text(content).splitlines(), fromfile=f"{name}@{args.label}",
                                          tofile=f"{args.dir / (name + SUFFIX)}", lineterm=""))
        if lines:
            changed += 1
            out("\n".join(lines))
    out(f"{changed} prompt(s) differ")
    return 1 if changed else 0


def _report(args: argparse.Namespace, http: httpx.Client, out: Callable[[str], None]) -> int:
    out(json.dumps(_checked(http.get(f"/v1/experiments/{args.experiment_id}/report")), indent=2))
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace, httpx.Client, Callable[[str], None]], int]] = {
    "push": _push, "pull": _pull, "diff": _diff, "report": _report}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmops prompts", description="prompts: files as code, experiment reports")
    add_arguments(parser)
    return run(parser.parse_args(argv), PromptsSettings())


if __name__ == "__main__":
    sys.exit(main())
