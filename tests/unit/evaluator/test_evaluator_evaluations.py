"""The worker's pure steps: usage event ids, stored rows, dead letters, score messages, review reasons."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from llmops_evaluator.config import EvaluatorConfig
from llmops_evaluator.evaluations import (
    JUDGE_ERROR,
    Evaluation,
    judge_dead_letter,
    review_reason,
    score_message,
    stored_evaluation,
    unavailable,
    usage_id_for,
)
from llmops_evaluator.judge_client import JudgeResult, JudgeStatus
from llmops_evaluator.result_store import result_row
from llmops_evaluator.rubrics import BUILTIN
from llmops_evaluator.usage_events import judge_usage_event, usage_event_id
from llmops_shared.contract import Interaction
from llmops_shared.worker import Message
from tests.support.events import make_event

AT = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)  # the events' and rows' times: a fixed instant, not the clock

RELEVANCE = BUILTIN["relevance@1"]
SAFETY = BUILTIN["safety@1"]
EVENT = Interaction.model_validate({**make_event(), "tenant_id": "acme"})
MESSAGE = Message("llm.interactions.clean", 2, 41, b"trace", b"{}", 0)


def config(**overrides: Any) -> EvaluatorConfig:
    raw: dict[str, Any] = {
        "id": "ev-1", "tenant_id": "acme", "rubrics": ["relevance@1", "safety@1"],
        "judge": {"model": "judge-1", "base_url": "https://api.openai.com/v1", "credential": "openai"},
        "daily_spend_cap_usd": "5",
    }
    raw.update(overrides)
    return EvaluatorConfig.model_validate(raw)


def evaluation(status: JudgeStatus = JudgeStatus.OK, rubric: Any = RELEVANCE, event: Interaction = EVENT,
               **fields: Any) -> Evaluation:
    defaults: dict[str, Any] = {"score": 0.75, "raw_score": 4, "label": "mostly_relevant", "reasoning": "ok",
                                "input_tokens": 300, "output_tokens": 20, "attempts": 1, "latency_ms": 210.5}
    if status is not JudgeStatus.OK:
        defaults = {"error_type": "http_500", "error": "gave up after 4 failed attempts", "attempts": 4}
    result = JudgeResult(status=status, rubric=rubric.ref, judge_model="judge-1", **{**defaults, **fields})
    return Evaluation(event, "ev-1", rubric, result, judged_at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC))


def test_the_usage_event_id_is_the_same_on_every_redelivery_and_new_after_a_failure_that_spent_tokens() -> None:
    base = usage_event_id("acme", EVENT.event_id, "ev-1", "relevance@1")
    assert usage_id_for("acme", EVENT.event_id, "ev-1", RELEVANCE, None) == base
    assert usage_id_for("acme", EVENT.event_id, "ev-1", RELEVANCE, None) == base  # deterministic
    assert usage_id_for("acme", EVENT.event_id, "ev-1", RELEVANCE, {"usage_event_id": None}) == base  # not billed yet
    again = usage_id_for("acme", EVENT.event_id, "ev-1", RELEVANCE, {"usage_event_id": base})
    assert again != base
    assert usage_id_for("acme", EVENT.event_id, "ev-1", RELEVANCE, {"usage_event_id": base}) == again
    assert usage_id_for("acme", EVENT.event_id, "ev-1", RELEVANCE, {"usage_event_id": again}) not in {base, again}
    assert len({usage_event_id("acme", EVENT.event_id, ev, ref) for ev in ("ev-1", "ev-2")
                for ref in ("relevance@1", "relevance@2", "safety@1")}) == 6


def test_usage_event_ids_are_the_tenants_own_and_unguessable_without_the_operators_key() -> None:
    # Two tenants with the same evaluator id and (their own) events of the same id: two ids; ids that hold
    # separators do not collide either.
    assert usage_event_id("acme", EVENT.event_id, "ev-1", "relevance@1") != \
        usage_event_id("globex", EVENT.event_id, "ev-1", "relevance@1")
    assert usage_event_id("a:b", EVENT.event_id, "c", "relevance@1") != \
        usage_event_id("a", EVENT.event_id, "b:c", "relevance@1")
    # Derived under the operator's secret: the plain UUIDv5 a tenant could compute (and send first, so that
    # billing dropped the judge's usage as already seen) is not it, and another key gives other ids.
    plain = uuid.uuid5(uuid.UUID("5c0b5e1e-7d0f-4d8a-9a57-2f3f1e6b9c41"), f"{EVENT.event_id}:ev-1:relevance@1")
    ours = usage_event_id("acme", EVENT.event_id, "ev-1", "relevance@1", key=b"operator-secret")
    assert ours not in {plain, usage_event_id("acme", EVENT.event_id, "ev-1", "relevance@1")}
    assert ours == usage_event_id("acme", EVENT.event_id, "ev-1", "relevance@1", key=b"operator-secret")
    assert usage_id_for("acme", EVENT.event_id, "ev-1", RELEVANCE, {"usage_event_id": ours}, key=b"k1") != \
        usage_id_for("acme", EVENT.event_id, "ev-1", RELEVANCE, {"usage_event_id": ours}, key=b"k2")


def test_a_stored_ok_row_rebuilds_the_very_usage_event_first_published() -> None:
    usage_id = usage_event_id("acme", EVENT.event_id, "ev-1", RELEVANCE.ref)
    judged = evaluation()
    first = judge_usage_event(event_id=usage_id, judged=EVENT, evaluator_id="ev-1", judge=config().judge,
                              result=judged.result, occurred_at=judged.judged_at)
    assert first is not None
    row = {**vars(result_row(Evaluation(EVENT, "ev-1", RELEVANCE, judged.result, first,
                                        judged_at=judged.judged_at))), "updated_at": AT}
    rebuilt = stored_evaluation(EVENT, config(), RELEVANCE, row)
    assert rebuilt.stored and rebuilt.cache_key is None
    assert rebuilt.usage_event is not None and rebuilt.usage_event.to_json() == first.to_json()
    assert (rebuilt.result.score, rebuilt.result.label, rebuilt.result.status) == (0.75, "mostly_relevant",
                                                                                    JudgeStatus.OK)
    # A row answered from the cache spent nothing: no usage event to re-publish, even with an older id kept.
    cached = {**row, "from_cache": True, "input_tokens": 0, "output_tokens": 0, "attempts": 0}
    assert stored_evaluation(EVENT, config(), RELEVANCE, cached).usage_event is None


def test_failed_judgments_make_one_dead_letter_per_message_naming_each() -> None:
    assert judge_dead_letter(MESSAGE, EVENT, [evaluation(), evaluation(JudgeStatus.SKIPPED, error_type="spend_cap",
                                                                        error="cap")]) is None
    letter = judge_dead_letter(MESSAGE, EVENT, [
        evaluation(),
        evaluation(JudgeStatus.ERROR, rubric=SAFETY),
        evaluation(JudgeStatus.UNPARSEABLE, rubric=RELEVANCE, error_type="unparseable", error="not JSON"),
    ])
    assert letter is not None
    assert (letter.reason, letter.event_id, letter.tenant_id, letter.message) == (
        JUDGE_ERROR, str(EVENT.event_id), "acme", MESSAGE)
    assert letter.error == ("ev-1 safety@1: http_500: gave up after 4 failed attempts; "
                            "ev-1 relevance@1: unparseable: not JSON")
    unavailable_one = unavailable(EVENT, config(), SAFETY, "credential unavailable")
    assert unavailable_one.result.error_type == "judge_unavailable"
    assert judge_dead_letter(MESSAGE, EVENT, [unavailable_one]) is not None


def test_the_score_message_carries_no_text_and_a_stable_id() -> None:
    message = orjson.loads(score_message(evaluation()))
    assert message["event_id"] == str(EVENT.event_id) and message["tenant_id"] == "acme"
    assert (message["rubric"], message["rubric_version"], message["score"], message["raw_score"]) == \
        ("relevance", 1, 0.75, 4)
    assert "reasoning" not in message and "input" not in message and "output" not in message
    assert message["score_id"] == orjson.loads(score_message(evaluation(raw_score=4)))["score_id"]
    other = Interaction.model_validate({**make_event(), "tenant_id": "acme"})
    assert message["score_id"] != orjson.loads(score_message(evaluation(event=other)))["score_id"]
    same_id_other_tenant = EVENT.model_copy(update={"tenant_id": "globex"})  # event and evaluator ids alike
    assert message["score_id"] != orjson.loads(score_message(evaluation(event=same_id_other_tenant)))["score_id"]
    failed = orjson.loads(score_message(evaluation(JudgeStatus.ERROR)))
    assert (failed["status"], failed["score"], failed["error_type"]) == ("error", None, "http_500")


def test_review_reasons_low_scores_first_then_an_independent_sample() -> None:
    assert review_reason(evaluation(score=0.25, raw_score=2, label="mostly_irrelevant"),
                         config(review_below_score=0.5)) == ("low_score", 10)
    assert review_reason(evaluation(), config(review_below_score=0.5)) is None
    assert review_reason(evaluation(), config(review_sample_rate=1.0)) == ("random_sample", 0)
    assert review_reason(evaluation(JudgeStatus.ERROR), config(review_sample_rate=1.0)) is None
    stored = Evaluation(EVENT, "ev-1", RELEVANCE, evaluation().result, stored=True)
    assert review_reason(stored, config(review_sample_rate=1.0)) is None  # queued when first judged
    events = [Interaction.model_validate({**make_event(), "tenant_id": "acme"}) for _ in range(2000)]
    share = sum(review_reason(evaluation(event=e), config(review_sample_rate=0.2)) is not None
                for e in events) / len(events)
    assert 0.16 < share < 0.24
