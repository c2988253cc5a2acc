"""Who is looking, and whether a form really came from the console.

`Viewer` is the signed-in key's `Principal`, resolved again on every request from the session's key hash
(so a revoked key stops working here as it does on the APIs) and counted against the key's request rate
like any API call. Without a session: a redirect to `/login` (htmx: `HX-Redirect`). `checked_form` is every
state-changing action's gate: the form's (or htmx header's) CSRF token must be the session's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from llmops_console import sessions
from llmops_shared.apikeys import KeyStore, Principal, Scope
from llmops_shared.problems import DomainError, Forbidden
from llmops_shared.ratelimit import RateLimiter

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class SignInNeeded(Exception):
    """No session, an expired one, or its key revoked: go to the sign-in page."""


class TooManyRequests(DomainError):
    status = 429


@dataclass(frozen=True)
class Signed:
    principal: Principal
    session: sessions.Session

    def may(self, scope: Scope | str) -> bool:
        """Whether the key has `scope` (templates name it as text: `viewer.may("alerts:write")`)."""
        return self.principal.allows(Scope(scope))

    def require(self, scope: Scope) -> None:
        if not self.may(scope):
            raise Forbidden(f"this key lacks the scope {scope.value!r}")


async def _signed(request: Request) -> Signed:
    settings = request.app.state.settings
    session = await sessions.get(request.app.state.redis, request.cookies.get(sessions.COOKIE),
                                 ttl_s=settings.session_ttl_s)
    if session is None:
        raise SignInNeeded()
    keystore: KeyStore = request.app.state.keystore
    principal = await keystore.resolve_hash(session.key_hash)
    if principal is None:
        raise SignInNeeded()
    limiter: RateLimiter | None = getattr(request.app.state, "request_limiter", None)
    if limiter is not None:
        decision = await limiter.take(principal.key_id, 1)
        if not decision.allowed:
            raise TooManyRequests("request rate limit reached for this key",
                                  headers={"Retry-After": str(decision.retry_after_s)})
    request.state.csrf = session.csrf  # for the templates' forms
    return Signed(principal, session)


Viewer = Annotated[Signed, Depends(_signed)]


async def checked_form(request: Request, viewer: Viewer) -> FormData:
    """The posted form, once its CSRF token (field `csrf_token` or header `X-CSRF-Token`) is the session's;
    403 otherwise (nothing changes)."""
    form = await request.form()
    token = form.get(CSRF_FIELD)
    sent = token if isinstance(token, str) else request.headers.get(CSRF_HEADER)
    if not sessions.same(sent, viewer.session.csrf):
        raise Forbidden("missing or wrong CSRF token; reload the page and try again")
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]
