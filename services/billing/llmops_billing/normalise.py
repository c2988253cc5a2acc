"""Model and provider names, normalised to the keys the price catalogue is indexed by.

Apps report models the way their SDK or gateway spells them: `openai/gpt-4o`, `azure/gpt-4o`,
`bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0`, `vertex_ai/claude-3-5-sonnet-v2@20241022`,
`models/gemini-1.5-pro-002`, `Claude-3.5-Sonnet`. The catalogue is keyed by one canonical spelling, and a
look-up walks a short, ordered chain of candidate keys (`candidate_keys`):

1. exact: the name as given, trimmed and lower-cased;
2. normalised: provider/path prefixes, Bedrock region and vendor prefixes, Bedrock `-vN:M` suffixes and
   Vertex `@date` spellings removed; `claude-3.5-…` spelled `claude-3-5-…`;
3. undated: the normalised key without its snapshot suffix (`-2024-08-06`, `-20241022`, `-0125`, `-001`,
   `-09-2025`, `-05-20`) or its `-latest` alias suffix.

The catalogue then adds one more step (`PriceCatalogue`): when neither the normalised nor the undated key
is known at all, the newest dated snapshot of it that is (`o1` -> `o1-2024-12-17`,
`claude-3-7-sonnet-latest` -> `claude-3-7-sonnet-20250219`).

Fine-tuned models (`ft:gpt-4o-mini-2024-07-18:org::id`) are deliberately *not* mapped to their base
model: their price differs, so they stay unpriced until the catalogue has a row for them.

Pure functions, no I/O.
"""

from __future__ import annotations

import re
from datetime import date

# Provider names as SDKs, gateways and LiteLLM spell them -> the one spelling the catalogue uses.
_PROVIDER_ALIASES: dict[str, str] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "chatgpt": "openai",
    "azure": "azure",
    "azure_ai": "azure",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "anthropic": "anthropic",
    "bedrock": "bedrock",
    "bedrock_converse": "bedrock",
    "aws_bedrock": "bedrock",
    "aws": "bedrock",
    "vertex_ai": "vertex_ai",
    "vertex": "vertex_ai",
    "vertexai": "vertex_ai",
    "google_vertex": "vertex_ai",
    "gemini": "gemini",
    "google": "gemini",
    "google_ai_studio": "gemini",
    "google-genai": "gemini",
    "google_genai": "gemini",
    "googleai": "gemini",
    "xai": "xai",
    "x-ai": "xai",
    "x_ai": "xai",
    "grok": "xai",
    "deepseek": "deepseek",
    "mistral": "mistral",
    "mistralai": "mistral",
}

# Families spelled with a suffix in LiteLLM (`vertex_ai-language-models`, `bedrock_converse`, ...).
_PROVIDER_PREFIXES = ("vertex_ai", "bedrock", "azure")

# Which provider sells a model first-hand, by the model key's prefix: the preferred row when an event's
# provider has no row of its own.
_HOME_PROVIDERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gpt-", ("openai", "azure")),
    ("chatgpt-", ("openai",)),
    ("o1", ("openai", "azure")),
    ("o3", ("openai", "azure")),
    ("o4", ("openai", "azure")),
    ("codex-", ("openai",)),
    ("text-embedding-", ("openai", "azure")),
    ("claude-", ("anthropic", "bedrock", "vertex_ai")),
    ("gemini-", ("gemini", "vertex_ai")),
    ("grok-", ("xai",)),
    ("deepseek-", ("deepseek",)),
    ("mistral-", ("mistral",)),
)

_BEDROCK_REGION = re.compile(r"^(?:us|eu|apac|ap|au|ca|jp|global|us-gov)\.")
_BEDROCK_VENDOR = re.compile(
    r"^(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|writer|qwen|moonshot|google)\."
)
_BEDROCK_VERSION = re.compile(r"-v\d+:\d+$")
_VERTEX_AT = re.compile(r"^(?P<name>.+?)(?:-v\d+)?@(?P<version>[a-z0-9.-]+)$")
_CLAUDE_DOTTED = re.compile(r"(?<=\d)\.(?=\d)")

# Snapshot suffixes, most specific first. Each named group is checked to be a plausible date.
_DATED = (
    re.compile(r"^(?P<base>.+)-(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})$"),  # gpt-4o-2024-08-06
    re.compile(r"^(?P<base>.+)-(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$"),  # claude-3-5-sonnet-20241022
    re.compile(r"^(?P<base>.+)-(?P<m>\d{2})-(?P<y>\d{4})$"),  # gemini-2.5-flash-preview-09-2025
    re.compile(r"^(?P<base>.+)-(?P<m>\d{2})-(?P<d>\d{2})$"),  # gemini-2.5-flash-preview-05-20
    re.compile(r"^(?P<base>.+)-(?P<m>\d{2})(?P<d>\d{2})$"),  # gpt-3.5-turbo-0125, gpt-4-0613
    re.compile(r"^(?P<base>.+)-(?P<v>0\d\d)$"),  # gemini-1.5-pro-002 (Vertex versions start with 0)
)
_LATEST = re.compile(r"^(?P<base>.+)-latest$")


