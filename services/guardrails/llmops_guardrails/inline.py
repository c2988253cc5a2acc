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
import time
from typing import Any

from prometheus_client import Histogram

from llmops_guardrails.engine import PolicyEngine, TextCheck
from llmops_guardrails.policies_service import EffectivePolicy, InvalidPolicy, PolicyStore, latest_documents
from llmops_guardrails.policy import PolicyError, load_policy, parse_document
from llmops_guardrails.schemas import CheckFinding, CheckRequest, CheckResponse, CheckTriggered
from llmops_guardrails.screening import decision, strongest_rules
from llmops_guardrails.store import Executor
from llmops_shared import problems
from llmops_shared.contract import ChatMessage

CHECK_SECONDS = Histogram("llmops_guardrails_check_seconds", "POST /v1/check latency",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5))


class CheckTooLarge(problems.DomainError):
    """413: more characters than one check may send (`check_max_chars`)."""

    status = 413


async def check(db: Executor, *, engine: PolicyEngine, policies: PolicyStore, tenant_id: str, request: CheckRequest,
                max_chars: int, may_override: bool) -> CheckResponse:
    """The whole inline check: size limit, the effective policy (stored, cached; with the inline override
    on top), the scan. `CheckTooLarge`; `InvalidPolicy` (the `policy` field) for an override that does not
    validate; `Forbidden` for an override from a key that may not change policies (`may_override`: an
    inline policy carries tenant patterns and rules, as `PUT /v1/policy` does, so it needs `admin`)."""
    if request.policy is not None and not may_override:
        raise problems.Forbidden("an inline `policy` needs a key with the admin scope; "
                                 "a check key uses the stored policy")
    started = time.perf_counter()
    if request.chars() > max_chars:
        raise CheckTooLarge(f"at most {max_chars} characters per check")
    app_id = request.app_id or ""
    try:
        stored = await policies.one(db, tenant_id, app_id)
        effective = await policy_for(db, store_effective=stored, tenant_id=tenant_id, app_id=app_id,
                                     inline=request.policy)
    except PolicyError as exc:
        raise InvalidPolicy("policy", exc.errors) from exc
    result = await run_check(engine, request, effective)
    CHECK_SECONDS.observe(time.perf_counter() - started)
    return result


async def policy_for(db: Executor, *, store_effective: EffectivePolicy, tenant_id: str, app_id: str,
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
                             score=round(f.score, 4), side=f.side, message_index=f.message_index, role=f.role,
                             signals=list(f.signals))
                for i, f in enumerate(check.findings)]
    triggered = [CheckTriggered(rule_id=t.rule_id, action=t.action.value,
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
