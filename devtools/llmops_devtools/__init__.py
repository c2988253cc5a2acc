"""Development tools of the LLMOps suite, in no service image: the local stack (`llmops up | down |
status`), the fake OpenAI-compatible LLM, the demo traffic (`llmops demo`) and the generators that
tests and benchmarks share (`llmops_devtools.testing`).

It may import the services, the shared package and the SDK; nothing in them imports it. Its commands
reach `llmops` as a plugin (`llmops_devtools.cli.PLUGIN`, see `llmops_shared.plugins`).
"""
