"""Configuration of the evaluator worker, API and CLI: `LLMOPS_EVALUATOR_*` variables (docs/configuration.md)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Self

from pydantic import SecretStr, model_validator

from llmops_evaluator.credentials import JudgeCredential, JudgeCredentials
from llmops_evaluator.retry import RetryPolicy
from llmops_shared.settings import ApiSettings, service_config
from llmops_shared.topics import EVALUATION_SCORES, INTERACTIONS_CLEAN, INTERACTIONS_RAW
from llmops_shared.worker import WorkerSettings


class EvaluatorSettings(WorkerSettings, ApiSettings):
    """The evaluator's settings (worker, API and CLI).

    Per-evaluator choices (rubrics, sampling, the judge, caps) live in the `evaluators` table, not here;
    these are the service-wide defaults of the judge call policy and of the stream worker.
    """

    model_config = service_config("evaluator")

    port: int = 8082
    """The evaluator API's port."""
    judge_max_attempts: int = 4
    """Judge calls: attempts per judgment (see `llmops_evaluator.retry.RetryPolicy`)."""
    judge_base_delay_s: float = 0.5
    """Judge calls: the first backoff."""
    judge_max_delay_s: float = 8.0
    """Judge calls: the longest backoff."""
    judge_retry_after_cap_s: float = 30.0
    """Judge calls: the longest `Retry-After` honoured."""
    judge_attempt_timeout_s: float = 30.0
    """Judge calls: the time limit of one attempt, in total (wall clock, not per read); then retried."""
    judge_deadline_s: float = 120.0
    """Judge calls: the time limit of one judgment, in total, retries and backoffs included; then an error."""
    judgment_cache_ttl_s: int = 7 * 24 * 3600
    """How long an identical judgment is answered from Redis."""
    credentials: dict[str, JudgeCredential] = {}  # noqa: RUF012 - pydantic copies field defaults
    """The judge credentials the operator grants, as JSON: `{"name": {"key_env": "VAR" (or, in a file only,
    "key": "..."), "base_urls": ["https://api.openai.com/v1"], "tenants": ["acme"] or ["*"]}}`. An
    evaluator names one in `judge.credential`; its key is sent only to those base URLs, for those tenants
    (docs/security.md)."""
    usage_id_key: SecretStr = SecretStr("llmops-evaluator-dev-usage-id-key")
    """The secret the judge's usage event ids are derived from (HMAC): stable, so a redelivery gets the same
    id; secret, so a tenant cannot send events under its future judgments' ids to escape billing."""
    credentials_file: Path | None = None
    """A JSON file of more credentials, the same shape (a name in both is refused): where a key may be
    written (`key`) rather than named (`key_env`)."""

    group: str = "llmops-evaluator"
    """The worker's consumer group."""
    topic: str = INTERACTIONS_CLEAN
    """What the worker judges: the redacted topic; `llm.interactions.raw` where guardrails do not run."""
    usage_topic: str = INTERACTIONS_RAW
    """Where the judge's own usage events go, for billing."""
    scores_topic: str = EVALUATION_SCORES
    """Where every judgment is published."""
    evaluators_refresh_s: float = 30.0
    """Evaluator configs are re-read before the next batch when they change (Postgres notification), and
    this often only while the worker's notification listener is disconnected."""
    judgments_per_slot: int = 2
    """Judgments in progress per evaluator, as a multiple of its HTTP cap (`max_concurrency`): enough to keep
    the cap busy while some judgments wait out a backoff, few enough that queued judgments do not eat into
    their own deadline."""
    batches_in_flight: int = 2
    """Two batches in flight: the next is judged while the one before finishes its slowest judgments."""
    consumer_max_poll_interval_s: int = 1800
    """Judging a batch is slow network I/O; the group must not evict a worker that is busy judging."""

    @model_validator(mode="after")
    def _credentials_file_reads(self) -> Self:
        self.judge_credentials()  # an unreadable file, a bad entry or a name declared twice fails at start-up
        return self

    def judge_credentials(self, *, environ: Mapping[str, str] | None = None) -> JudgeCredentials:
        """Every declared credential (the setting's and the file's, which is re-read when it changes); keys
        are read from `environ` when used."""
        return JudgeCredentials(self.credentials, environ=environ, file=self.credentials_file)

    def usage_id_secret(self) -> bytes:
        return self.usage_id_key.get_secret_value().encode()

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.judge_max_attempts, base_delay_s=self.judge_base_delay_s,
                           max_delay_s=self.judge_max_delay_s, retry_after_cap_s=self.judge_retry_after_cap_s,
                           attempt_timeout_s=self.judge_attempt_timeout_s, deadline_s=self.judge_deadline_s)
