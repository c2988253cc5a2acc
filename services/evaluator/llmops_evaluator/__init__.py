"""The evaluator: LLM-as-judge scores on production traffic (see docs/evaluator.md)."""
