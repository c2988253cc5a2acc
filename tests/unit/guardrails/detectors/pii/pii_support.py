"""Helpers of the PII detector's tests."""

from __future__ import annotations

from presidio_analyzer import RecognizerResult

from llmops_guardrails.detectors.pii.detector import PiiDetector

ENTITIES = ["PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"]


def found(detector: PiiDetector, text: str) -> list[tuple[str, str]]:
    return [(h.kind, text[h.start:h.end]) for h in detector.detect(text)]


def values(results: list[RecognizerResult], text: str, entity: str) -> list[str]:
    return [text[r.start:r.end] for r in results if r.entity_type == entity]
