"""Token counts as providers and frameworks report them, mapped onto the contract's `usage`.

The contract counts every prompt token in `input_tokens`, cache reads and cache writes included, and
every completion token in `output_tokens`, reasoning included (billing prices `input_tokens -
cache_read_input_tokens - cache_write_input_tokens` at the input price and the cache counts at their own
prices). Providers differ:

- OpenAI (`prompt_tokens`, `completion_tokens`): the input includes `prompt_tokens_details.cached_tokens`;
  LiteLLM adds `cache_creation_input_tokens`.
- Anthropic (`input_tokens` with `cache_read_input_tokens`, `cache_creation_input_tokens`): the input
  **excludes** both cache counts, so they are added here.
- LangChain's `usage_metadata` (`input_token_details.cache_read` / `.cache_creation`): the input includes
  both.

Every function takes a mapping or an object with those attributes, returns the contract's dict (or None
when there is no count at all) and never raises. Counts are kept consistent with the contract's checks
(cache counts within the input, reasoning within the output) so an odd report never gets the event
refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["anthropic_usage", "any_usage", "get", "langchain_usage", "openai_usage"]


def get(obj: Any, name: str) -> Any:
    """`obj[name]` for a mapping, else `obj.name`; None when absent."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(obj: Any, *names: str) -> int:
    """The first of `names` in `obj` that holds a non-negative int (0 if none)."""
    for name in names:
        value = get(obj, name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return 0


def _has_any(obj: Any, *names: str) -> bool:
    return any(isinstance(get(obj, n), int) for n in names)


def _contract(input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0,
              reasoning: int = 0) -> dict[str, int]:
    input_tokens = max(input_tokens, cache_read + cache_write)
    output_tokens = max(output_tokens, reasoning)
    out = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    if cache_read:
        out["cache_read_input_tokens"] = cache_read
    if cache_write:
        out["cache_write_input_tokens"] = cache_write
    if reasoning:
        out["reasoning_tokens"] = reasoning
    return out


def openai_usage(usage: Any) -> dict[str, int] | None:
    """OpenAI's `usage` (and LiteLLM's, which is OpenAI's plus `cache_creation_input_tokens`)."""
    try:
        if usage is None or not _has_any(usage, "prompt_tokens", "completion_tokens"):
            return None
        prompt_details = get(usage, "prompt_tokens_details")
        cache_read = _count(prompt_details, "cached_tokens") or _count(usage, "cache_read_input_tokens")
        cache_write = _count(usage, "cache_creation_input_tokens") or _count(prompt_details, "cache_creation_tokens")
        reasoning = _count(get(usage, "completion_tokens_details"), "reasoning_tokens")
        return _contract(_count(usage, "prompt_tokens"), _count(usage, "completion_tokens"), cache_read,
                         cache_write, reasoning)
    except Exception:
        return None


def anthropic_usage(usage: Any) -> dict[str, int] | None:
    """Anthropic's `usage`: its `input_tokens` leave out the cache reads and writes, so they are added."""
    try:
        if usage is None or not _has_any(usage, "input_tokens", "output_tokens"):
            return None
        cache_read = _count(usage, "cache_read_input_tokens")
        cache_write = _count(usage, "cache_creation_input_tokens")
        return _contract(_count(usage, "input_tokens") + cache_read + cache_write, _count(usage, "output_tokens"),
                         cache_read, cache_write)
    except Exception:
        return None


def langchain_usage(usage_metadata: Any) -> dict[str, int] | None:
    """LangChain's `AIMessage.usage_metadata`: input already includes the cache counts."""
    try:
        if usage_metadata is None or not _has_any(usage_metadata, "input_tokens", "output_tokens"):
            return None
        details = get(usage_metadata, "input_token_details")
        return _contract(_count(usage_metadata, "input_tokens"), _count(usage_metadata, "output_tokens"),
                         _count(details, "cache_read"), _count(details, "cache_creation"),
                         _count(get(usage_metadata, "output_token_details"), "reasoning"))
    except Exception:
        return None


def any_usage(usage: Any) -> dict[str, int] | None:
    """A report of unknown make, told apart by its field names (see the module docstring)."""
    if usage is None:
        return None
    if _has_any(usage, "prompt_tokens", "completion_tokens"):
        return openai_usage(usage)
    if get(usage, "input_token_details") is not None or get(usage, "output_token_details") is not None:
        return langchain_usage(usage)
    return anthropic_usage(usage)  # input/output tokens, with or without Anthropic's cache counts
