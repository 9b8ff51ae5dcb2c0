"""``require``: the FastAPI dependency behind ``Security(require, scopes=[...])``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer, SecurityScopes
from starlette.types import Scope

from ..errors import BarbacanaError
from ._principal import Principal
from .errors import InsufficientScopeError, MissingRoleError, NotAuthenticatedError

__all__ = [
    "API_KEY_HEADER",
    "Authenticator",
    "Require",
    "RequireRole",
    "api_key_scheme",
    "bearer_scheme",
    "require",
    "require_role",
]

API_KEY_HEADER = "X-API-Key"
_STATE_KEY = "barbacana_principal"

#: Turns a bearer token into a principal, or raises a ``TokenError``.
TokenAuthenticator = Callable[[str], Awaitable[Principal]]
#: Turns an API key into a principal, or raises an ``IdentityError``/``AccessError``.
ApiKeyAuthenticator = Callable[[str], Awaitable[Principal]]

# The URL is rewritten in the OpenAPI document from settings; auto_error is off so
# that *our* errors (problem+json with an RFC 6750 challenge) answer, not FastAPI's.
bearer_scheme = OAuth2PasswordBearer(tokenUrl="/token", auto_error=False, scheme_name="OAuth2")
api_key_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, scheme_name="APIKey")


class Authenticator:
    """Resolves the caller of a request from its ``Authorization`` or ``X-API-Key``.

    One instance per app, stored as ``app.state.barbacana_authenticator``. The
    result is cached in the request scope, so middleware (rate limits, audit)
    and dependencies authenticate a request once.

    Args:
        tokens: Verifies a bearer access token.
        api_keys: Verifies an API key (``None``: API keys are not accepted here).
    """

    def __init__(self, tokens: TokenAuthenticator, api_keys: ApiKeyAuthenticator | None = None):
        self._tokens = tokens
        self._api_keys = api_keys

    async def authenticate(self, scope: Scope) -> Principal | None:
        """The principal of a request, ``None`` when it sent no credentials.

        Raises:
            TokenError: A bearer token was sent and is not valid.
            BarbacanaError: An API key was sent and is not valid.
        """
        state = scope.setdefault("state", {})
        cached = state.get(_STATE_KEY)
        if isinstance(cached, Principal):
            return cached
        if isinstance(cached, BarbacanaError):
            raise cached
        token, api_key = _credentials(scope)
        try:
            if token is not None:
                principal: Principal | None = await self._tokens(token)
            elif api_key is not None and self._api_keys is not None:
                principal = await self._api_keys(api_key)
            else:
                principal = None
        except BarbacanaError as exc:
            state[_STATE_KEY] = exc
            raise
        state[_STATE_KEY] = principal
        return principal

    async def identify(self, scope: Scope) -> Principal | None:
        """Like :meth:`authenticate`, but ``None`` instead of an error (for middleware)."""
        try:
            return await self.authenticate(scope)
        except BarbacanaError:
            return None


def _credentials(scope: Scope) -> tuple[str | None, str | None]:
    token = api_key = None
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                token = credentials.strip()
        elif name == b"x-api-key":
            api_key = value.decode("latin-1").strip() or None
    return token, api_key


def _authenticator(request: Request) -> Authenticator:
    authenticator = getattr(request.app.state, "barbacana_authenticator", None)
    if not isinstance(authenticator, Authenticator):
        from ..errors import ConfigurationError

        raise ConfigurationError(
            "this app has no Authenticator; set app.state.barbacana_authenticator"
        )
    return authenticator


class Require(OAuth2PasswordBearer):
    """Dependency: an authenticated principal holding the scopes of ``Security(...)``.

    Use as ``Security(require, scopes=["orders:read"])``. FastAPI gathers the
    scopes of every ``Security`` on the path into ``SecurityScopes``, and the
    OpenAPI document lists them per operation. ``Require`` *is* the OAuth2
    security scheme (so Swagger UI's Authorize works) without running a
    separate scheme dependency per request; ``secure()`` adds the API-key
    scheme to the document.

    Raises:
        NotAuthenticatedError: No credentials (401, ``WWW-Authenticate: Bearer``).
        TokenError: A bad token (401, ``error="invalid_token"``).
        InsufficientScopeError: A scope is missing (403, ``error="insufficient_scope"``).
    """

    def __init__(self) -> None:
        super().__init__(tokenUrl="/token", auto_error=False, scheme_name="OAuth2")

    async def __call__(  # type: ignore[override]
        self, request: Request, security_scopes: SecurityScopes
    ) -> Principal:
        principal = await _authenticator(request).authenticate(request.scope)
        if principal is None:
            raise self.unauthenticated()
        missing = [s for s in security_scopes.scopes if s not in principal.scopes]
        if missing:
            raise self.forbidden(security_scopes.scopes)
        return principal

    def unauthenticated(self) -> BarbacanaError:
        """The 401 error; override to change the challenge."""
        return NotAuthenticatedError("Send an access token: Authorization: Bearer <token>")

    def forbidden(self, scopes: list[str]) -> BarbacanaError:
        """The 403 error; override to change the message."""
        return InsufficientScopeError(scopes)


require = Require()


class RequireRole:
    """Dependency: the principal holds one of ``roles`` (and is authenticated).

    Raises:
        MissingRoleError: None of the roles is held (403).
    """

    def __init__(self, *roles: str) -> None:
        self.roles = list(roles)

    async def __call__(self, principal: Principal = Depends(require)) -> Principal:
        if not principal.has_role(*self.roles):
            raise MissingRoleError(self.roles)
        return principal


def require_role(*roles: str) -> Any:
    """``Depends(...)`` for a role check, e.g. ``Depends(require_role("admin"))``."""
    return Depends(RequireRole(*roles))
