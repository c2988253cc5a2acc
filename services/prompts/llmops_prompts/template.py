"""Prompt templates: `{{ name }}` placeholders, found and filled by a tiny pure renderer.

A placeholder is `{{`, optional spaces, an identifier (`[A-Za-z_][A-Za-z0-9_]*`), optional spaces, `}}`.
Nothing else is interpreted: no expressions, filters, attribute access or code, so a template cannot do
anything but have its placeholders replaced (sandboxed by construction). Text that only looks like a
placeholder (`{{ a.b }}`, `{{}}`, a lone `{{`) stays as it is. A variable without a value is an error
naming it (`MissingVariables`); a value nobody asked for is ignored. Values are inserted with `str()`,
once: a value that itself contains `{{ x }}` is not rendered again.

The SDK has the same renderer (`llmops_sdk.prompts`, standard library only); a test keeps them in step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

Template = str | list[dict[str, Any]]
"""A text prompt's string, or a chat prompt's messages (`{"role": ..., "content": ...}`)."""


class MissingVariables(ValueError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"missing variable{'s' if len(names) > 1 else ''}: {', '.join(names)}")
        self.names = names


def _texts(template: Template) -> list[str]:
    if isinstance(template, str):
        return [template]
    return [m["content"] for m in template if isinstance(m.get("content"), str)]


def variables(template: Template) -> list[str]:
    """The names the template uses, in order of first use."""
    seen: dict[str, None] = {}
    for text in _texts(template):
        for match in PLACEHOLDER.finditer(text):
            seen.setdefault(match.group(1), None)
    return list(seen)


def _fill(text: str, values: Mapping[str, Any]) -> str:
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def render(template: Template, values: Mapping[str, Any]) -> Template:
    """The template with every placeholder replaced; `MissingVariables` names every one without a value."""
    missing = [name for name in variables(template) if name not in values]
    if missing:
        raise MissingVariables(missing)
    if isinstance(template, str):
        return _fill(template, values)
    return [{**m, "content": _fill(m["content"], values)} if isinstance(m.get("content"), str) else dict(m)
            for m in template]
