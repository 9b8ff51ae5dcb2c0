"""OpenAPI: every documented error is problem+json; Swagger UI without a CDN."""

from __future__ import annotations

from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from ._problem import PROBLEM_CONTENT_TYPE

__all__ = ["install_docs", "install_openapi"]

_DOC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}

_ALWAYS = {
    "400": "Malformed request",
    "413": "Request body too large",
    "422": "A field failed validation (the body names it)",
    "429": "Rate limit exceeded",
    "500": "Unexpected error (no internals; quote the request id)",
}
_SECURED = {"401": "Missing or invalid credentials", "403": "Missing scope or role"}


def _problem_ref() -> dict[str, Any]:
    return {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def install_openapi(
    app: FastAPI, *, token_url: str, scopes: dict[str, str], extra_statuses: dict[str, str]
) -> None:
    """Replace ``app.openapi`` with one that documents problem+json errors and scopes."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Problem"] = _PROBLEM_SCHEMA
        components["schemas"].pop("HTTPValidationError", None)
        components["schemas"].pop("ValidationError", None)
        schemes = components.setdefault("securitySchemes", {})
        if "OAuth2" in schemes:
            # Programs may send an API key wherever a bearer token is accepted.
            schemes.setdefault("APIKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
            for path_item in schema.get("paths", {}).values():
                for operation in path_item.values():
                    if not isinstance(operation, dict):
                        continue
                    security = operation.get("security") or []
                    for requirement in list(security):
                        if "OAuth2" in requirement and {"APIKey": []} not in security:
                            security.append({"APIKey": []})
        for scheme in schemes.values():
            flows = scheme.get("flows", {})
            if "password" in flows:
                flows["password"]["tokenUrl"] = token_url
                flows["password"]["scopes"] = dict(scopes)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                documented = dict(_ALWAYS)
                if operation.get("security"):
                    documented.update(_SECURED)
                documented.update(extra_statuses)
                for status, text in documented.items():
                    responses.setdefault(status, {"description": text})
                # Errors a route declares itself (404, 409...) are problem+json too.
                for status, entry in responses.items():
                    if status[:1] in ("4", "5"):
                        entry["content"] = _problem_ref()
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_docs(app: FastAPI, *, enabled: bool, token_url: str) -> None:
    """Serve ``/openapi.json`` and Swagger UI from local assets, or nothing at all."""
    app.router.routes = [
        route for route in app.router.routes if getattr(route, "path", None) not in _DOC_PATHS
    ]
    if not enabled:
        return
    static = files("fastapi_offline") / "static"
    app.mount("/docs/static", StaticFiles(directory=str(static)), name="docs-static")
    token_origin = ""  # nosec B105 -- an origin, empty when the token URL is relative
    parts = urlsplit(token_url)
    if parts.scheme and parts.netloc:
        token_origin = f" {parts.scheme}://{parts.netloc}"
    # Swagger UI needs its own script and inline bootstrap; nothing from a CDN.
    csp = (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        f"connect-src 'self'{token_origin}; frame-ancestors 'none'"
    )

    async def openapi_json(request: Request) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse(app.openapi())

    async def swagger(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
            init_oauth={"usePkceWithAuthorizationCodeGrant": False},
        )
        page.headers["Content-Security-Policy"] = csp
        return page

    async def redirect(request: Request) -> HTMLResponse:
        page = get_swagger_ui_oauth2_redirect_html()
        page.headers["Content-Security-Policy"] = csp
        return page

    app.add_route("/openapi.json", openapi_json, include_in_schema=False)
    app.add_route("/docs", swagger, include_in_schema=False)
    app.add_route("/docs/oauth2-redirect", redirect, include_in_schema=False)
