from __future__ import annotations

import pytest

from llmops_guardrails.detectors.pii.detector import PiiDetector
from llmops_guardrails.engine import PolicyEngine
from tests.unit.guardrails.detectors.pii.pii_support import ENTITIES


@pytest.fixture(scope="module")
def detector(engine: PolicyEngine) -> PiiDetector:
    """The default policy's entities and phone regions."""
    return PiiDetector(engine.ner(), entities=ENTITIES, score_threshold=0.4,
                       phone_regions=["US", "GB", "DE", "FR", "IN", "CA", "AU"])
