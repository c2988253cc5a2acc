"""What the evaluator API does, as functions of a connection and the calling tenant (routes stay thin).

Every function takes `tenant_id` and touches only that tenant's rows: another tenant's ids look exactly
like ids that do not exist (`NotFound`). Bad input the request models cannot check alone (a rubric the
tenant does not have, a score off its scale) raises `InvalidField` naming the field.

- evaluators: create, get, list, replace, disable (results keep referring to them);
- human feedback: a score on the rubric's scale or one of its labels, per (event, rubric, reviewer);
- the review queue: `next_review_item` hands out the most urgent pending item with a lock for N minutes
  (an item locked by someone else is skipped; an expired lock is taken over; the caller's own locked item
  comes back first), `submit_review` stores the feedback and completes the item;
- the agreement report between the judge and people on one rubric (`agreement.py`);
- judgment results, filtered, newest first, with keyset pagination.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError

from llmops_evaluator.agreement import Agreement, agreement
from llmops_evaluator.config import EvaluatorConfig
from llmops_evaluator.evaluator_store import save_evaluator
from llmops_evaluator.rubrics import (
    BUILTIN_NAMES,
    CustomRubricSpec,
    Rubric,
    custom_rubric,
    parse_rubric_ref,
    resolve_rubric,
)

Loc = tuple[str | int, ...]


class NotFound(LookupError):
    """No such thing for this tenant (whether it does not exist or is another tenant's)."""


class Conflict(RuntimeError):
    """The request contradicts the current state (an id taken, an item locked by someone else)."""


class InvalidField(ValueError):
    """Bad input for a field, found past the request model's own validation; `loc` names the field."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message

    def detail(self) -> list[dict[str, Any]]:
        return [{"type": "value_error", "loc": list(self.loc), "msg": self.message}]


class InvalidBody(ValueError):
    """A body that fails a pydantic model validated by hand (the evaluator config): FastAPI's 422 shape."""

    def __init__(self, exc: ValidationError, prefix: Loc = ("body",)) -> None:
        super().__init__(str(exc))
        self.errors = [{"type": e["type"], "loc": [*prefix, *e["loc"]], "msg": e["msg"]}
                       for e in exc.errors(include_url=False, include_input=False)]


# -- evaluators -------------------------------------------------------------------------------------


def _config_from_body(body: dict[str, Any], tenant_id: str, evaluator_id: str | None = None) -> EvaluatorConfig:
    if body.get("tenant_id", tenant_id) != tenant_id:
        raise InvalidField(("body", "tenant_id"), "must be omitted or be the API key's tenant")
    if evaluator_id is not None and body.get("id", evaluator_id) != evaluator_id:
        raise InvalidField(("body", "id"), "must be omitted or match the id in the path")
    raw = {**body, "tenant_id": tenant_id}
    if evaluator_id is not None:
        raw["id"] = evaluator_id
    try:
        return EvaluatorConfig.model_validate(raw)
    except ValidationError as exc:
        raise InvalidBody(exc) from exc


def _evaluator_view(row: asyncpg.Record) -> dict[str, Any]:
    config = _json(row["config"])
    return {**config, "enabled": row["enabled"], "created_at": row["created_at"], "updated_at": row["updated_at"]}


async def create_evaluator(conn: asyncpg.Connection, *, tenant_id: str, body: dict[str, Any]) -> dict[str, Any]:
    config = _config_from_body(body, tenant_id)
    row = await conn.fetchrow(
        """INSERT INTO evaluators (evaluator_id, tenant_id, config, enabled) VALUES ($1, $2, $3::jsonb, $4)
           ON CONFLICT (evaluator_id) DO NOTHING RETURNING *""",
        config.id, tenant_id, config.model_dump_json(), config.enabled)
    if row is None:
        raise Conflict(f"evaluator id {config.id!r} is taken; choose another, or PUT to replace yours")
    return _evaluator_view(row)


async def replace_evaluator(conn: asyncpg.Connection, *, tenant_id: str, evaluator_id: str,
                            body: dict[str, Any]) -> dict[str, Any]:
    await get_evaluator(conn, tenant_id=tenant_id, evaluator_id=evaluator_id)
    config = _config_from_body(body, tenant_id, evaluator_id)
    await save_evaluator(conn=conn, config=config)
    return await get_evaluator(conn, tenant_id=tenant_id, evaluator_id=evaluator_id)


async def get_evaluator(conn: asyncpg.Connection, *, tenant_id: str, evaluator_id: str) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM evaluators WHERE evaluator_id = $1 AND tenant_id = $2",
                              evaluator_id, tenant_id)
    if row is None:
        raise NotFound(f"no evaluator {evaluator_id!r}")
    return _evaluator_view(row)


