"""The guardrails service: a pure policy engine (PII, secrets, prompt injection, banned terms, size limits,
output leaks) used by the stream worker and by the inline check API.

Entry point: `llmops_guardrails.engine.PolicyEngine`. Scores are in [0, 1], higher means riskier.
"""

from pathlib import Path as _Path

from llmops_guardrails.compiled import use_compiled as _use_compiled

# Before any compiled module can be imported: their C extensions run only if built from these very sources.
_use_compiled(_Path(__file__).parent)
