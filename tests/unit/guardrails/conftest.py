from __future__ import annotations

import pytest

from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.policy import Policy, default_policy
from llmops_guardrails.settings import GuardrailsSettings


@pytest.fixture(scope="session")
def engine() -> PolicyEngine:
    """One engine (and one spaCy model load) for the whole session."""
    return PolicyEngine(GuardrailsSettings(finding_hash_salt="test-salt"))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def policy() -> Policy:
    return default_policy()