def normalise_provider(provider: str | None) -> str:
    """The catalogue's spelling of a provider; `""` when none is given."""
    if provider is None:
        return ""
    name = provider.strip().lower()
    if name in _PROVIDER_ALIASES:
        return _PROVIDER_ALIASES[name]
    for prefix in _PROVIDER_PREFIXES:
        if name.startswith(prefix):
            return prefix
    return name


def provider_of_prefix(model: str) -> str:
    """The provider named by a model's `provider/` prefix (`azure/gpt-4o` -> `azure`), or `""`."""
    name = model.strip().lower()
    if "/" not in name:
        return ""
    head = name.split("/", 1)[0]
    normalised = normalise_provider(head)
    known = set(_PROVIDER_ALIASES.values())
    return normalised if normalised in known else ""


def normalise_model(model: str, provider: str | None = None) -> str:
    """The canonical catalogue key of a model name (dated snapshots are kept: see `undated`).

    `provider` is accepted for symmetry with the look-up and future provider-specific spellings; the
    rules below do not need it today.
    """
    del provider
    name = model.strip().lower()
    if name.startswith("ft:"):
        return name  # fine-tuned: its own price, never the base model's
    if "/" in name:
        # openai/gpt-4o, azure/gpt-4o, gemini/gemini-2.0-flash, models/gemini-1.5-pro,
        # publishers/google/models/gemini-2.5-pro, bedrock/anthropic.claude-...
        name = name.rsplit("/", 1)[1]
    name = _BEDROCK_REGION.sub("", name)
    name = _BEDROCK_VENDOR.sub("", name)
    name = _BEDROCK_VERSION.sub("", name)
    match = _VERTEX_AT.match(name)
    if match:  # claude-3-5-sonnet-v2@20241022 -> claude-3-5-sonnet-20241022; gemini-1.0-pro@001 -> ...-001
        name = f"{match['name']}-{match['version']}"
    if name.startswith("claude-"):
        name = _CLAUDE_DOTTED.sub("-", name)  # claude-3.5-sonnet (OpenRouter) -> claude-3-5-sonnet
    return name


def undated(key: str) -> str | None:
    """The key without its snapshot or `-latest` suffix, or None when it has neither."""
    latest = _LATEST.match(key)
    if latest:
        return latest["base"]
    for pattern in _DATED:
        match = pattern.match(key)
        if match and _plausible(match.groupdict()):
            return match["base"]
    return None


def snapshot_order(key: str) -> tuple[int, int, int] | None:
    """A sortable (year, month, day) of a dated key's suffix, newest largest; None when it is not dated.

    Suffixes without a year (`-0613`) sort by month and day within year 0; Vertex versions (`-002`)
    by their number. Only used to pick the newest snapshot of one undated name.
    """
    if _LATEST.match(key):
        return None
    for pattern in _DATED:
        match = pattern.match(key)
        if match and _plausible(parts := match.groupdict()):
            if parts.get("v") is not None:
                return (0, 0, int(parts["v"] or 0))
            return (int(parts.get("y") or 0), int(parts.get("m") or 0), int(parts.get("d") or 0))
    return None


def candidate_keys(model: str, provider: str | None = None) -> list[str]:
    """Keys to try, in order: exact, normalised, undated (duplicates removed)."""
    exact = model.strip().lower()
    normalised = normalise_model(model, provider)
    keys = [exact, normalised]
    base = undated(normalised)
    if base is not None:
        keys.append(base)
    return list(dict.fromkeys(keys))


def home_providers(key: str) -> tuple[str, ...]:
    """Providers that sell the model first-hand, most preferred first (empty when not known)."""
    for prefix, providers in _HOME_PROVIDERS:
        if key.startswith(prefix):
            return providers
    return ()


def _plausible(parts: dict[str, str | None]) -> bool:
    if parts.get("v") is not None:
        return True
    month = int(parts["m"] or 0)
    day = int(parts.get("d") or 1)
    year_text = parts.get("y")
    if year_text is not None and not 2000 <= int(year_text) <= 2099:
        return False
    try:
        date(int(year_text or 2000), month, day)
    except ValueError:
        return False
    return True
