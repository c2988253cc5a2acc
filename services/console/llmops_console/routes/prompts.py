"""`/prompts` (every prompt, every experiment), `/prompts/{name}` (its versions, labels and their history),
`/prompts/{name}/diff` (two versions) and `/experiments/{id}` (the report, its intervals drawn).

The prompts API's logic is in its route functions, so the console calls those functions, with the signed-in
key's principal (its tenant) once the console has checked the scope the API's dependency would: a page and
the API answer the same, from the same code."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from llmops_console import charts
from llmops_console.auth import Viewer
from llmops_console.routes.deps import render
from llmops_prompts.routes import experiments as experiment_api
from llmops_prompts.routes import prompts as prompt_api
from llmops_shared.apikeys import Scope
from llmops_shared.deps import Now
from llmops_shared.problems import Invalid

router = APIRouter()


def _number(request: Request, name: str) -> int | None:
    text = request.query_params.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise Invalid(name, "a version number (1 or more)", location="query")
    return int(text)


def _instant(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name, "").strip()
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(name, "an ISO 8601 instant, e.g. 2026-12-01T00:00:00Z", location="query") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@router.get("/prompts", response_class=HTMLResponse, include_in_schema=False)
async def prompts(request: Request, viewer: Viewer) -> HTMLResponse:
    viewer.require(Scope.PROMPTS_READ)
    pool = request.app.state.pool
    listed = await prompt_api.list_prompts(principal=viewer.principal, pool=pool)
    experiments = await experiment_api.list_experiments(principal=viewer.principal, pool=pool)
    return render(request, "prompts.html", viewer=viewer, page="prompts", prompts=listed["items"],
                  experiments=experiments["items"])


@router.get("/prompts/{name}", response_class=HTMLResponse, include_in_schema=False)
async def prompt(request: Request, viewer: Viewer, name: str) -> HTMLResponse:
    viewer.require(Scope.PROMPTS_READ)
    pool = request.app.state.pool
    versions = (await prompt_api.list_versions(principal=viewer.principal, pool=pool, name=name))["items"]
    history = (await prompt_api.label_history(principal=viewer.principal, pool=pool, name=name))["items"]
    labels = {label: v["version"] for v in versions for label in v["labels"]}
    experiments = (await experiment_api.list_experiments(principal=viewer.principal, pool=pool, prompt=name))["items"]
    return render(request, "prompt.html", viewer=viewer, page="prompts", name=name, versions=versions,
                  history=history, labels=sorted(labels.items()), experiments=experiments)


@router.get("/prompts/{name}/diff", response_class=HTMLResponse, include_in_schema=False)
async def prompt_diff(request: Request, viewer: Viewer, name: str) -> HTMLResponse:
    viewer.require(Scope.PROMPTS_READ)
    pool = request.app.state.pool
    versions = (await prompt_api.list_versions(principal=viewer.principal, pool=pool, name=name))["items"]
    latest = versions[0]["version"]
    to = _number(request, "to") or latest
    from_ = _number(request, "from") or max(to - 1, 1)
    found = await prompt_api.diff(principal=viewer.principal, pool=pool, name=name, from_=from_, to=to)
    return render(request, "prompt_diff.html", viewer=viewer, page="prompts", name=name, diff=found,
                  numbers=[v["version"] for v in versions], lines=charts.diff_lines(found["template_diff"]))


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse, include_in_schema=False)
async def experiment(request: Request, viewer: Viewer, now: Now, experiment_id: str) -> HTMLResponse:
    viewer.require(Scope.PROMPTS_READ)
    pool = request.app.state.pool
    found = await experiment_api.get(principal=viewer.principal, pool=pool, experiment_id=experiment_id)
    report: dict[str, Any] | None = None
    waiting = None
    start, end = _instant(request, "from"), _instant(request, "to")
    if found["started_at"] is None and start is None:
        waiting = "The experiment has not started: its report begins when it starts (or give a range)."
    else:
        report = await experiment_api.report(principal=viewer.principal, pool=pool,
                                             settings=request.app.state.prompts_settings, now=now,
                                             experiment_id=experiment_id, from_=start, to=end)
    rows = {name: [{**m, "bar": charts.interval(m["ci95"][0], m["ci95"][1], m["difference"])
                    if m.get("ci95") else None} for m in metrics]
            for name, metrics in (report or {}).get("comparisons", {}).items()}
    return render(request, "experiment.html", viewer=viewer, page="prompts", experiment=found, report=report,
                  comparisons=rows, waiting=waiting)
