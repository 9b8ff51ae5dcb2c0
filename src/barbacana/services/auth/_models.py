"""Request and response models of the identity service (no secrets in any response)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ...web import StrictModel

__all__ = [
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyOut",
    "AuditPage",
    "IntrospectionOut",
    "KeyOut",
    "LockoutOut",
    "RevocationEventOut",
    "RevocationFeedOut",
    "RolesIn",
    "TokenOut",
    "UserCreate",
    "UserOut",
]


class TokenOut(BaseModel):
    """RFC 6749 §5.1."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 -- the RFC 6750 token type, not a secret
    expires_in: int
    scope: str
    refresh_token: str | None = None


class UserCreate(StrictModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=12, max_length=1024)
    roles: list[str] = Field(default_factory=lambda: ["user"], max_length=16)


class RolesIn(StrictModel):
    roles: list[str] = Field(max_length=16)


class UserOut(BaseModel):
    """A user as the API shows it: never the password hash."""

    id: str
    username: str
    roles: list[str]
    disabled: bool
    created_at: float


class ApiKeyCreate(StrictModel):
    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, max_length=32)
    #: Owner's user id; defaults to the caller.
    owner_id: str | None = Field(default=None, max_length=36)
    #: Lifetime in seconds; none: until revoked.
    ttl: int | None = Field(default=None, gt=0, le=31_536_000)


class ApiKeyOut(BaseModel):
    id: str
    name: str
    owner_id: str
    scopes: list[str]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    #: The key that replaced this one in a rotation.
    replaced_by: str | None = None
    #: When a rotated key stops working (the end of its overlap window).
    retire_at: float | None = None


class ApiKeyCreated(ApiKeyOut):
    """Returned once at creation: ``key`` is never shown again."""

    key: str


class KeyOut(BaseModel):
    kid: str
    alg: str
    state: str
    created_at: float
    activated_at: float | None
    retire_at: float | None


class IntrospectionOut(BaseModel):
    """RFC 7662 §2.2; an inactive token has only ``active: false``."""

    model_config = {"extra": "allow"}

    active: bool


class LockoutOut(BaseModel):
    """A locked account or client address and when its lock ends (UNIX time)."""

    kind: str
    name: str
    until: float


class AuditPage(BaseModel):
    """One page of audit events, oldest first; pass ``next`` as ``after`` for the next."""

    events: list[dict[str, Any]]
    next: int | None


class RevocationEventOut(BaseModel):
    seq: int
    kind: str
    value: str
    until: float | None
    before: float | None


class RevocationFeedOut(BaseModel):
    cursor: int
    events: list[RevocationEventOut]
