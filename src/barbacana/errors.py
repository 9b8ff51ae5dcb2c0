"""The one exception tree of Barbacana.

Every error derives from :class:`BarbacanaError`, which is never raised itself.
Each concern has one base here; its leaves live in that concern's ``errors``
module. Every class carries a stable ``code`` (reused by problem+json bodies
and audit events) and the HTTP ``status`` the web layer answers with::

    BarbacanaError
     ├── ConfigurationError        bad settings: start-up stops (500 if ever seen at run time)
     ├── StorageError              the database could not be reached or refused a write
     ├── TokenError                tokens: malformed, bad signature, bad claims, revoked (401)
     ├── IdentityError             OAuth2 grants, users, clients, API keys (400/401/404/409)
     ├── AccessError               authentication missing, scope or role missing (401/403/404)
     ├── RequestError              bad HTTP input: body too large, bad request id (400/413/422)
     ├── RateLimitError            quota exceeded, limiter store down (429/503)
     ├── AuditError                the audit trail could not be written or does not verify
     ├── TransportError            certificates, TLS and peer identity
     ├── SecretsError              a secret source failed or a secret is missing
     └── OutboundError             an outbound request was refused (SSRF guard) or failed
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccessError",
    "AuditError",
    "BarbacanaError",
    "ConfigurationError",
    "IdentityError",
    "OutboundError",
    "RateLimitError",
    "RequestError",
    "SecretsError",
    "StorageError",
    "TokenError",
    "TransportError",
]


class BarbacanaError(Exception):
    """Root of every Barbacana error; never raised itself."""

    code: ClassVar[str] = "barbacana_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        #: Safe, public extra members for the problem+json body (never secrets).
        self.extra = extra
        super().__init__(self.detail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, detail={self.detail!r})"


class ConfigurationError(BarbacanaError):
    """The configuration is invalid; the message says how to fix it."""

    code = "configuration_error"
    title = "Configuration error"


class StorageError(BarbacanaError):
    """The database could not be reached or refused an operation."""

    code = "storage_error"
    status = 503
    title = "Storage unavailable"


class TokenError(BarbacanaError):
    """A token failed verification."""

    code = "invalid_token"
    status = 401
    title = "Invalid token"


class IdentityError(BarbacanaError):
    """An identity operation (grant, user, client, API key) failed."""

    code = "identity_error"
    status = 400
    title = "Identity error"


class AccessError(BarbacanaError):
    """The caller is not authenticated, or not allowed."""

    code = "access_denied"
    status = 403
    title = "Forbidden"


class RequestError(BarbacanaError):
    """The HTTP request itself is unacceptable."""

    code = "bad_request"
    status = 400
    title = "Bad request"


class RateLimitError(BarbacanaError):
    """A rate limit refused the request, or the limiter failed."""

    code = "rate_limited"
    status = 429
    title = "Too many requests"


class AuditError(BarbacanaError):
    """The audit trail could not be written, read or verified."""

    code = "audit_error"
    status = 503
    title = "Audit trail unavailable"


class TransportError(BarbacanaError):
    """A certificate, TLS context or peer identity problem."""

    code = "transport_error"
    title = "Transport error"


class SecretsError(BarbacanaError):
    """A secret could not be resolved from its source."""

    code = "secrets_error"
    status = 503
    title = "Secret unavailable"


class OutboundError(BarbacanaError):
    """An outbound request was refused by policy or failed."""

    code = "outbound_error"
    status = 400
    title = "Outbound request refused"
