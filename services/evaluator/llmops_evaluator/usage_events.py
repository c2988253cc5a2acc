"""The judge's own token usage, as interaction events of the tenant, so that billing counts it.

One event per judgment that made HTTP calls (a cache hit spends nothing and produces none). It carries no
text: neither the judged interaction's nor the judge's. It is tagged `llmops:judge`, which evaluators skip
(`config.matches`), so the judge is never judged.

Its `event_id` is deterministic: `usage_event_id(judged event, evaluator, rubric version)`, a UUIDv5. The
worker publishes it after the judgment's row is committed and before the offsets are; a redelivered batch
re-publishes the very same event (rebuilt from the stored row), and billing, which keys its ledger on
`event_id`, counts it once. So billing counts one judgment per (event, evaluator, rubric version), the same
unit as the results table.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from llmops_evaluator.config import JUDGE_TAG, JudgeSpec
from llmops_evaluator.judge_client import JudgeResult
from llmops_shared.contract import ErrorInfo, Interaction, SpanKind, Status, Usage

JUDGE_APP_ID = "llmops-evaluator"
_USAGE_NAMESPACE = uuid.UUID("5c0b5e1e-7d0f-4d8a-9a57-2f3f1e6b9c41")


def usage_event_id(judged_event_id: uuid.UUID, evaluator_id: str, rubric_ref: str) -> uuid.UUID:
    """The usage event's id for one judgment: the same on every redelivery of the judged event."""
    return uuid.uuid5(_USAGE_NAMESPACE, f"{judged_event_id}:{evaluator_id}:{rubric_ref}")


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
