"""The judge's own token usage, as interaction events of the tenant, so that billing counts it.

One event per judgment that made HTTP calls (a cache hit spends nothing and produces none). It carries no
text: neither the judged interaction's nor the judge's. It is tagged `llmops:judge`, which evaluators skip
(`config.matches`), so the judge is never judged.

Its `event_id` is deterministic: `usage_event_id(tenant, judged event, evaluator, rubric version)`. The
worker publishes it after the judgment's row is committed and before the offsets are; a redelivered batch
re-publishes the very same event (rebuilt from the stored row), and billing, which keys its ledger on
`event_id`, counts it once. So billing counts one judgment per (tenant, event, evaluator, rubric version),
the same unit as the results table. The id is an HMAC of those under the operator's secret
(`LLMOPS_EVALUATOR_USAGE_ID_KEY`), not a plain UUIDv5: a tenant cannot compute the ids of its own future
judgments and send events under them first, so that billing would drop the judge's as already seen.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime

from llmops_evaluator.config import JUDGE_TAG, JudgeEndpoint
from llmops_evaluator.judge_client import JudgeResult
from llmops_shared.contract import ErrorInfo, Interaction, SpanKind, Status, Usage

JUDGE_APP_ID = "llmops-evaluator"
DEV_USAGE_ID_KEY = b"llmops-evaluator-dev-usage-id-key"  # the settings' default: set a secret of your own


def keyed_id(key: bytes, purpose: str, *parts: str) -> uuid.UUID:
    """A UUID (version bits 5) from HMAC-SHA-256 of `parts` under `key`: deterministic, unguessable without it.
    The parts are encoded as a JSON array, so ids containing separators cannot collide."""
    message = json.dumps([purpose, *parts], separators=(",", ":"), ensure_ascii=False).encode()
    return uuid.UUID(bytes=hmac.new(key, message, hashlib.sha256).digest()[:16], version=5)


def usage_event_id(tenant_id: str, judged_event_id: uuid.UUID, evaluator_id: str, rubric_ref: str, *,
                   key: bytes = DEV_USAGE_ID_KEY) -> uuid.UUID:
    """The usage event's id for one judgment: the same on every redelivery of the judged event."""
    return keyed_id(key, "usage", tenant_id, str(judged_event_id), evaluator_id, rubric_ref)


def judge_usage_event(*, event_id: uuid.UUID, judged: Interaction, evaluator_id: str, judge: JudgeEndpoint,
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
