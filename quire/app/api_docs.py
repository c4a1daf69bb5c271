"""The API's documentation pages, Swagger UI at /docs and ReDoc at /redoc, served whole by Quire.

FastAPI's own pages load their scripts and styles from a CDN, so they are blank on a machine
without the internet. The same assets come here from the `fastapi-offline` package, served
under /docs/assets; nothing on either page reaches another host.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

from quire.agent.mcp.server import SERVED

# The OpenAPI document's description: what the operations below do not show.
API_DESCRIPTION = f"""\
Every request carries an API key as `Authorization: Bearer <key>` (`quire keys create`).

**MCP**: the same API serves the Model Context Protocol at `/mcp` (streamable HTTP, with the same
`Authorization: Bearer <key>` header): the tools {", ".join(f"`{name}`" for name in SERVED)},
run as the key's principal. `quire mcp` serves them over stdio. The endpoint is not an operation
of this document; `docs/mcp.md` in Quire's repository has copy-paste configuration for Claude
Desktop, Cursor and plain HTTP clients.
"""
DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
ASSETS_PATH = "/docs/assets"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
# Swagger UI checks a document with a public validator unless told not to: a request to another host.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}
# ReDoc shows its maker's logo from a CDN whatever its options say; the browser is told to fetch
# nothing from anywhere but Quire (the pages' own inline script and styles, and ReDoc's worker, aside).
SAME_ORIGIN_ONLY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:"
)


def assets_folder() -> Path:
    """Swagger UI's and ReDoc's scripts, styles and icon, as the installed package holds them."""
    return Path(str(resources.files("fastapi_offline") / "static"))


def mount_api_docs(app: FastAPI) -> None:
    """Serve the documentation pages of `app`, which must be built with docs_url=None, redoc_url=None."""
    app.mount(ASSETS_PATH, StaticFiles(directory=assets_folder()), name="api-docs-assets")

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{ASSETS_PATH}/{name}"

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url(request),
            title=f"{app.title} API",
            oauth2_redirect_url=OAUTH2_REDIRECT_PATH,
            swagger_js_url=asset(request, "swagger-ui-bundle.js"),
            swagger_css_url=asset(request, "swagger-ui.css"),
            swagger_favicon_url=asset(request, "favicon.png"),
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    @app.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url(request),
            title=f"{app.title} API",
            redoc_js_url=asset(request, "redoc.standalone.js"),
            redoc_favicon_url=asset(request, "favicon.png"),
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = SAME_ORIGIN_ONLY
        return page
