"""`Scorer`: one evaluator's rubrics on one interaction, through the cache, the spend cap and the judge.

For each of the evaluator's rubrics, in order:
1. `rubric.missing(...)`: a rubric that lacks what it needs (context, reference) is `skipped`, no call;
2. the cache: an identical judgment answers with zero HTTP calls;
3. the spend cap: the estimated cost is reserved against today's budget, or the rubric is `skipped`;
4. the judge (retries, repair, concurrency cap: see `judge_client.py`); the reservation is settled to the cost;
5. the judge's usage is published as an interaction event of the tenant (`publish_usage`), *then*
6. an `ok` judgment is cached.

`score_rubric` does all six. The stream worker uses `evaluate_rubric` (steps 1-4, and the usage event built
but not sent) and does 5 and 6 itself after the batch's rows are committed (`remember` is step 6), so that
nothing leaves the worker for a judgment that is not stored.

Every path ends in a `JudgeResult`, so the worker writes one row per (event, evaluator, rubric version)
whatever happened: there is no silent gap. Whether the interaction is judged at all (`config.selects`) is
the worker's decision, made before.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from llmops_evaluator.cache import JudgmentCache, judgment_key
from llmops_evaluator.config import EvaluatorConfig
from llmops_evaluator.evaluations import Evaluation
from llmops_evaluator.judge_client import JudgeClient, JudgeResult, JudgeStatus
from llmops_evaluator.rubrics import Rubric, resolve_rubric
from llmops_evaluator.spend import JudgePrice, SpendLedger, cost_usd, estimate_cost_usd, spend_day
from llmops_evaluator.usage_events import DEV_USAGE_ID_KEY, judge_usage_event, usage_event_id
from llmops_shared.contract import Interaction

PublishUsage = Callable[[Interaction], Awaitable[None]]


class Scorer:
    def __init__(self, *, config: EvaluatorConfig, judge: JudgeClient, cache: JudgmentCache | None = None,
                 ledger: SpendLedger | None = None, publish_usage: PublishUsage | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 usage_id_key: bytes = DEV_USAGE_ID_KEY) -> None:
        self.config = config
        self.judge = judge
        self.cache = cache
        self.ledger = ledger
        self.publish_usage = publish_usage
        self.price = JudgePrice.of(config.judge)
        self.rubrics = [resolve_rubric(ref, config.custom_rubrics) for ref in config.rubrics]
        self._now = now
        self.usage_id_key = usage_id_key

    async def score(self, interaction: Interaction) -> list[Evaluation]:
        """All of the evaluator's rubrics on `interaction` (concurrently; the judge caps the calls)."""
        return list(await asyncio.gather(*(self.score_rubric(interaction, r) for r in self.rubrics)))

    async def score_rubric(self, interaction: Interaction, rubric: Rubric) -> Evaluation:
        """One rubric, all six steps: judged, usage published, then cached."""
        evaluation = await self.evaluate_rubric(interaction, rubric)
        if evaluation.usage_event is not None and self.publish_usage is not None:
            await self.publish_usage(evaluation.usage_event)
        await self.remember(evaluation)
        return evaluation

    async def evaluate_rubric(self, interaction: Interaction, rubric: Rubric, *,
                              usage_id: uuid.UUID | None = None) -> Evaluation:
        """Steps 1-4: the judgment and its usage event (not published, not cached yet).

        `usage_id` is the usage event's id; by default `usage_event_id(tenant, event, evaluator, rubric)`.
        """
        config = self.config

        def skipped(error_type: str, reason: str) -> Evaluation:
            result = JudgeResult(status=JudgeStatus.SKIPPED, rubric=rubric.ref, judge_model=config.judge.model,
                                 error_type=error_type, error=reason)
            return Evaluation(interaction, config.id, rubric, result)

        missing = rubric.missing(interaction)
        if missing is not None:
            return skipped("not_applicable", missing)
        messages = rubric.render(interaction)
        digest = judgment_key(judge_model=config.judge.model, rubric=rubric, messages=messages,
                              parameters=config.judge.parameters())
        if self.cache is not None:
            hit = await self.cache.get(config.tenant_id, digest)
            if hit is not None:
                return Evaluation(interaction, config.id, rubric, hit)

        reservation = None
        if self.ledger is not None:
            estimate = estimate_cost_usd(messages, config.judge.max_tokens, self.price)
            reservation = await self.ledger.reserve(config.tenant_id, config.id, spend_day(self._now()), estimate,
                                                    config.daily_spend_cap_usd)
            if reservation is None:
                return skipped("spend_cap", f"daily spend cap of {config.daily_spend_cap_usd} USD reached")
        # If the judge raises (a bug, not an endpoint failure), the reservation stays spent: conservative.
        result = await self.judge.judge(rubric, messages)
        if reservation is not None and self.ledger is not None:
            await self.ledger.settle(reservation, cost_usd(result.input_tokens, result.output_tokens, self.price))

        judged_at = self._now()
        event_id = usage_id or usage_event_id(config.tenant_id, interaction.event_id, config.id, rubric.ref,
                                              key=self.usage_id_key)
        usage_event = judge_usage_event(event_id=event_id, judged=interaction, evaluator_id=config.id,
                                        judge=config.judge, result=result, occurred_at=judged_at)
        return Evaluation(interaction, config.id, rubric, result, usage_event, cache_key=digest, judged_at=judged_at)

    async def remember(self, evaluation: Evaluation) -> None:
        """Step 6: cache an `ok` judgment (call it once its usage event is out)."""
        if self.cache is not None and evaluation.cache_key is not None:
            await self.cache.put(self.config.tenant_id, evaluation.cache_key, evaluation.result)
