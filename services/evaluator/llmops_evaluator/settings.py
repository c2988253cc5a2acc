from __future__ import annotations

from llmops_evaluator.retry import RetryPolicy
from llmops_shared.settings import api_port
from llmops_shared.topics import EVALUATION_SCORES, INTERACTIONS_CLEAN, INTERACTIONS_RAW
from llmops_shared.worker import WorkerSettings


class EvaluatorSettings(WorkerSettings):
    """`LLMOPS_*` environment variables of the evaluator (worker, API and CLI).

    Per-evaluator choices (rubrics, sampling, the judge, caps) live in the `evaluators` table, not here;
    these are the service-wide defaults of the judge call policy and of the stream worker.
    """

    host: str = "127.0.0.1"
    port: int = api_port(8082, "evaluator")  # LLMOPS_EVALUATOR_PORT
    # The judge call policy (see `llmops_evaluator.retry.RetryPolicy`).
    judge_max_attempts: int = 4
    judge_base_delay_s: float = 0.5
    judge_max_delay_s: float = 8.0
    judge_retry_after_cap_s: float = 30.0
    judge_attempt_timeout_s: float = 30.0
    judge_deadline_s: float = 120.0
    # How long an identical judgment is answered from Redis.
    judgment_cache_ttl_s: int = 7 * 24 * 3600

    # -- the stream worker ---------------------------------------------------------------------------
    # What it judges: the redacted topic by default; `llm.interactions.raw` where guardrails do not run.
    evaluator_source_topic: str = INTERACTIONS_CLEAN
    evaluator_group: str = "llmops-evaluator"
    usage_topic: str = INTERACTIONS_RAW  # the judge's own usage events, for billing
    scores_topic: str = EVALUATION_SCORES
    # Evaluator configs are re-read from Postgres this often (between batches).
    evaluators_refresh_s: float = 30.0
    # Judgments in progress per evaluator, as a multiple of its HTTP cap (`max_concurrency`): enough to keep
    # the cap busy while some judgments wait out a backoff, few enough that queued judgments do not eat
    # into their own deadline.
    judgments_per_slot: int = 2
    # Two batches in flight: the next is judged while the one before finishes its slowest judgments.
    batches_in_flight: int = 2
    # Judging a batch is slow network I/O; the group must not evict a worker that is busy judging.
    consumer_max_poll_interval_s: int = 1800

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.judge_max_attempts, base_delay_s=self.judge_base_delay_s,
                           max_delay_s=self.judge_max_delay_s, retry_after_cap_s=self.judge_retry_after_cap_s,
                           attempt_timeout_s=self.judge_attempt_timeout_s, deadline_s=self.judge_deadline_s)
