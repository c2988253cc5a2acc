"""Judge credentials: granted by the operator to tenants, for endpoints; a tenant learns only "unavailable"."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import ValidationError

from llmops_evaluator.credentials import (
    CREDENTIAL_UNAVAILABLE,
    CREDENTIALS,
    CredentialUnavailable,
    JudgeCredentials,
    normal_url,
)
from llmops_evaluator.retry import classify
from llmops_evaluator.settings import EvaluatorSettings
from llmops_shared.egress import NOT_ALLOWED, DestinationNotAllowed

DECLARED = {
    "openai-shared": {"key_env": "OPENAI_JUDGE_KEY", "base_urls": ["https://api.openai.com/v1"], "tenants": ["*"]},
    "acme-gateway": {"key_env": "ACME_GATEWAY_KEY", "base_urls": ["https://llm.acme.example/v1/"],
                     "tenants": ["acme"]},
}
ENVIRON = {"OPENAI_JUDGE_KEY": "sk-shared", "ACME_GATEWAY_KEY": "sk-acme", "LLMOPS_DATABASE_URL": "postgresql://x"}


def credentials(environ: dict[str, str] | None = None) -> JudgeCredentials:
    return JudgeCredentials(CREDENTIALS.validate_python(DECLARED), environ=ENVIRON if environ is None else environ)


def test_a_tenant_gets_the_key_of_a_credential_granted_to_it_for_its_endpoint() -> None:
    creds = credentials()
    assert creds.api_key(name="acme-gateway", tenant_id="acme", base_url="https://LLM.acme.example:443/v1") == "sk-acme"
    assert creds.api_key(name="openai-shared", tenant_id="globex", base_url="https://api.openai.com/v1/") == \
        "sk-shared"


@pytest.mark.parametrize(("name", "tenant", "base_url", "field"), [
    ("acme-gateway", "globex", "https://llm.acme.example/v1", "credential"),  # bound to acme, not globex
    ("LLMOPS_DATABASE_URL", "acme", "https://attacker.example/v1", "credential"),  # not a credential at all
    ("OPENAI_JUDGE_KEY", "acme", "https://api.openai.com/v1", "credential"),  # a variable's name is not one
    ("acme-gateway", "acme", "https://attacker.example/v1", "base_url"),  # never sent elsewhere
    ("openai-shared", "acme", "http://api.openai.com/v1", "base_url"),  # nor over another scheme
    ("openai-shared", "acme", "https://api.openai.com:8443/v1", "base_url"),  # nor to another port
    ("openai-shared", "acme", "https://api.openai.com/v2", "base_url"),  # nor to another path
])
def test_every_refusal_says_only_credential_unavailable(name: str, tenant: str, base_url: str, field: str) -> None:
    with pytest.raises(CredentialUnavailable) as refused:
        credentials().api_key(name=name, tenant_id=tenant, base_url=base_url)
    assert str(refused.value) == CREDENTIAL_UNAVAILABLE and refused.value.field == field
    assert refused.value.reason  # the operator's log says why


def test_a_key_variable_that_is_not_set_is_unavailable_without_naming_it() -> None:
    with pytest.raises(CredentialUnavailable) as refused:
        credentials({}).api_key(name="openai-shared", tenant_id="acme", base_url="https://api.openai.com/v1")
    assert str(refused.value) == CREDENTIAL_UNAVAILABLE and "OPENAI_JUDGE_KEY" in refused.value.reason


@pytest.mark.parametrize(("declared", "words"), [
    ({"key_env": "K", "key": "sk", "base_urls": ["https://x/v1"], "tenants": ["*"]}, "exactly one"),
    ({"base_urls": ["https://x/v1"], "tenants": ["*"]}, "exactly one"),
    ({"key_env": "K", "base_urls": [], "tenants": ["*"]}, "base_urls"),
    ({"key_env": "K", "base_urls": ["ftp://x"], "tenants": ["*"]}, "not an http(s) URL"),
    ({"key_env": "K", "base_urls": ["https://u:p@x/v1"], "tenants": ["*"]}, "not an http(s) URL"),
    ({"key_env": "K", "base_urls": ["https://x/v1"], "tenants": []}, "tenants"),
    ({"key_env": "sk-live", "base_urls": ["https://x/v1"], "tenants": ["*"]}, "key_env"),
    ({"key_env": "K", "base_urls": ["https://x/v1"], "tenants": ["*"], "hosts": ["x"]}, "hosts"),
])
def test_bad_declarations_are_refused(declared: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words.replace("(", r"\(").replace(")", r"\)")):
        CREDENTIALS.validate_python({"c": declared})


def test_urls_compare_normalised() -> None:
    assert normal_url("HTTPS://Api.OpenAI.com:443/v1/") == normal_url("https://api.openai.com/v1")
    assert normal_url("http://127.0.0.1:8099/v1") != normal_url("http://127.0.0.1:8098/v1")
    assert normal_url("http://[::1]:80/v1") == "http://[::1]/v1"


def test_settings_read_credentials_from_json_and_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_EVALUATOR_CREDENTIALS", json.dumps({"openai-shared": DECLARED["openai-shared"]}))
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"inline": {"key": "sk-in-file", "base_urls": ["https://x.example/v1"],
                                           "tenants": ["acme"]}}))
    monkeypatch.setenv("LLMOPS_EVALUATOR_CREDENTIALS_FILE", str(path))
    settings = EvaluatorSettings()
    creds = settings.judge_credentials(environ=ENVIRON)
    assert creds.api_key(name="inline", tenant_id="acme", base_url="https://x.example/v1") == "sk-in-file"
    assert creds.api_key(name="openai-shared", tenant_id="acme", base_url="https://api.openai.com/v1") == "sk-shared"
    assert "sk-in-file" not in repr(settings.judge_credentials()._credentials)  # a key is a secret, never shown
    path.write_text(json.dumps({"openai-shared": DECLARED["openai-shared"]}))
    with pytest.raises(ValidationError, match="declared both"):
        EvaluatorSettings()


def test_a_destination_refused_at_connect_time_is_one_failure_type_retried_like_a_connection() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:5432/v1/chat/completions")
    refused = openai.APIConnectionError(request=request)
    refused.__cause__ = DestinationNotAllowed("127.0.0.1:5432 is loopback")
    failure = classify(refused)
    assert failure is not None and (failure.error_type, failure.message, failure.retryable) == (
        "destination_not_allowed", NOT_ALLOWED, True)
    assert "5432" not in failure.message and "loopback" not in failure.message
