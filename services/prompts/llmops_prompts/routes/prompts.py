"""Prompts, their versions, labels and diffs: `prompts:read` reads, `prompts:write` creates versions and
moves labels. Everything is the calling key's tenant's: another tenant's prompt is not found (404)."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import orjson
from fastapi import APIRouter, Path, Query, Response

from llmops_prompts import diff as diffs
from llmops_prompts import experiments as experiment_rules
from llmops_prompts import versions
from llmops_prompts.routes.deps import Served, Settings
from llmops_prompts.schemas import (
    Label,
    LabelHistory,
    LabelMove,
    LabelState,
    PromptCreate,
    PromptCreated,
    PromptDiff,
    PromptList,
    PromptServed,
    PromptVersion,
    Rendered,
    RenderRequest,
    VersionList,
)
from llmops_prompts.store import experiments as experiment_store
from llmops_prompts.store import prompts as store
from llmops_prompts.template import MissingVariables, render
from llmops_shared.deps import Pool, PromptsReader, PromptsWriter
from llmops_shared.problems import Invalid, NotFound

router = APIRouter(prefix="/v1/prompts", tags=["prompts"])

PromptName = Annotated[str, Path(description="the prompt's name")]


async def _version_view(db: asyncpg.Pool | asyncpg.Connection, row: dict[str, Any],
                        tenant_id: str) -> dict[str, Any]:
    return versions.view(row, await store.labels(db, tenant_id=tenant_id, name=row["name"]))


async def _must_exist(pool: asyncpg.Pool, tenant_id: str, name: str) -> None:
    if not await store.exists(pool, tenant_id=tenant_id, name=name):
        raise NotFound(f"no prompt {name!r}")


@router.post("", summary="Create a version of a prompt (the prompt too, on its first)", status_code=201,
             response_model=PromptCreated, responses={200: {"model": PromptCreated,
                                                            "description": "unchanged content: no new version"}})
async def create_version(*, principal: PromptsWriter, pool: Pool, settings: Settings, body: PromptCreate,
                         response: Response) -> dict[str, Any]:
    if body.type == "text" and not isinstance(body.template, str):
        raise Invalid("template", "a text prompt's template is a string")
    if body.type == "chat" and isinstance(body.template, str):
        raise Invalid("template", "a chat prompt's template is a list of messages")
    if "latest" in body.labels:
        raise Invalid("labels", "`latest` is automatic and cannot be set")
    template: Any = body.template if isinstance(body.template, str) else [m.model_dump() for m in body.template]
    if versions.template_chars(template) > settings.template_max_chars:
        raise Invalid("template", f"longer than {settings.template_max_chars} characters "
                      "(LLMOPS_PROMPTS_TEMPLATE_MAX_CHARS)")
    async with pool.acquire() as conn, conn.transaction():
        row, created = await store.create_version(
            conn, tenant_id=principal.tenant_id, name=body.name, type_=body.type, template=template,
            config=body.config, variables=versions.placeholders(template),
            content_hash=versions.content_hash(template, body.config), commit_message=body.commit_message,
            author=principal.key_id)
        for label in body.labels:
            await store.move_label(conn, tenant_id=principal.tenant_id, name=body.name, label=label,
                                   version=row["version"], moved_by=principal.key_id)
        view = await _version_view(conn, row, principal.tenant_id)
    if not created:
        response.status_code = 200
    return {**view, "created": created}


@router.get("", summary="The tenant's prompts, with their latest version and labels", response_model=PromptList)
async def list_prompts(*, principal: PromptsReader, pool: Pool) -> dict[str, Any]:
    rows = await store.list_prompts(pool, tenant_id=principal.tenant_id)
    return {"items": [{"name": r["name"], "type": r["type"], "latest_version": r["latest_version"],
                       "labels": {**orjson.loads(r["labels"]), "latest": r["latest_version"]},
                       "created_at": r["created_at"].isoformat()} for r in rows]}


@router.get("/{name}", summary="A prompt by label (default `production`) or version, for an app to use",
            response_model=PromptServed)
async def get_prompt(*, principal: PromptsReader, pool: Pool, served: Served, name: PromptName,
                     label: Annotated[Label | None, Query(description="default: production")] = None,
                     version: Annotated[int | None, Query(ge=1)] = None,
                     unit_id: Annotated[str | None, Query(max_length=256, description="assign this unit (a "
                                                          "user, session or trace id) to a running experiment's "
                                                          "variant, server-side")] = None) -> dict[str, Any]:
    if label is not None and version is not None:
        raise Invalid("version", "give a label or a version, not both", location="query")
    tenant = principal.tenant_id
    key = (tenant, name, f"version:{version}" if version is not None else f"label:{label or 'production'}")

    async def load() -> dict[str, Any] | None:
        return await _resolve(pool, tenant, name, label or "production", version)

    answer = await served.get(key, load)
    if answer is None:
        raise NotFound(f"no prompt {name!r} with {key[2].replace(':', ' ')}")
    if unit_id is not None and answer.get("experiment"):
        variant = experiment_rules.assigned(answer["experiment"], unit_id)
        if variant is not None:
            return {**variant["prompt"], "experiment": answer["experiment"], "variant": variant["name"]}
        return {**answer, "variant": experiment_rules.HOLDOUT}
    return answer


async def _resolve(pool: asyncpg.Pool, tenant: str, name: str, label: str,
                   version: int | None) -> dict[str, Any] | None:
    if version is None:
        version = await store.label_version(pool, tenant_id=tenant, name=name, label=label)
        if version is None:
            return None
    row = await store.get_version(pool, tenant_id=tenant, name=name, version=version)
    if row is None:
        return None
    labels = await store.labels(pool, tenant_id=tenant, name=name)
    out: dict[str, Any] = {**versions.view(row, labels), "experiment": None}
    running = await experiment_store.running(pool, tenant_id=tenant, prompt=name, label=label)
    if running is not None and label is not None:
        variants = []
        for variant in running["variants"]:
            number = variant.get("version") or labels.get(variant.get("label") or "")
            chosen = None if number is None else await store.get_version(pool, tenant_id=tenant, name=name,
                                                                         version=number)
            if chosen is not None:
                variants.append({"name": variant["name"], "weight": variant["weight"],
                                 "prompt": versions.view(chosen, labels)})
        if variants:
            out["experiment"] = {"id": running["id"], "unit": running["unit"], "holdout": running["holdout"],
                                 "variants": variants}
    return out


@router.get("/{name}/versions", summary="Every version of a prompt, newest first", response_model=VersionList)
async def list_versions(*, principal: PromptsReader, pool: Pool, name: PromptName) -> dict[str, Any]:
    await _must_exist(pool, principal.tenant_id, name)
    labels = await store.labels(pool, tenant_id=principal.tenant_id, name=name)
    rows = await store.list_versions(pool, tenant_id=principal.tenant_id, name=name)
    return {"items": [versions.view(r, labels) for r in rows]}


@router.get("/{name}/versions/{version}", summary="One version of a prompt", response_model=PromptVersion)
async def get_version(*, principal: PromptsReader, pool: Pool, name: PromptName,
                      version: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    row = await store.get_version(pool, tenant_id=principal.tenant_id, name=name, version=version)
    if row is None:
        raise NotFound(f"no version {version} of prompt {name!r}")
    return await _version_view(pool, row, principal.tenant_id)


@router.put("/{name}/labels/{label}", summary="Move a label to a version (null: remove it); recorded in the history",
            response_model=LabelState)
async def move_label(*, principal: PromptsWriter, pool: Pool, name: PromptName, label: Annotated[Label, Path()],
                     body: LabelMove) -> dict[str, Any]:
    if label == "latest":
        raise Invalid("label", "`latest` is automatic and cannot be moved", location="path")
    await _must_exist(pool, principal.tenant_id, name)
    async with pool.acquire() as conn, conn.transaction():
        if body.version is not None and await store.get_version(
                conn, tenant_id=principal.tenant_id, name=name, version=body.version) is None:
            raise Invalid("version", f"prompt {name!r} has no version {body.version}")
        await store.move_label(conn, tenant_id=principal.tenant_id, name=name, label=label, version=body.version,
                               moved_by=principal.key_id)
    return {"name": name, "label": label, "version": body.version}


@router.get("/{name}/labels/history", summary="Every label move of a prompt, newest first", response_model=LabelHistory)
async def label_history(*, principal: PromptsReader, pool: Pool, name: PromptName) -> dict[str, Any]:
    await _must_exist(pool, principal.tenant_id, name)
    rows = await store.label_history(pool, tenant_id=principal.tenant_id, name=name)
    return {"items": [{**dict(r), "moved_at": r["moved_at"].isoformat()} for r in rows]}


@router.get("/{name}/diff", summary="What changed between two versions", response_model=PromptDiff)
async def diff(*, principal: PromptsReader, pool: Pool, name: PromptName,
               from_: Annotated[int, Query(alias="from", ge=1)], to: Annotated[int, Query(ge=1)]) -> dict[str, Any]:
    rows = []
    for field, number in (("from", from_), ("to", to)):
        row = await store.get_version(pool, tenant_id=principal.tenant_id, name=name, version=number)
        if row is None:
            if not await store.exists(pool, tenant_id=principal.tenant_id, name=name):
                raise NotFound(f"no prompt {name!r}")
            raise Invalid(field, f"prompt {name!r} has no version {number}", location="query")
        rows.append(row)
    old, new = rows
    return {"name": name, "from_version": from_, "to_version": to,
            "template_diff": diffs.template_diff(old["template"], new["template"], old_name=f"{name}@{from_}",
                                                 new_name=f"{name}@{to}"),
            "config_changes": diffs.config_changes(old["config"], new["config"]),
            "variables_added": [v for v in new["variables"] if v not in old["variables"]],
            "variables_removed": [v for v in old["variables"] if v not in new["variables"]]}


@router.post("/{name}/render", summary="Fill a version's template with variables (what the SDK's compile() does)",
             response_model=Rendered)
async def render_prompt(*, principal: PromptsReader, pool: Pool, name: PromptName,
                        body: RenderRequest) -> dict[str, Any]:
    if body.label is not None and body.version is not None:
        raise Invalid("version", "give a label or a version, not both")
    number = body.version or await store.label_version(pool, tenant_id=principal.tenant_id, name=name,
                                                       label=body.label or "production")
    row = None if number is None else await store.get_version(pool, tenant_id=principal.tenant_id, name=name,
                                                              version=number)
    if row is None:
        which = f"version {body.version}" if body.version else f"label {body.label or 'production'}"
        raise NotFound(f"no prompt {name!r} with {which}")
    try:
        rendered = render(row["template"], body.variables)
    except MissingVariables as exc:
        raise Invalid(["variables", exc.names[0]], str(exc)) from exc
    return {"name": name, "version": row["version"], "type": row["type"], "rendered": rendered,
            "config": row["config"]}
