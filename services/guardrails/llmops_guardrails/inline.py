"""The inline check (`POST /v1/check`): a prompt, before it is sent, against the tenant's policy.

Request: `{"text": "..."}` or `{"messages": [{"role": "user", "content": "..."}, ...]}`, optionally
`"output"` (a completion, to check it too), `"app_id"` (whose stored policy applies; default: the
tenant's) and `"policy"` (an override, YAML text or a mapping, applied on top of the stored ones:
default <- tenant <- app <- inline; handy to try a policy before storing it).

Response: `allowed` (false when a `block` rule fired), `action` (the strongest action taken: block >
redact > alert > allow), the redacted text (`redacted_text`, or `redacted_messages`; `redacted_output`),
and the findings, each with detector, entity type or rule name, the rule it triggered, its character
span (`start`, `end`) in its message, score, side and message index. Never a value, nor its hash.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from llmops_guardrails.engine import PolicyEngine, TextCheck
from llmops_guardrails.policies_service import EffectivePolicy, latest_documents
from llmops_guardrails.policy import load_policy, parse_document
from llmops_guardrails.screening import decision, strongest_rules
from llmops_guardrails.store import Executor
from llmops_shared.contract import ChatMessage

AppId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")]


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="a prompt as plain text")
    messages: list[ChatMessage] | None = Field(None, min_length=1, max_length=1000, description="chat messages")
    output: str | None = Field(None, description="a completion to check as well")
    app_id: AppId | None = Field(None, description="whose stored policy applies; default the tenant's")
    policy: str | dict[str, Any] | None = Field(
        None, description="an override (YAML or mapping) on top of the stored ones")

    @model_validator(mode="after")
    def _one_input(self) -> CheckRequest:
        if (self.text is None) == (self.messages is None):
            raise ValueError("give exactly one of 'text' and 'messages'")
        return self

    def chars(self) -> int:
        n = len(self.text or "") + len(self.output or "")
        return n + sum(len(m.text()) + sum(len(c.arguments) for c in m.tool_calls or []) for m in self.messages or [])


class CheckFinding(BaseModel):
    detector: str
    entity_type: str
    rule_id: str | None
    start: int
    end: int
    score: float
    side: Literal["input", "output"]
    message_index: int | None
    role: str


class TriggeredOut(BaseModel):
    rule_id: str
    action: str
    severity: str | None
    count: int


class CheckResponse(BaseModel):
    allowed: bool
    action: Literal["allow", "alert", "redact", "block"]
    policy_version: str
    redacted_text: str | None = None
    redacted_messages: list[ChatMessage] | None = None
    redacted_output: str | None = None
    findings: list[CheckFinding]
    triggered: list[TriggeredOut]


async def policy_for(*, db: Executor, store_effective: EffectivePolicy, tenant_id: str, app_id: str,
                     inline: str | dict[str, Any] | None) -> EffectivePolicy:
    """The stored effective policy, or with an inline override merged on top. Raises `PolicyError`."""
    if inline is None:
        return store_effective
    override = parse_document(inline, source="policy") if isinstance(inline, str) else inline
    stored = await latest_documents(db, [(tenant_id, app_id)])
    tenant, app = stored.get((tenant_id, "")), stored.get((tenant_id, app_id)) if app_id else None
    policy = load_policy(tenant.document if tenant else None, app.document if app else None, override)
    return EffectivePolicy(policy, f"{store_effective.version}+inline")


def response_of(check: TextCheck, request: CheckRequest, policy_version: str) -> CheckResponse:
    rules = strongest_rules(check)
    findings = [CheckFinding(detector=f.detector.value, entity_type=f.kind, rule_id=rules[i], start=f.start, end=f.end,
                             score=round(f.score, 4), side=f.side, message_index=f.message_index, role=f.role)
                for i, f in enumerate(check.findings)]
    triggered = [TriggeredOut(rule_id=t.rule_id, action=t.action.value,
                              severity=t.severity.value if t.severity else None, count=t.count)
                 for t in check.triggered]
    out = CheckResponse(allowed=not check.blocked, action=decision(check), policy_version=policy_version,
                        findings=findings, triggered=triggered)
    if request.text is not None:
        out.redacted_text = _as_text(check.input)
    else:
        out.redacted_messages = check.input if isinstance(check.input, list) else None
    if request.output is not None:
        out.redacted_output = _as_text(check.output)
    return out


def _as_text(content: str | list[ChatMessage] | None) -> str | None:
    if content is None or isinstance(content, str):
        return content
    return "\n".join(m.text() for m in content)


async def run_check(engine: PolicyEngine, request: CheckRequest, effective: EffectivePolicy) -> CheckResponse:
    """Scan in a thread: the event loop keeps answering while spaCy works."""
    content: str | list[ChatMessage] = request.text if request.text is not None else list(request.messages or [])
    check = await asyncio.to_thread(engine.check_text, content, effective.policy, output=request.output)
    return response_of(check, request, effective.version)
