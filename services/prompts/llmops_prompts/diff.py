"""The difference between two versions of a prompt: a unified diff of the template and the config's keys."""

from __future__ import annotations

import difflib
import json
from typing import Any

from llmops_prompts.template import Template


def template_lines(template: Template) -> list[str]:
    """A template as lines: a text prompt's own lines; a chat prompt's messages, each headed by its role."""
    if isinstance(template, str):
        return template.splitlines()
    lines: list[str] = []
    for message in template:
        lines.append(f"[{message.get('role', '?')}]")
        content = message.get("content")
        lines.extend(content.splitlines() if isinstance(content, str) else [json.dumps(content, sort_keys=True)])
    return lines


def template_diff(old: Template, new: Template, *, old_name: str, new_name: str) -> list[str]:
    return list(difflib.unified_diff(template_lines(old), template_lines(new), fromfile=old_name, tofile=new_name,
                                     lineterm=""))


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Each top-level config key that differs: `{key, old, new}` (a missing side is null), sorted by key."""
    return [{"key": key, "old": old.get(key), "new": new.get(key)}
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
