"""Who is calling: a user, a service client, or a program with an API key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..tokens import AccessClaims
from .errors import ResourceNotFoundError

__all__ = ["Principal", "actor_of", "ensure_owner", "principal_from_claims"]

PrincipalKind = Literal["user", "client", "api_key"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller, as every route sees it."""

    subject: str
    kind: PrincipalKind
    scopes: frozenset[str] = field(default_factory=frozenset)
    roles: tuple[str, ...] = ()
    client_id: str | None = None
    #: ``jti`` of the access token, or the API key id.
    credential_id: str | None = None
    #: Refresh-token family (``sid``) the access token came from.
    session_id: str | None = None
    expires_at: float | None = None
    username: str | None = None

    def has_scopes(self, required: list[str] | tuple[str, ...]) -> bool:
        """True when every required scope is held."""
        return all(scope in self.scopes for scope in required)

    def has_role(self, *roles: str) -> bool:
        """True when any of ``roles`` is held."""
        return any(role in self.roles for role in roles)


def ensure_owner(principal: Principal, owner: str, *, override_scope: str | None = None) -> None:
    """Let ``principal`` see a resource owned by ``owner``, or answer 404.

    A resource of someone else is reported as *not found*, exactly like a
    missing one, so ids cannot be probed (OWASP API1:2023, BOLA). Holders of
    ``override_scope`` (an admin scope) may see everything.

    Raises:
        ResourceNotFoundError: ``principal`` is neither the owner nor privileged.
    """
    if principal.subject == owner:
        return
    if override_scope is not None and override_scope in principal.scopes:
        return
    raise ResourceNotFoundError("No such resource")


def principal_from_claims(claims: AccessClaims) -> Principal:
    """The principal a verified access token stands for."""
    is_client = not claims.roles and claims.sub == claims.client_id
    username = claims.raw.get("preferred_username")
    return Principal(
        subject=claims.sub,
        kind="client" if is_client else "user",
        scopes=claims.scope,
        roles=claims.roles,
        client_id=claims.client_id,
        credential_id=claims.jti,
        session_id=claims.sid,
        expires_at=claims.exp,
        username=username if isinstance(username, str) else None,
    )


_ACTOR_TYPES = {"user": "user", "client": "service", "api_key": "apikey"}


def actor_of(principal: Principal | None) -> dict[str, str | None]:
    """The audit actor for a principal (``anonymous`` for ``None``)."""
    if principal is None:
        return {"type": "anonymous"}
    if principal.kind == "api_key":
        return {"type": "apikey", "id": principal.credential_id, "name": principal.username}
    return {
        "type": _ACTOR_TYPES[principal.kind],
        "id": principal.subject,
        "name": principal.username,
    }
