"""What a version is made of, and how it is shown: pure functions over its content."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from llmops_prompts.template import Template, variables


def content_hash(template: Template, config: dict[str, Any]) -> str:
    """The same template and config give the same hash (keys sorted), whatever the order they came in."""
    return hashlib.sha256(orjson.dumps({"template": template, "config": config},
                                       option=orjson.OPT_SORT_KEYS)).hexdigest()


def template_chars(template: Template) -> int:
    if isinstance(template, str):
        return len(template)
    return sum(len(m.get("content") or "") for m in template)


def placeholders(template: Template) -> list[str]:
    return variables(template)


def view(row: dict[str, Any], labels: dict[str, int]) -> dict[str, Any]:
    """A stored version as the API shows it, with the labels that point at it."""
    return {"name": row["name"], "type": row["type"], "version": row["version"], "template": row["template"],
            "config": row["config"], "variables": row["variables"],
            "labels": sorted(label for label, version in labels.items() if version == row["version"]),
            "commit_message": row["commit_message"], "author": row["author"],
            "created_at": row["created_at"].isoformat()}
