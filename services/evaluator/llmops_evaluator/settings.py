from __future__ import annotations

from llmops_shared.settings import CommonSettings


class EvaluatorSettings(CommonSettings):
    """`LLMOPS_*` environment variables of the evaluator (worker and API).

    Per-evaluator choices (rubrics, sampling, the judge, caps) live in the `evaluators` table, not here;
    these are the service-wide defaults of the judge call policy.
    """

    host: str = "127.0.0.1"
    port: int = 8082
    # The judge call policy (see `llmops_evaluator.retry.RetryPolicy`).
    judge_max_attempts: int = 4
    judge_base_delay_s: float = 0.5
    judge_max_delay_s: float = 8.0
    judge_retry_after_cap_s: float = 30.0
    judge_attempt_timeout_s: float = 30.0
    judge_deadline_s: float = 120.0
    # How long an identical judgment is answered from Redis.
    judgment_cache_ttl_s: int = 7 * 24 * 3600
