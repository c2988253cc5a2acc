"""Experiments on a prompt's label: create (a draft), start, stop, read. `prompts:write` changes them,
`prompts:read` reads them; another tenant's experiment is not found (404)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Query

from llmops_prompts import experiments as rules
from llmops_prompts.assignment import HOLDOUT
from llmops_prompts.report import build as build_report
from llmops_prompts.routes.deps import Settings
from llmops_prompts.schemas import Experiment, ExperimentCreate, ExperimentList, ExperimentReport, Name
from llmops_prompts.store import calls
from llmops_prompts.store import experiments as store
from llmops_prompts.store import prompts as prompt_store
from llmops_shared.deps import Now, Pool, PromptsReader, PromptsWriter
from llmops_shared.problems import Conflict, FieldError, Invalid, NotFound

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])

ExperimentId = Annotated[str, Path(description="the experiment's id")]


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "prompt": row["prompt_name"], "label": row["label"], "unit": row["unit"],
            "variants": row["variants"], "holdout": row["holdout"], "status": row["status"],
            "description": row["description"], "created_by": row["created_by"],
            "created_at": row["created_at"].isoformat(),
            "started_at": row["started_at"].isoformat() if row["started_at"] else None,
            "stopped_at": row["stopped_at"].isoformat() if row["stopped_at"] else None}


@router.post("", summary="Create an experiment (a draft: start it to split traffic)", status_code=201,
             response_model=Experiment)
async def create(*, principal: PromptsWriter, pool: Pool, body: ExperimentCreate) -> dict[str, Any]:
    tenant = principal.tenant_id
    if not await prompt_store.exists(pool, tenant_id=tenant, name=body.prompt):
        raise Invalid("prompt", f"no prompt {body.prompt!r}")
    labels = await prompt_store.labels(pool, tenant_id=tenant, name=body.prompt)
    versions = set(range(1, labels.get("latest", 0) + 1))
    variants = [v.model_dump(exclude_none=True) for v in body.variants]
    problems = rules.variant_problems(variants, labels, versions)
    if problems:
        error = Invalid(problems[0][0], problems[0][1])
        error.errors = [FieldError(loc=["body", *loc], msg=msg) for loc, msg in problems]
        raise error
    return _view(await store.insert(pool, tenant_id=tenant, experiment_id=body.id, prompt=body.prompt,
                                    label=body.label, unit=body.unit, variants=variants, holdout=body.holdout,
                                    description=body.description, created_by=principal.key_id))


@router.get("", summary="The tenant's experiments, newest first", response_model=ExperimentList)
async def list_experiments(*, principal: PromptsReader, pool: Pool,
                           prompt: Annotated[Name | None, Query()] = None) -> dict[str, Any]:
    return {"items": [_view(r) for r in await store.list_all(pool, tenant_id=principal.tenant_id, prompt=prompt)]}


async def _get(pool: Any, tenant: str, experiment_id: str) -> dict[str, Any]:
    row = await store.get(pool, tenant_id=tenant, experiment_id=experiment_id)
    if row is None:
        raise NotFound(f"no experiment {experiment_id!r}")
    return row


@router.get("/{experiment_id}", summary="One experiment", response_model=Experiment)
async def get(*, principal: PromptsReader, pool: Pool, experiment_id: ExperimentId) -> dict[str, Any]:
    return _view(await _get(pool, principal.tenant_id, experiment_id))


@router.post("/{experiment_id}/start", summary="Start splitting the label's callers (a draft only)",
             response_model=Experiment)
async def start(*, principal: PromptsWriter, pool: Pool, experiment_id: ExperimentId) -> dict[str, Any]:
    row = await store.start(pool, tenant_id=principal.tenant_id, experiment_id=experiment_id)
    if row is None:
        existing = await _get(pool, principal.tenant_id, experiment_id)
        raise Conflict(f"experiment {experiment_id!r} is {existing['status']}; only a draft starts")
    return _view(row)


@router.post("/{experiment_id}/stop", summary="Stop it: every caller gets the label's version again",
             response_model=Experiment)
async def stop(*, principal: PromptsWriter, pool: Pool, experiment_id: ExperimentId) -> dict[str, Any]:
    row = await store.stop(pool, tenant_id=principal.tenant_id, experiment_id=experiment_id)
    if row is None:
        existing = await _get(pool, principal.tenant_id, experiment_id)
        raise Conflict(f"experiment {experiment_id!r} is {existing['status']}; only a running one stops")
    return _view(row)


@router.get("/{experiment_id}/report", summary="Per variant calls, cost, judge scores, latency, errors and "
            "findings; differences with 95% intervals, verdicts, sample sizes, and the sample-ratio check",
            response_model=ExperimentReport)
async def report(*, principal: PromptsReader, pool: Pool, settings: Settings, now: Now,
                 experiment_id: ExperimentId,
                 from_: Annotated[datetime | None, Query(alias="from", description="default: when it started")] = None,
                 to: Annotated[datetime | None, Query(description="default: when it stopped, or now")] = None,
                 ) -> dict[str, Any]:
    experiment = await _get(pool, principal.tenant_id, experiment_id)
    start = from_ or experiment["started_at"]
    end = to or experiment["stopped_at"] or now
    if start is None:
        raise Invalid("from", "the experiment has not started; give `from`", location="query")
    if start.tzinfo is None or end.tzinfo is None:
        raise Invalid("from" if start.tzinfo is None else "to", "give a time zone (e.g. Z)", location="query")
    if end - start > rules.MAX_WINDOW:
        raise Invalid("from", f"a report covers at most {rules.MAX_WINDOW.days} days", location="query")
    variants = [(v["name"], float(v["weight"])) for v in experiment["variants"]]
    data = await calls.variant_data(pool, tenant_id=principal.tenant_id, prompt=experiment["prompt_name"],
                                    variants=[*(n for n, _ in variants), HOLDOUT], unit=experiment["unit"],
                                    start=start, end=end, now=now, parallel=settings.report_parallel_queries)
    seed = int.from_bytes(hashlib.sha256(experiment_id.encode()).digest()[:8], "big")  # the same data, the same report
    built = build_report(variants, data, holdout=experiment["holdout"], rng=np.random.default_rng(seed),
                         resamples=settings.report_bootstrap_samples)
    return {"experiment_id": experiment_id, "from": start.isoformat(), "to": end.isoformat(), **built}
