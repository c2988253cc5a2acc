"""Generators that tests and benchmarks share: valid events, fresh values the detectors must find, free ports.

Standard library only, so a benchmark imports them without importing the tests (`tests/support` and the
guardrails test helpers re-export them from here).
"""

from __future__ import annotations

import json
import random
import socket
import string
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from typing import Any


def make_event(**overrides: Any) -> dict[str, Any]:
    """One valid event as a producer sends it (no tenant_id: the API key sets it)."""
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC).isoformat(),
        "app_id": "support-bot",
        "environment": "test",
        "trace_id": f"tr-{uuid.uuid4().hex}",
        "span_id": f"sp-{uuid.uuid4().hex[:16]}",
        "span_kind": "llm",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input": [{"role": "system", "content": "You are a helpful support agent."},
                  {"role": "user", "content": "Where is my order?"}],
        "output": "It ships today.",
        "usage": {"input_tokens": 20, "output_tokens": 5},
        "latency_ms": 250.0,
        "status": "ok",
        "tags": ["test"],
        "metadata": {"source": "tests"},
    }
    event.update(overrides)
    return event


def luhn_card(prefix: str = "4", length: int = 16) -> str:
    """A card number that passes the Luhn check (Visa by default), fresh each call."""
    digits = [int(c) for c in prefix] + [random.randint(0, 9) for _ in range(length - len(prefix) - 1)]
    total = 0
    for i, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if i % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return "".join(map(str, [*digits, (10 - total % 10) % 10]))


def github_token() -> str:
    """A GitHub-style personal access token, fresh each call."""
    return "ghp_" + "".join(random.choice(string.ascii_letters + string.digits) for _ in range(36))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def litellm_price_table(models: Iterable[str]) -> dict[str, dict[str, Decimal]]:
    """Per-token prices of `models` straight from billing's built-in LiteLLM file, not through the catalogue
    code: the independent ground truth that ledger checks (tests, the chaos run) compare against."""
    raw = json.loads(resources.files("llmops_billing").joinpath("data", "builtin_litellm_prices.json").read_text(),
                     parse_float=Decimal)
    table = {}
    for model in models:
        entry = raw[model]
        table[model] = {
            "input": entry["input_cost_per_token"],
            "output": entry["output_cost_per_token"],
            "cache_read": entry.get("cache_read_input_token_cost", entry["input_cost_per_token"]),
            "cache_write": entry.get("cache_creation_input_token_cost", entry["input_cost_per_token"]),
            "reasoning": entry.get("output_cost_per_reasoning_token", entry["output_cost_per_token"]),
            "request": entry.get("input_cost_per_request", Decimal(0)),
        }
    return table
