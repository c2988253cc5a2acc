"""Evaluators of a tenant: create, get, list, replace, disable; and the rubrics a tenant may rate on.

Keyword-only functions of a connection and the calling tenant; the SQL is `evaluator_store`'s. Another
tenant's evaluator looks exactly like one that does not exist (`NotFound`). A body that is not a valid
config raises `Invalid` naming each bad field (`["body", "judge", "api_key_env"]`, ...).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from pydantic import ValidationError

from llmops_evaluator import evaluator_store
from llmops_evaluator.config import EvaluatorConfig
from llmops_evaluator.rubrics import (
    BUILTIN_NAMES,
    CustomRubricSpec,
    Rubric,
    custom_rubric,
    parse_rubric_ref,
    resolve_rubric,
)
from llmops_evaluator.schemas import EvaluatorPublic
from llmops_shared.problems import Conflict, Invalid, NotFound, validation_errors


def config_from_body(body: dict[str, Any], *, tenant_id: str, evaluator_id: str | None = None) -> EvaluatorConfig:
    """The config a request body describes: `tenant_id` (and `id`, given the path's) may be omitted."""
    if body.get("tenant_id", tenant_id) != tenant_id:
        raise Invalid("tenant_id", "must be omitted or be the API key's tenant")
    if evaluator_id is not None and body.get("id", evaluator_id) != evaluator_id:
        raise Invalid("id", "must be omitted or match the id in the path")
    raw = {**body, "tenant_id": tenant_id}
    if evaluator_id is not None:
        raw["id"] = evaluator_id
    try:
        return EvaluatorConfig.model_validate(raw)
    except ValidationError as exc:
        raise _invalid_body(exc) from exc


def _invalid_body(exc: ValidationError) -> Invalid:
    """`Invalid` naming every field the config got wrong (the shared `Invalid` names one: the rest are added)."""
    errors = validation_errors([{**e, "loc": ("body", *e["loc"])}
                                for e in exc.errors(include_url=False, include_input=False)])
    invalid = Invalid(errors[0].loc[1:], errors[0].msg)
    invalid.errors = errors
    invalid.detail = "; ".join(f"{'.'.join(str(p) for p in e.loc[1:]) or 'body'}: {e.msg}" for e in errors[:5])
    return invalid


def _public(row: asyncpg.Record) -> EvaluatorPublic:
    config = evaluator_store.config_json(row["config"])
    return EvaluatorPublic.model_validate({**config, "enabled": row["enabled"], "created_at": row["created_at"],
                                           "updated_at": row["updated_at"]})


async def create_evaluator(*, conn: asyncpg.Connection, tenant_id: str, body: dict[str, Any]) -> EvaluatorPublic:
    config = config_from_body(body, tenant_id=tenant_id)
    row = await evaluator_store.insert_evaluator(conn=conn, config=config)
    if row is None:
        raise Conflict(f"evaluator id {config.id!r} is taken; choose another, or PUT to replace yours")
    return _public(row)


async def replace_evaluator(*, conn: asyncpg.Connection, tenant_id: str, evaluator_id: str,
                            body: dict[str, Any]) -> EvaluatorPublic:
    await get_evaluator(conn=conn, tenant_id=tenant_id, evaluator_id=evaluator_id)
    config = config_from_body(body, tenant_id=tenant_id, evaluator_id=evaluator_id)
    await evaluator_store.save_evaluator(conn=conn, config=config)
    return await get_evaluator(conn=conn, tenant_id=tenant_id, evaluator_id=evaluator_id)


async def get_evaluator(*, conn: asyncpg.Connection, tenant_id: str, evaluator_id: str) -> EvaluatorPublic:
    row = await evaluator_store.evaluator_row(conn=conn, tenant_id=tenant_id, evaluator_id=evaluator_id)
    if row is None:
        raise NotFound(f"no evaluator {evaluator_id!r}")
    return _public(row)


async def list_evaluators(*, conn: asyncpg.Connection, tenant_id: str) -> list[EvaluatorPublic]:
    return [_public(row) for row in await evaluator_store.evaluator_rows(conn=conn, tenant_id=tenant_id)]


async def disable_evaluator(*, conn: asyncpg.Connection, tenant_id: str, evaluator_id: str) -> None:
    """Stop an evaluator (its results stay and keep referring to it); PUT with `enabled: true` restarts it."""
    if not await evaluator_store.disable_evaluator(conn=conn, tenant_id=tenant_id, evaluator_id=evaluator_id):
        raise NotFound(f"no evaluator {evaluator_id!r}")


async def tenant_rubric(*, conn: asyncpg.Connection, tenant_id: str, ref: str, field: str,
                        location: str = "body") -> Rubric:
    """A built-in rubric, or a custom rubric of one of the tenant's evaluators (enabled or not).

    Anything else raises `Invalid` naming `field` (in `location`: body, query, path).
    """
    try:
        name, version = parse_rubric_ref(ref)
        if name in BUILTIN_NAMES:
            return resolve_rubric(ref)
    except ValueError as exc:
        raise Invalid(field, str(exc), location=location) from exc
    for config in await evaluator_store.tenant_configs(conn=conn, tenant_id=tenant_id):
        for spec in config.get("custom_rubrics") or []:
            if spec.get("name") == name and int(spec.get("version", 1)) == version:
                return custom_rubric(CustomRubricSpec.model_validate(spec))
    raise Invalid(field, f"unknown rubric {ref!r}: not built in, nor a custom rubric of your evaluators",
                  location=location)
