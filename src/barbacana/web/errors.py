"""Errors of the web layer (all derive from :class:`barbacana.errors.RequestError`)."""

from __future__ import annotations

from ..errors import RequestError

__all__ = ["BodyTooLargeError", "MalformedRequestError", "NotFoundError", "RequestError"]


class BodyTooLargeError(RequestError):
    """The request body is larger than the configured limit."""

    code = "body_too_large"
    status = 413
    title = "Content too large"


class MalformedRequestError(RequestError):
    """The request could not be parsed."""

    code = "malformed_request"
    status = 400
    title = "Malformed request"


class NotFoundError(RequestError):
    """The resource does not exist, or the caller may not know that it does."""

    code = "not_found"
    status = 404
    title = "Not found"
