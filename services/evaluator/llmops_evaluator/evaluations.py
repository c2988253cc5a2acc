"""`Evaluation`, one judgment of one interaction on one rubric, and what the worker makes of it (pure).

- `usage_id_for`: the id of a judgment's usage event: the same on every redelivery, a new one only when a
  judgment that already spent tokens is judged again (a failed one, replayed);
- `stored_evaluation`: an `ok` row already in Postgres as an `Evaluation`, its usage event rebuilt exactly as
  first published (a redelivered batch is not judged twice, and re-publishes the same events);
- `unavailable`: the explicit error result of an evaluator that cannot judge ("credential unavailable");
- `judge_dead_letter`: one dead letter for a message with failed judgments (`judge_error`);
- `score_message`: what goes to `evaluations.scores`;
- `review_reason`: whether a fresh judgment goes to the human review queue, and why.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from llmops_evaluator.config import REVIEW_SAMPLE, EvaluatorConfig, sampled
from llmops_evaluator.judge_client import JudgeResult, JudgeStatus
from llmops_evaluator.rubrics import Rubric
from llmops_evaluator.usage_events import DEV_USAGE_ID_KEY, judge_usage_event, keyed_id, usage_event_id
from llmops_shared.contract import Interaction
from llmops_shared.worker import DeadLetter, Message

JUDGE_ERROR = "judge_error"  # the dead-letter reason of a message whose judgment failed
FAILED = frozenset({JudgeStatus.ERROR, JudgeStatus.UNPARSEABLE})
_SCORE_NAMESPACE = uuid.UUID("e3a1c7b2-5f64-4c1e-9a0d-7b8c2d4e6f10")


@dataclass(frozen=True)
class Evaluation:
    """One interaction judged (or not: skipped, failed, cached, stored) by one evaluator on one rubric."""

    interaction: Interaction
    evaluator_id: str
    rubric: Rubric
    result: JudgeResult
    usage_event: Interaction | None = None
    cache_key: str | None = None  # the judgment's cache digest, when it was judged (not from the cache)
    judged_at: datetime | None = None  # when the judge answered (the usage event's time)
    stored: bool = False  # rebuilt from an `ok` row already in Postgres: not judged again

    @property
    def key(self) -> tuple[str, uuid.UUID, str, str, int]:
        """The result's primary key: (tenant, event, evaluator, rubric, rubric version)."""
        return (self.interaction.tenant_id, self.interaction.event_id, self.evaluator_id, self.rubric.name,
                self.rubric.version)


def usage_id_for(tenant_id: str, event_id: uuid.UUID, evaluator_id: str, rubric: Rubric,
                 previous: Mapping[str, Any] | None, *, key: bytes = DEV_USAGE_ID_KEY) -> uuid.UUID:
    """The usage event id of a judgment about to be made.

    `previous` is the row already stored for the same key (never `ok`: those are not judged again). If it
    published a usage event, the new judgment gets a new id derived from that one, so billing counts both
    calls; otherwise the base id. Deterministic either way: a redelivery before the new row commits gets
    the same id again.
    """
    previous_id = previous.get("usage_event_id") if previous is not None else None
    if previous_id is None:
        return usage_event_id(tenant_id, event_id, evaluator_id, rubric.ref, key=key)
    return keyed_id(key, "again", str(previous_id))


def stored_evaluation(interaction: Interaction, config: EvaluatorConfig, rubric: Rubric,
                      row: Mapping[str, Any]) -> Evaluation:
    """An `ok` row as the `Evaluation` it came from, with the same usage event (if it had one)."""
    result = JudgeResult(
        status=JudgeStatus.OK, rubric=rubric.ref, judge_model=row["judge_model"], score=row["score"],
        raw_score=row["raw_score"], label=row["label"], reasoning=row["reasoning"],
        input_tokens=row["input_tokens"], output_tokens=row["output_tokens"], attempts=row["attempts"],
        from_cache=row["from_cache"], latency_ms=row["latency_ms"] or 0.0,
    )
    judged_at: datetime = row["judged_at"] or row["updated_at"]
    usage_event = None
    if row["usage_event_id"] is not None:
        judge = config.judge.model_copy(update={"model": row["judge_model"]})
        usage_event = judge_usage_event(event_id=row["usage_event_id"], judged=interaction, evaluator_id=config.id,
                                        judge=judge, result=result, occurred_at=judged_at)
    return Evaluation(interaction, config.id, rubric, result, usage_event, judged_at=judged_at, stored=True)


def unavailable(interaction: Interaction, config: EvaluatorConfig, rubric: Rubric, problem: str) -> Evaluation:
    """The result for an evaluator whose judge cannot be set up: an explicit error, never a gap."""
    result = JudgeResult(status=JudgeStatus.ERROR, rubric=rubric.ref, judge_model=config.judge.model,
                         error_type="judge_unavailable", error=problem)
    return Evaluation(interaction, config.id, rubric, result)


def judge_dead_letter(message: Message, interaction: Interaction,
                      evaluations: Sequence[Evaluation]) -> DeadLetter | None:
    """One dead letter for `message` if any of its judgments failed (error or unparseable)."""
    failed = [e for e in evaluations if e.result.status in FAILED and not e.stored]
    if not failed:
        return None
    error = "; ".join(f"{e.evaluator_id} {e.rubric.ref}: {e.result.error_type}: {e.result.error or ''}".rstrip(": ")
                      for e in failed)
    return DeadLetter(message, JUDGE_ERROR, error[:2000], str(interaction.event_id), interaction.tenant_id)


def score_id(evaluation: Evaluation) -> uuid.UUID:
    """Stable per result key; the key's parts as a JSON array (ids may contain ':' and '/')."""
    tenant_id, event_id, evaluator_id, rubric, version = evaluation.key
    name = orjson.dumps([tenant_id, str(event_id), evaluator_id, f"{rubric}@{version}"]).decode()
    return uuid.uuid5(_SCORE_NAMESPACE, name)


def score_message(evaluation: Evaluation) -> bytes:
    """The `evaluations.scores` message of one result (no reasoning, no text). `score_id` is stable."""
    interaction, result = evaluation.interaction, evaluation.result
    return orjson.dumps({
        "score_id": str(score_id(evaluation)),
        "event_id": str(interaction.event_id),
        "tenant_id": interaction.tenant_id,
        "app_id": interaction.app_id,
        "environment": interaction.environment,
        "trace_id": interaction.trace_id,
        "evaluator_id": evaluation.evaluator_id,
        "rubric": evaluation.rubric.name,
        "rubric_version": evaluation.rubric.version,
        "status": result.status.value,
        "score": result.score,
        "raw_score": result.raw_score,
        "label": result.label,
        "judge_model": result.judge_model,
        "from_cache": result.from_cache,
        "error_type": result.error_type,
        "occurred_at": interaction.occurred_at.isoformat(),
        "judged_at": evaluation.judged_at.isoformat() if evaluation.judged_at else None,
    })


def review_reason(evaluation: Evaluation, config: EvaluatorConfig) -> tuple[str, int] | None:
    """(reason, priority) when a fresh `ok` judgment goes to the human review queue, else None."""
    result = evaluation.result
    if evaluation.stored or result.status is not JudgeStatus.OK or result.score is None:
        return None
    if config.review_below_score is not None and result.score < config.review_below_score:
        return "low_score", 10
    if sampled(evaluation.interaction.event_id, config.review_sample_rate, salt=REVIEW_SAMPLE):
        return "random_sample", 0
    return None
