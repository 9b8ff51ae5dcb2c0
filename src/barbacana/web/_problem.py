"""RFC 9457 problem details for every error, and the one mapping to them.

Every error response of a secured app is ``application/problem+json`` with
``type``, ``title``, ``status``, ``detail``, ``instance`` and the request id;
never a stack trace, a file path or an exception's text from a library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, cast

import structlog
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .. import _context
from ..errors import AccessError, BarbacanaError, TokenError

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "ProblemResponse",
    "install_problem_handlers",
    "problem_body",
    "problem_type",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
_log = structlog.get_logger("barbacana.web")


def problem_type(code: str) -> str:
    """The ``type`` URI of a Barbacana problem code."""
    return f"urn:barbacana:problem:{code}"


def problem_body(
    status: int,
    *,
    code: str,
    title: str | None = None,
    detail: str | None = None,
    instance: str | None = None,
    type_: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build an RFC 9457 body; ``extra`` members never override the standard ones."""
    phrase = _phrase(status)
    body: dict[str, Any] = {
        "type": type_ or problem_type(code),
        "title": title or phrase,
        "status": status,
        "detail": detail or title or phrase,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    request_id = _context.request_id.get()
    if request_id:
        body["request_id"] = request_id
    for key, value in (extra or {}).items():
        body.setdefault(key, value)
    return body


class ProblemResponse(Response):
    """A ``application/problem+json`` response."""

    media_type = PROBLEM_CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def challenge(exc: BarbacanaError, realm: str = "barbacana") -> str | None:
    """The RFC 6750 ``WWW-Authenticate`` value for an authentication error, if any."""
    if isinstance(exc, TokenError):
        return f'Bearer realm="{realm}", error="invalid_token"'
    header = getattr(exc, "www_authenticate", None)
    if isinstance(exc, AccessError) and isinstance(header, str):
        return header
    return None


async def _barbacana_error(request: Request, exc: Exception) -> Response:
    exc = cast(BarbacanaError, exc)
    headers = dict(getattr(exc, "headers", None) or {})
    www = challenge(exc)
    if www is not None and exc.status in (401, 403):
        headers.setdefault("WWW-Authenticate", www)
    own_type = getattr(exc, "type", None)
    body = problem_body(
        exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        type_=own_type if isinstance(own_type, str) else None,
        extra=exc.extra,
    )
    return ProblemResponse(body, status_code=exc.status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    exc = cast(HTTPException, exc)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else None
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, f"http_{status}")
    body = problem_body(status, code=code, detail=detail, instance=request.url.path)
    return ProblemResponse(body, status_code=status, headers=dict(exc.headers or {}))


def _field(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    exc = cast(RequestValidationError, exc)
    errors = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        kind = str(error.get("type", "invalid"))
        if kind == "json_invalid":
            # A JSON syntax error has no field: say where in the body it broke.
            errors.append({"field": "body", "message": "Body is not valid JSON", "type": kind})
            continue
        errors.append({"field": _field(loc), "message": str(error.get("msg", "")), "type": kind})
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
    body = problem_body(
        422,
        code="validation_error",
        title="Request validation failed",
        detail=f"Invalid field(s): {fields}" if fields else "Invalid request",
        instance=request.url.path,
        extra={"errors": errors},
    )
    return ProblemResponse(body, status_code=422)


def install_problem_handlers(app: Any) -> None:
    """Register the problem+json handlers on a FastAPI/Starlette app."""
    app.add_exception_handler(BarbacanaError, _barbacana_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


def internal_error_body() -> bytes:
    """The body of a 500: generic, with the request id to quote to an operator."""
    body = problem_body(
        500,
        code="internal_error",
        title="Internal Server Error",
        detail="The server could not complete the request; quote the request id to an operator.",
    )
    return json.dumps(body, separators=(",", ":")).encode()


def log_unexpected(exc: BaseException) -> None:
    """Log an unexpected exception with its traceback (logs, never the response)."""
    _log.error("unhandled_exception", exc_type=type(exc).__name__, exc_info=exc)
