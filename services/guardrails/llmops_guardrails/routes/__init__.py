"""The guardrails API's routers, one per resource: `alerts`, `check`, `policies`, `channels`.

Routes are thin: they name their dependencies (`llmops_shared.deps`, `llmops_guardrails.deps`), call one
service function and return its response model. Errors are raised as `llmops_shared.problems` domain
errors in the services and answered once per app as RFC 9457 problem details.
"""
