"""The evaluator API's routers, one per resource; `llmops_evaluator.api` assembles them.

Routes are thin: they read the request (the shared dependency aliases of `llmops_shared.deps`: the
caller's principal, a connection), call one service function, and return its model. Errors are raised by
the services as `llmops_shared.problems` domain errors and answered as problem details by the app.
"""

from __future__ import annotations

from typing import Any

from llmops_shared.problems import MEDIA_TYPE, Problem


def problem(description: str) -> dict[str, Any]:
    """A route's OpenAPI entry for an error status: the problem-details schema, and what it means here."""
    return {"model": Problem, "description": description, "content": {MEDIA_TYPE: {}}}
