"""The judge's own token usage, as interaction events of the tenant, so that billing counts it.

One event per judgment that made HTTP calls (a cache hit spends nothing and produces none). It carries no
text: neither the judged interaction's nor the judge's. It is tagged `llmops:judge`, which evaluators skip
(`config.matches`), so the judge is never judged.

Its `event_id` is new for each judgment that spent tokens. The scorer publishes it *before* the judgment
goes into the cache: a redelivered event answered from the cache spent nothing and publishes nothing, and
a crash between the publish and the cache write re-judges (and bills the new call) rather than losing the
usage of the first.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from llmops_evaluator.config import JUDGE_TAG, JudgeSpec
from llmops_evaluator.judge import JudgeResult
from llmops_shared.contract import ErrorInfo, Interaction, SpanKind, Status, Usage

JUDGE_APP_ID = "llmops-evaluator"


def judge_usage_event(*, event_id: uuid.UUID, judged: Interaction, evaluator_id: str, judge: JudgeSpec,
                      result: JudgeResult, occurred_at: datetime | None = None) -> Interaction | None:
    """The usage event for `result`, or None when it spent no tokens (cache hit, skipped, no answer)."""
    if result.from_cache or (result.input_tokens == 0 and result.output_tokens == 0):
        return None
    failed = result.status.value in {"error", "unparseable"}
    return Interaction(
        event_id=event_id,
        occurred_at=occurred_at or datetime.now(UTC),
        tenant_id=judged.tenant_id,
        app_id=JUDGE_APP_ID,
        environment=judged.environment,
        trace_id=f"llmops-eval:{judged.event_id}",
        span_id=f"judge:{event_id.hex[:16]}",
        span_kind=SpanKind.LLM,
        name=f"judge {result.rubric}",
        provider=judge.provider,
        model=judge.model,
        usage=Usage(input_tokens=result.input_tokens, output_tokens=result.output_tokens),
        latency_ms=result.latency_ms,
        status=Status.ERROR if failed else Status.OK,
        error=ErrorInfo(type=result.error_type or result.status.value) if failed else None,
        tags=[JUDGE_TAG],
        metadata={
            "llmops.evaluator_id": evaluator_id,
            "llmops.rubric": result.rubric,
            "llmops.judged_event_id": str(judged.event_id),
            "llmops.judge_attempts": result.attempts,
        },
    )
