"""The guardrails service: a pure policy engine (PII, secrets, prompt injection, banned terms, size limits,
output leaks) used by the stream worker and by the inline check API.

Entry point: `llmops_guardrails.engine.PolicyEngine`. Scores are in [0, 1], higher means riskier.
"""
