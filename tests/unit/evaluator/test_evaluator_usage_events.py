from __future__ import annotations

import uuid
from datetime import UTC, datetime

from llmops_evaluator.config import JudgeSpec
from llmops_evaluator.judge_client import JudgeResult, JudgeStatus
from llmops_evaluator.usage_events import JUDGE_APP_ID, judge_usage_event
from llmops_shared.contract import Interaction, decode_interaction
from tests.support.events import make_event

JUDGE = JudgeSpec(model="gpt-4o-mini", base_url="https://api.openai.com/v1", credential="openai")
JUDGED = Interaction.model_validate({**make_event(environment="staging"), "tenant_id": "acme"})
WHEN = datetime(2025, 5, 1, tzinfo=UTC)


def result(**overrides: object) -> JudgeResult:
    fields: dict[str, object] = {"status": JudgeStatus.OK, "rubric": "relevance@1", "judge_model": "gpt-4o-mini",
                                 "score": 0.75, "raw_score": 4, "label": "mostly_relevant",
                                 "reasoning": "answers it", "input_tokens": 300, "output_tokens": 40,
                                 "attempts": 1, "latency_ms": 812.5}
    fields.update(overrides)
    return JudgeResult.model_validate(fields)


def test_the_judges_usage_is_an_interaction_of_the_tenant() -> None:
    event_id = uuid.uuid4()
    event = judge_usage_event(event_id=event_id, judged=JUDGED, evaluator_id="ev-1", judge=JUDGE,
                              result=result(), occurred_at=WHEN)
    assert event is not None
    assert decode_interaction(event.to_json()) == event  # valid on the wire
    assert (event.event_id, event.tenant_id, event.app_id, event.environment) == (event_id, "acme", JUDGE_APP_ID,
                                                                                  "staging")
    assert (event.provider, event.model, event.span_kind.value, event.status.value) == ("openai", "gpt-4o-mini",
                                                                                        "llm", "ok")
    assert event.usage is not None and (event.usage.input_tokens, event.usage.output_tokens) == (300, 40)
    assert event.tags == ["llmops:judge"]
    assert event.metadata == {"llmops.evaluator_id": "ev-1", "llmops.rubric": "relevance@1",
                              "llmops.judged_event_id": str(JUDGED.event_id), "llmops.judge_attempts": 1}


def test_it_carries_no_text() -> None:
    event = judge_usage_event(event_id=uuid.uuid4(), judged=JUDGED, evaluator_id="ev-1", judge=JUDGE,
                              result=result(), occurred_at=WHEN)
    assert event is not None and event.input is None and event.output is None
    wire = event.to_json().decode()
    assert "Where is my order" not in wire and "ships today" not in wire and "answers it" not in wire


def test_a_failed_judgment_that_spent_tokens_is_billed_as_an_error() -> None:
    event = judge_usage_event(event_id=uuid.uuid4(), judged=JUDGED, evaluator_id="ev-1", judge=JUDGE,
                              result=result(status=JudgeStatus.UNPARSEABLE, score=None, raw_score=None, label=None,
                                            reasoning=None, error_type="unparseable", error="not JSON"))
    assert event is not None and event.status.value == "error" and event.error is not None
    assert event.error.type == "unparseable" and event.error.message == ""


def test_nothing_spent_means_no_event() -> None:
    cached = result(from_cache=True, input_tokens=0, output_tokens=0, attempts=0)
    failed = result(status=JudgeStatus.ERROR, score=None, input_tokens=0, output_tokens=0, error_type="http_401")
    for r in (cached, failed):
        assert judge_usage_event(event_id=uuid.uuid4(), judged=JUDGED, evaluator_id="ev-1", judge=JUDGE,
                                 result=r) is None
