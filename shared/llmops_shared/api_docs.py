"""Every API's reference pages, served by the API itself: Swagger UI at `/docs`, ReDoc at `/redoc`.

FastAPI's default pages load their scripts and styles from a public CDN, so on a machine without internet
access (many company networks) they render blank. These pages take the same files from this package
(`static/vendor/`, vendored from npm at pinned versions by `deploy/frontend/vendor.sh`), under
`/_static/`, and ask for no web fonts. A service builds its app with `docs_url=None, redoc_url=None`
(FastAPI's own pages off) and calls `install(app)`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

VENDOR = Path(__file__).parent / "static" / "vendor"
STATIC_PATH = "/_static"


def install(app: FastAPI) -> None:
    """Serve `/docs`, `/docs/oauth2-redirect` and `/redoc` from the vendored assets."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("build the app with docs_url=None, redoc_url=None: its CDN pages would shadow these")
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title
    app.mount(STATIC_PATH, StaticFiles(directory=VENDOR), name="vendor")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{title}: reference",
            swagger_js_url=f"{STATIC_PATH}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PATH}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PATH}/swagger-ui/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{title}: reference",
                              redoc_js_url=f"{STATIC_PATH}/redoc/redoc.standalone.js",
                              redoc_favicon_url=f"{STATIC_PATH}/swagger-ui/favicon-32x32.png",
                              with_google_fonts=False)
