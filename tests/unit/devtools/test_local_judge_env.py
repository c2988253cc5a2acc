"""The local stack's judge: the demo credential for the demo tenant and the fake LLM only, and one egress
allowance, the fake LLM's; Postgres, Redis, Kafka and the suite's APIs on the same loopback stay refused.
And its channel key: a development key made once and kept, unless the environment has one."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from llmops_devtools.demo import DEMO_CREDENTIAL, DEMO_KEY, DEMO_KEY_ENV, demo_judge_env
from llmops_devtools.stack.services import CHANNEL_KEYS_ENV, local_service_env
from llmops_evaluator.credentials import CredentialUnavailable
from llmops_evaluator.settings import EvaluatorSettings
from llmops_shared.egress import DestinationNotAllowed, EgressPolicy


def test_the_local_stack_grants_the_demo_credential_to_the_demo_tenant_for_the_fake_llm(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("LLMOPS_FAKE_LLM_PORT", "LLMOPS_EGRESS_ALLOW", "LLMOPS_EVALUATOR_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    env = local_service_env(tmp_path)
    assert env[DEMO_KEY_ENV] == DEMO_KEY and env["LLMOPS_EGRESS_ALLOW"] == "127.0.0.1:8099"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    credentials = EvaluatorSettings().judge_credentials()
    assert credentials.api_key(name=DEMO_CREDENTIAL, tenant_id="acme", base_url="http://127.0.0.1:8099/v1") == DEMO_KEY
    for tenant, url in (("globex", "http://127.0.0.1:8099/v1"), ("acme", "http://127.0.0.1:5432/v1")):
        with pytest.raises(CredentialUnavailable):
            credentials.api_key(name=DEMO_CREDENTIAL, tenant_id=tenant, base_url=url)


@pytest.mark.parametrize("port", [5432, 6379, 9092, 8080, 8081, 8082, 8083, 8084])
async def test_nothing_else_on_loopback_is_reachable(port: int, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.delenv("LLMOPS_EGRESS_ALLOW", raising=False)
    policy = EgressPolicy(local_service_env(tmp_path)["LLMOPS_EGRESS_ALLOW"])
    assert await policy.check_url("http://127.0.0.1:8099/v1")
    with pytest.raises(DestinationNotAllowed):
        await policy.check_url(f"http://127.0.0.1:{port}/")


def test_an_operators_own_declarations_are_kept_beside_the_demos() -> None:
    mine = {"mine": {"key_env": "MY_KEY", "base_urls": ["https://judge.example/v1"], "tenants": ["*"]}}
    env = demo_judge_env({"LLMOPS_EVALUATOR_CREDENTIALS": json.dumps(mine), "LLMOPS_EGRESS_ALLOW": "10.0.0.5:443",
                          "LLMOPS_FAKE_LLM_PORT": "8099"})
    assert set(json.loads(env["LLMOPS_EVALUATOR_CREDENTIALS"])) == {"mine", DEMO_CREDENTIAL}
    assert env["LLMOPS_EGRESS_ALLOW"] == "10.0.0.5:443,127.0.0.1:8099"


def test_the_local_stack_seals_channels_with_a_development_key_it_keeps(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    monkeypatch.delenv(CHANNEL_KEYS_ENV, raising=False)
    key = local_service_env(tmp_path)[CHANNEL_KEYS_ENV]
    Fernet(key)  # a valid key
    assert local_service_env(tmp_path)[CHANNEL_KEYS_ENV] == key  # the same on the next `llmops up`
    (path,) = tmp_path.iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.setenv(CHANNEL_KEYS_ENV, "the-operators-own")
    assert local_service_env(tmp_path)[CHANNEL_KEYS_ENV] == "the-operators-own"
