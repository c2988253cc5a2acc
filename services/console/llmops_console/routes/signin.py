"""`/login` and `/logout`. The key is sent once, in the sign-in form's body; the browser keeps only a session
cookie (httpOnly, SameSite=Strict), and the server keeps only the key's hash."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from llmops_console import sessions
from llmops_console.auth import CSRF_FIELD, CheckedForm
from llmops_console.routes.deps import render
from llmops_shared.apikeys import KeyStore, hash_key

router = APIRouter()


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", path="/",
                        secure=request.app.state.settings.secure_cookies)


def _form(request: Request, *, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    token = sessions.new_token()
    response = render(request, "login.html", status_code, login_csrf=token, error=error)
    _set_cookie(request, response, sessions.LOGIN_COOKIE, token, 600)
    return response


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_page(request: Request) -> HTMLResponse:
    return _form(request)


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    form = await request.form()
    sent, raw = form.get(CSRF_FIELD), form.get("api_key")
    key = raw.strip() if isinstance(raw, str) else ""
    if not isinstance(sent, str) or not sessions.same(sent, request.cookies.get(sessions.LOGIN_COOKIE)):
        return _form(request, error="The sign-in form expired; try again.", status_code=403)
    keystore: KeyStore = request.app.state.keystore
    principal = await keystore.resolve(key)
    if principal is None:
        return _form(request, error="This key is not valid (unknown or revoked).", status_code=401)
    settings = request.app.state.settings
    token, _ = await sessions.create(request.app.state.redis, key_hash=hash_key(key),
                                     ttl_s=settings.session_ttl_s)
    response = RedirectResponse("/", status_code=303)
    _set_cookie(request, response, sessions.COOKIE, token, None)
    response.delete_cookie(sessions.LOGIN_COOKIE, path="/")
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, _form: CheckedForm) -> Response:
    await sessions.delete(request.app.state.redis, request.cookies.get(sessions.COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response
