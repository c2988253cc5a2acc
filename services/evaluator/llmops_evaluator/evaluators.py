"""Evaluators of a tenant: create, get, list, replace, disable; and the rubrics a tenant may rate on.

Keyword-only functions of a connection and the calling tenant; the SQL is `evaluator_store`'s. Ids are the
tenant's own: another tenant's evaluator looks exactly like one that does not exist (`NotFound`), and two
tenants may use the same id. A body that is not a valid config raises `Invalid` naming each bad field
(`["body", "judge", "temperature"]`, ...). A judge is checked against what the operator grants
(`credentials.JudgeAccess`) before it is stored: its credential must be granted to the tenant and be for its
`base_url` ("credential unavailable", whatever the reason), and the `base_url` must be a destination the
egress policy lets the worker reach ("destination not allowed").
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from pydantic import ValidationError

from llmops_evaluator import evaluator_store
from llmops_evaluator.config import EvaluatorConfig
from llmops_evaluator.credentials import CREDENTIAL_UNAVAILABLE, CredentialUnavailable, JudgeAccess
from llmops_evaluator.rubrics import (
    BUILTIN_NAMES,
    CustomRubricSpec,
    Rubric,
    custom_rubric,
    parse_rubric_ref,
    resolve_rubric,
)
from llmops_evaluator.schemas import EvaluatorPublic
from llmops_shared.egress import NOT_ALLOWED, DestinationNotAllowed
from llmops_shared.problems import Conflict, FieldError, Invalid, NotFound, validation_errors

log = logging.getLogger("llmops_evaluator.evaluators")


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


async def check_judge(config: EvaluatorConfig, *, judges: JudgeAccess) -> None:
    """`Invalid` unless the tenant may use the judge's credential with its `base_url`, and the worker may
    reach that `base_url`. What the tenant is told names no variable, no other tenant's credential, and not
    why a destination is refused; the operator's log says why."""
    errors: list[FieldError] = []
    try:
        judges.credentials.check(name=config.judge.credential, tenant_id=config.tenant_id,
                                 base_url=config.judge.base_url)
    except CredentialUnavailable as exc:
        log.warning("an evaluator names a credential it may not use", extra={
            "tenant_id": config.tenant_id, "evaluator_id": config.id, "reason": exc.reason})
        errors.append(FieldError(loc=["body", "judge", exc.field], msg=CREDENTIAL_UNAVAILABLE))
    try:
        await judges.egress.check_url(config.judge.base_url)
    except DestinationNotAllowed:
        if not errors or errors[0].loc[-1] != "base_url":
            errors.append(FieldError(loc=["body", "judge", "base_url"], msg=NOT_ALLOWED))
    if errors:
        raise _invalid(errors)


def _invalid_body(exc: ValidationError) -> Invalid:
    """`Invalid` naming every field the config got wrong (the shared `Invalid` names one: the rest are added)."""
    return _invalid(validation_errors([{**e, "loc": ("body", *e["loc"])}
                                       for e in exc.errors(include_url=False, include_input=False)]))


def _invalid(errors: list[FieldError]) -> Invalid:
    invalid = Invalid(errors[0].loc[1:], errors[0].msg)
    invalid.errors = errors
    invalid.detail = "; ".join(f"{'.'.join(str(p) for p in e.loc[1:]) or 'body'}: {e.msg}" for e in errors[:5])
    return invalid


def _public(row: asyncpg.Record) -> EvaluatorPublic:
    config = evaluator_store.config_json(row["config"])
    return EvaluatorPublic.model_validate({**config, "enabled": row["enabled"], "created_at": row["created_at"],
                                           "updated_at": row["updated_at"]})


async def create_evaluator(*, conn: asyncpg.Connection, tenant_id: str, body: dict[str, Any],
                           judges: JudgeAccess) -> EvaluatorPublic:
    config = config_from_body(body, tenant_id=tenant_id)
    await check_judge(config, judges=judges)
    row = await evaluator_store.insert_evaluator(conn=conn, config=config)
    if row is None:
        raise Conflict(f"you already have an evaluator {config.id!r}; PUT to replace it, or choose another id")
    return _public(row)


async def replace_evaluator(*, conn: asyncpg.Connection, tenant_id: str, evaluator_id: str,
                            body: dict[str, Any], judges: JudgeAccess) -> EvaluatorPublic:
    await get_evaluator(conn=conn, tenant_id=tenant_id, evaluator_id=evaluator_id)
    config = config_from_body(body, tenant_id=tenant_id, evaluator_id=evaluator_id)
    await check_judge(config, judges=judges)
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