async def list_evaluators(conn: asyncpg.Connection, *, tenant_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM evaluators WHERE tenant_id = $1 ORDER BY evaluator_id", tenant_id)
    return [_evaluator_view(r) for r in rows]


async def disable_evaluator(conn: asyncpg.Connection, *, tenant_id: str, evaluator_id: str) -> None:
    """Stop an evaluator (its results stay and keep referring to it); PUT with `enabled: true` restarts it."""
    done = await conn.fetchval(
        """UPDATE evaluators SET enabled = false, config = jsonb_set(config, '{enabled}', 'false'), updated_at = now()
           WHERE evaluator_id = $1 AND tenant_id = $2 RETURNING evaluator_id""", evaluator_id, tenant_id)
    if done is None:
        raise NotFound(f"no evaluator {evaluator_id!r}")


# -- rubrics and ratings ----------------------------------------------------------------------------


async def tenant_rubric(conn: asyncpg.Connection, *, tenant_id: str, ref: str, loc: Loc) -> Rubric:
    """A built-in rubric, or a custom rubric of one of the tenant's evaluators (enabled or not)."""
    try:
        name, version = parse_rubric_ref(ref)
        if name in BUILTIN_NAMES:
            return resolve_rubric(ref)
    except ValueError as exc:
        raise InvalidField(loc, str(exc)) from exc
    for row in await conn.fetch("SELECT config FROM evaluators WHERE tenant_id = $1", tenant_id):
        for spec in _json(row["config"]).get("custom_rubrics") or []:
            if spec.get("name") == name and int(spec.get("version", 1)) == version:
                return custom_rubric(CustomRubricSpec.model_validate(spec))
    raise InvalidField(loc, f"unknown rubric {ref!r}: not built in, nor a custom rubric of your evaluators")


def rating(rubric: Rubric, *, score: int | None, label: str | None) -> tuple[int, str]:
    """A person's rating as (score on the rubric's scale, label); either may be given, or both if they agree."""
    if score is None and label is None:
        raise InvalidField(("body", "score"), "give a score or a label")
    if score is not None and not rubric.scale_min <= score <= rubric.scale_max:
        raise InvalidField(("body", "score"),
                           f"must be an integer from {rubric.scale_min} to {rubric.scale_max} for {rubric.ref}")
    if label is not None and label not in rubric.labels:
        raise InvalidField(("body", "label"), f"must be one of {', '.join(rubric.labels)} for {rubric.ref}")
    raw = score if score is not None else rubric.scale_min + rubric.labels.index(label or "")
    if label is not None and rubric.label(raw) != label:
        raise InvalidField(("body", "label"), f"score {raw} is {rubric.label(raw)!r} on {rubric.ref}, not {label!r}")
    return raw, rubric.label(raw)


def scale_score(rubric: Rubric, normalised: float) -> int:
    """A stored normalised score back on the rubric's integer scale."""
    return round(rubric.scale_min + normalised * (rubric.scale_max - rubric.scale_min))


# -- human feedback ---------------------------------------------------------------------------------


def _feedback_view(row: asyncpg.Record, rubric: Rubric) -> dict[str, Any]:
    return {"id": row["id"], "event_id": row["event_id"], "rubric": row["rubric"],
            "score": scale_score(rubric, row["score"]), "normalised_score": row["score"], "label": row["label"],
            "reviewer": row["reviewer"], "comment": row["comment"], "created_at": row["created_at"],
            "updated_at": row["updated_at"]}


async def _save_feedback(conn: asyncpg.Connection, *, tenant_id: str, event_id: uuid.UUID, rubric: Rubric,
                         score: int | None, label: str | None, comment: str | None,
                         reviewer: str) -> tuple[dict[str, Any], bool]:
    raw, label = rating(rubric, score=score, label=label)
    row = await conn.fetchrow(
        """INSERT INTO human_feedback (tenant_id, event_id, rubric, score, label, comment, reviewer)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (tenant_id, event_id, rubric, reviewer) DO UPDATE SET score = EXCLUDED.score,
               label = EXCLUDED.label, comment = EXCLUDED.comment, updated_at = now()
           RETURNING *, (xmax = 0) AS created""",
        tenant_id, event_id, rubric.ref, rubric.normalise(raw), label, comment, reviewer)
    return _feedback_view(row, rubric), bool(row["created"])


async def submit_feedback(conn: asyncpg.Connection, *, tenant_id: str, event_id: uuid.UUID, rubric_ref: str,
                          score: int | None, label: str | None, comment: str | None,
                          reviewer: str) -> tuple[dict[str, Any], bool]:
    """Store (or replace) a reviewer's rating of a judged interaction. Returns (feedback, created)."""
    rubric = await tenant_rubric(conn, tenant_id=tenant_id, ref=rubric_ref, loc=("body", "rubric"))
    judged = await conn.fetchval("SELECT 1 FROM evaluation_results WHERE event_id = $1 AND tenant_id = $2 LIMIT 1",
                                 event_id, tenant_id)
    if judged is None:
        raise NotFound(f"no judged interaction {event_id}")
    return await _save_feedback(conn, tenant_id=tenant_id, event_id=event_id, rubric=rubric, score=score,
                                label=label, comment=comment, reviewer=reviewer)


# -- the review queue -------------------------------------------------------------------------------


def _item_view(row: asyncpg.Record) -> dict[str, Any]:
    return {key: row[key] for key in ("item_id", "event_id", "evaluator_id", "rubric", "reason", "priority",
                                      "status", "lock_owner", "lock_expires_at", "created_at", "completed_at",
                                      "completed_by")}


def _rubric_view(rubric: Rubric) -> dict[str, Any]:
    return {"ref": rubric.ref, "criteria": rubric.criteria, "steps": list(rubric.steps),
            "scale_min": rubric.scale_min, "scale_max": rubric.scale_max, "labels": list(rubric.labels)}


async def next_review_item(conn: asyncpg.Connection, *, tenant_id: str, reviewer: str, lock_minutes: int,
                           rubric: str | None = None, evaluator_id: str | None = None) -> dict[str, Any] | None:
    """Lock the next item for `reviewer` for `lock_minutes`, or None when nothing is available.

    The item the reviewer already holds comes first (asking again does not take a second one); then
    pending items nobody holds or whose lock expired, most urgent first. `SKIP LOCKED` keeps two callers
    from taking the same item at the same moment.
    """
    row = await conn.fetchrow(
        """
        WITH candidate AS (
            SELECT item_id FROM review_queue
            WHERE tenant_id = $1 AND status = 'pending'
              AND (lock_owner IS NULL OR lock_expires_at <= now() OR lock_owner = $2)
              AND ($3::text IS NULL OR rubric = $3) AND ($4::text IS NULL OR evaluator_id = $4)
            ORDER BY lock_owner IS NOT DISTINCT FROM $2 DESC, priority DESC, created_at, item_id
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        )
        UPDATE review_queue q SET lock_owner = $2, lock_expires_at = now() + make_interval(mins => $5)
        FROM candidate WHERE q.item_id = candidate.item_id
        RETURNING q.*
        """,
        tenant_id, reviewer, rubric, evaluator_id, lock_minutes)
    if row is None:
        return None
    view = _item_view(row)
    try:
        view["rubric_detail"] = _rubric_view(await tenant_rubric(conn, tenant_id=tenant_id, ref=row["rubric"],
                                                                 loc=("rubric",)))
    except InvalidField:
        view["rubric_detail"] = None  # an overall item, or a custom rubric since removed
    return view


async def submit_review(conn: asyncpg.Connection, *, tenant_id: str, item_id: int, reviewer: str,
                        score: int | None, label: str | None, comment: str | None) -> dict[str, Any]:
    """Store the reviewer's feedback for a locked item and complete it (one transaction)."""
    async with conn.transaction():
        row = await conn.fetchrow("SELECT * FROM review_queue WHERE item_id = $1 AND tenant_id = $2 FOR UPDATE",
                                  item_id, tenant_id)
        if row is None:
            raise NotFound(f"no review item {item_id}")
        if row["status"] != "pending":
            raise Conflict(f"review item {item_id} is already {row['status']}")
        if row["lock_owner"] != reviewer:
            if row["lock_owner"] is not None and not _expired(row):
                raise Conflict(f"review item {item_id} is locked by another reviewer")
            raise Conflict(f"review item {item_id} is not locked by {reviewer!r}; take one with POST /v1/review/next")
        rubric = await tenant_rubric(conn, tenant_id=tenant_id, ref=row["rubric"], loc=("path", "item_id"))
        feedback, _ = await _save_feedback(conn, tenant_id=tenant_id, event_id=row["event_id"], rubric=rubric,
                                           score=score, label=label, comment=comment, reviewer=reviewer)
        done = await conn.fetchrow(
            """UPDATE review_queue SET status = 'done', completed_at = now(), completed_by = $2, feedback_id = $3,
                   lock_owner = NULL, lock_expires_at = NULL
               WHERE item_id = $1 RETURNING *""", item_id, reviewer, feedback["id"])
    return {"item": _item_view(done), "feedback": feedback}


def _expired(row: asyncpg.Record) -> bool:
    expires: datetime | None = row["lock_expires_at"]
    return expires is None or expires <= datetime.now(expires.tzinfo)


# -- agreement --------------------------------------------------------------------------------------


def _stats(pairs: list[tuple[int, int]], rubric: Rubric) -> dict[str, Any]:
    result: Agreement = agreement([j for j, _ in pairs], [h for _, h in pairs],
                                  categories=list(range(rubric.scale_min, rubric.scale_max + 1)))
    return {"count": result.items, "percent_agreement": result.percent_agreement, "cohens_kappa": result.kappa,
            "weighted_kappa": result.weighted_kappa, "spearman": result.spearman}


async def agreement_report(conn: asyncpg.Connection, *, tenant_id: str, rubric_ref: str,
                           evaluator_id: str | None = None) -> dict[str, Any]:
    """Judge vs people on one rubric: one pair per (judged event, person's rating), on the rubric's scale."""
    rubric = await tenant_rubric(conn, tenant_id=tenant_id, ref=rubric_ref, loc=("query", "rubric"))
    rows = await conn.fetch(
        """SELECT r.evaluator_id, r.raw_score, f.score AS human_score
           FROM human_feedback f
           JOIN evaluation_results r ON r.event_id = f.event_id AND r.tenant_id = f.tenant_id
                AND r.rubric = $3 AND r.rubric_version = $4 AND r.status = 'ok'
           WHERE f.tenant_id = $1 AND f.rubric = $2 AND f.score IS NOT NULL
             AND ($5::text IS NULL OR r.evaluator_id = $5)
           ORDER BY r.evaluator_id, f.id""",
        tenant_id, rubric.ref, rubric.name, rubric.version, evaluator_id)
    by_evaluator: dict[str, list[tuple[int, int]]] = {}
    for row in rows:
        pair = (row["raw_score"], scale_score(rubric, row["human_score"]))
        by_evaluator.setdefault(row["evaluator_id"], []).append(pair)
    everything = [pair for pairs in by_evaluator.values() for pair in pairs]
    return {
        "rubric": rubric.ref, "scale": [rubric.scale_min, rubric.scale_max], "evaluator_id": evaluator_id,
        **_stats(everything, rubric),
        "by_evaluator": [{"evaluator_id": ev, **_stats(pairs, rubric)} for ev, pairs in by_evaluator.items()],
    }


# -- results ----------------------------------------------------------------------------------------

RESULT_STATUSES = frozenset({"ok", "unparseable", "error", "skipped"})
_RESULT_FIELDS = ("event_id", "evaluator_id", "rubric", "rubric_version", "tenant_id", "app_id", "occurred_at",
                  "status", "score", "raw_score", "label", "reasoning", "judge_model", "input_tokens",
                  "output_tokens", "attempts", "from_cache", "error_type", "error", "judged_at", "created_at",
                  "updated_at")


@dataclass(frozen=True)
class ResultFilter:
    event_id: uuid.UUID | None = None
    evaluator_id: str | None = None
    rubric: str | None = None  # a name, or name@version
    status: str | None = None
    since: datetime | None = None  # the judged interaction's time, inclusive
    until: datetime | None = None  # exclusive


def encode_cursor(row: dict[str, Any] | asyncpg.Record) -> str:
    key = [row["occurred_at"].isoformat(), str(row["event_id"]), row["evaluator_id"], row["rubric"],
           row["rubric_version"]]
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID, str, str, int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at, event_id, evaluator_id, rubric, version = raw
        return datetime.fromisoformat(at), uuid.UUID(event_id), str(evaluator_id), str(rubric), int(version)
    except (ValueError, TypeError) as exc:
        raise InvalidField(("query", "cursor"), "not a cursor this API returned") from exc


async def list_results(conn: asyncpg.Connection, *, tenant_id: str, filters: ResultFilter, limit: int,
                       cursor: str | None = None) -> dict[str, Any]:
    """A page of results, newest judged interaction first; `next_cursor` fetches the next page."""
    name, version = None, None
    if filters.rubric is not None:
        name, _, ver = filters.rubric.partition("@")
        if ver and not ver.isdigit():
            raise InvalidField(("query", "rubric"), "a rubric name, or name@version")
        version = int(ver) if ver else None
    if filters.status is not None and filters.status not in RESULT_STATUSES:
        raise InvalidField(("query", "status"), f"one of {', '.join(sorted(RESULT_STATUSES))}")
    after = decode_cursor(cursor) if cursor else None
    rows = await conn.fetch(
        f"""SELECT {", ".join(_RESULT_FIELDS)} FROM evaluation_results
            WHERE tenant_id = $1
              AND ($2::uuid IS NULL OR event_id = $2) AND ($3::text IS NULL OR evaluator_id = $3)
              AND ($4::text IS NULL OR rubric = $4) AND ($5::int IS NULL OR rubric_version = $5)
              AND ($6::text IS NULL OR status = $6)
              AND ($7::timestamptz IS NULL OR occurred_at >= $7) AND ($8::timestamptz IS NULL OR occurred_at < $8)
              AND ($9::timestamptz IS NULL
                   OR (occurred_at, event_id, evaluator_id, rubric, rubric_version) < ($9, $10, $11, $12, $13))
            ORDER BY occurred_at DESC, event_id DESC, evaluator_id DESC, rubric DESC, rubric_version DESC
            LIMIT $14""",  # noqa: S608 - constant column list; values are parameters
        tenant_id, filters.event_id, filters.evaluator_id, name, version, filters.status, filters.since,
        filters.until, *(after or (None, None, None, None, None)), limit + 1)
    items = [dict(r) for r in rows[:limit]]
    return {"items": items, "next_cursor": encode_cursor(rows[limit - 1]) if len(rows) > limit else None}


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
