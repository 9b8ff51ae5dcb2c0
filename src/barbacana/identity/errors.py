"""Identity errors; OAuth2 ones also carry RFC 6749 §5.2 ``error`` members."""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import IdentityError, RateLimitError

__all__ = [
    "ApiKeyInvalidError",
    "ApiKeyNotFoundError",
    "ClientNotFoundError",
    "IdentityError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "LoginLockedError",
    "OAuthError",
    "RotationInProgressError",
    "RotationTooEarlyError",
    "UnsupportedGrantTypeError",
    "UserExistsError",
    "UserNotFoundError",
]


class OAuthError(IdentityError):
    """An RFC 6749 error: the problem body also has ``error`` and ``error_description``."""

    oauth_error: ClassVar[str] = "invalid_request"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.extra.setdefault("error", self.oauth_error)
        self.extra.setdefault("error_description", self.detail)


class InvalidRequestError(OAuthError):
    """A required parameter is missing or malformed."""

    code = "invalid_request"
    oauth_error = "invalid_request"
    title = "Invalid request"


class InvalidGrantError(OAuthError):
    """Bad credentials, or an expired, revoked or reused refresh token."""

    code = "invalid_grant"
    oauth_error = "invalid_grant"
    title = "Invalid grant"


class InvalidClientError(OAuthError):
    """Client authentication failed (RFC 6749 §5.2: 401 with a Basic challenge)."""

    code = "invalid_client"
    oauth_error = "invalid_client"
    status = 401
    title = "Invalid client"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Basic realm="barbacana"'}


class InvalidScopeError(OAuthError):
    """A requested scope is unknown or not held."""

    code = "invalid_scope"
    oauth_error = "invalid_scope"
    title = "Invalid scope"


class UnsupportedGrantTypeError(OAuthError):
    """The grant type is not one this server supports."""

    code = "unsupported_grant_type"
    oauth_error = "unsupported_grant_type"
    title = "Unsupported grant type"


class RotationTooEarlyError(IdentityError):
    """The ``next`` key has not been published long enough to start signing."""

    code = "rotation_too_early"
    status = 409
    title = "Conflict"


class RotationInProgressError(IdentityError):
    """A credential is already being rotated: its previous value still works."""

    code = "rotation_in_progress"
    status = 409
    title = "Conflict"


class LoginLockedError(RateLimitError):
    """Too many failed logins for this account or address (429 with ``Retry-After``)."""

    code = "login_locked"
    status = 429
    title = "Too many failed logins"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class UserExistsError(IdentityError):
    """A user with that name already exists."""

    code = "user_exists"
    status = 409
    title = "Conflict"


class UserNotFoundError(IdentityError):
    """No such user."""

    code = "user_not_found"
    status = 404
    title = "Not Found"


class ApiKeyInvalidError(IdentityError):
    """The API key is unknown, revoked or expired."""

    code = "invalid_api_key"
    status = 401
    title = "Invalid API key"


class ApiKeyNotFoundError(IdentityError):
    """No active API key has that id (unknown, revoked, expired or retired)."""

    code = "apikey_not_found"
    status = 404
    title = "Not Found"


class ClientNotFoundError(IdentityError):
    """No service client has that id (an operator's request, not a client's login)."""

    code = "client_not_found"
    status = 404
    title = "Not Found"
