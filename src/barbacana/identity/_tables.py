"""The identity schema (SQLAlchemy Core); changed only through migrations."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

__all__ = [
    "api_keys",
    "metadata",
    "refresh_families",
    "refresh_tokens",
    "revocations",
    "service_clients",
    "signing_keys",
    "users",
]

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    # Tokens issued before this instant are void (disable, role change, family reuse).
    Column("tokens_valid_after", Float, nullable=False, default=0.0),
)

service_clients = Table(
    "service_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    # During a rotation window the previous secret keeps working until it expires.
    Column("previous_secret_hash", String(64), nullable=True),
    Column("previous_expires_at", Float, nullable=True),
    Column("scopes", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)

refresh_families = Table(
    "refresh_families",
    metadata,
    Column("id", String(43), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("scope", String(2048), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("revoked_reason", String(64), nullable=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    # SHA-256 of the opaque token: the token itself is never stored.
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(43), ForeignKey("refresh_families.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    Index("ix_refresh_tokens_family", "family_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("owner_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    # A rotation: the key that replaced this one, and when this one stops working.
    Column("replaced_by", String(16), nullable=True),
    Column("retire_at", Float, nullable=True),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    # PKCS#8 private key sealed under the key-encryption key (never stored in clear).
    Column("sealed_private_key", LargeBinary, nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("activated_at", Float, nullable=True),
    Column("retire_at", Float, nullable=True),
)

revocations = Table(
    "revocations",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    # "jti": one access token; "sid": a refresh family and its access tokens;
    # "sub": every token of a subject issued before `before`; "apikey": one API key.
    Column("kind", String(8), nullable=False),
    Column("value", String(64), nullable=False),
    Column("until", Float, nullable=True),
    Column("before", Float, nullable=True),
    Column("created_at", Float, nullable=False),
)
