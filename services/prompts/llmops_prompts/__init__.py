"""LLMOps prompts: versioned prompts, labels, experiments and their reports (docs/prompts.md)."""
