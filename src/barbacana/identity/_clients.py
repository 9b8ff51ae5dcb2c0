"""Service clients (client_credentials) and API keys for programs."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from .._clock import Clock, system_clock
from ..storage import Database
from ._revocations import RevocationLog
from ._secrets import digest, matches, new_secret
from ._tables import api_keys, service_clients
from .errors import ApiKeyInvalidError, InvalidClientError, InvalidRequestError, UserExistsError

__all__ = ["ApiKey", "ApiKeyStore", "ClientStore", "ServiceClient"]

_CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
API_KEY_PREFIX = "brb_"


@dataclass(frozen=True, slots=True)
class ServiceClient:
    """A confidential OAuth2 client (another service)."""

    client_id: str
    scopes: tuple[str, ...]
    disabled: bool


class ClientStore:
    """Service clients with hashed secrets; two secrets overlap during a rotation."""

    def __init__(self, db: Database, clock: Clock = system_clock) -> None:
        self._db = db
        self._clock = clock

    async def create(self, client_id: str, scopes: list[str]) -> tuple[ServiceClient, str]:
        """Register a client; returns it and its secret (shown once).

        Raises:
            InvalidRequestError: Malformed client id.
            UserExistsError: The id is taken.
        """
        if not _CLIENT_ID.match(client_id):
            raise InvalidRequestError("client_id must be 2-64 characters of a-z0-9._-")
        secret = new_secret()
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    insert(service_clients).values(
                        client_id=client_id,
                        secret_hash=digest(secret),
                        scopes=sorted(set(scopes)),
                        created_at=self._clock(),
                        disabled=False,
                    )
                )
        except IntegrityError:
            raise UserExistsError(f"client {client_id!r} already exists") from None
        return ServiceClient(client_id, tuple(sorted(set(scopes))), False), secret

    async def rotate_secret(self, client_id: str, overlap: float) -> str:
        """A new secret; the current one keeps working for ``overlap`` seconds."""
        secret = new_secret()
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(service_clients).where(service_clients.c.client_id == client_id)
                )
            ).first()
            if row is None:
                raise InvalidClientError("unknown client")
            await conn.execute(
                update(service_clients)
                .where(service_clients.c.client_id == client_id)
                .values(
                    secret_hash=digest(secret),
                    previous_secret_hash=row.secret_hash,
                    previous_expires_at=self._clock() + overlap,
                )
            )
        return secret

    async def authenticate(self, client_id: str, secret: str) -> ServiceClient:
        """The client, if ``secret`` is its current (or still-overlapping previous) secret.

        Raises:
            InvalidClientError: Unknown client, wrong secret, or disabled.
        """
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    select(service_clients).where(service_clients.c.client_id == client_id)
                )
            ).first()
        # Compare against a throwaway digest when the client is unknown: same work.
        stored = row.secret_hash if row is not None else digest(secrets.token_hex(8))
        ok = matches(secret, stored)
        overlapping = (
            row is not None
            and row.previous_secret_hash is not None
            and (row.previous_expires_at or 0.0) > self._clock()
        )
        if not ok and overlapping and row is not None:
            ok = matches(secret, row.previous_secret_hash)
        if row is None or not ok or row.disabled:
            raise InvalidClientError("client authentication failed")
        return ServiceClient(row.client_id, tuple(row.scopes), bool(row.disabled))

    async def get(self, client_id: str) -> ServiceClient | None:
        """The client with ``client_id``, or ``None``."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    select(service_clients).where(service_clients.c.client_id == client_id)
                )
            ).first()
        if row is None:
            return None
        return ServiceClient(row.client_id, tuple(row.scopes), bool(row.disabled))


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's public record (the key itself is shown once, at creation)."""

    id: str
    name: str
    owner_id: str
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float | None
    revoked_at: float | None


def _api_key(m: Mapping[Any, Any]) -> ApiKey:
    return ApiKey(
        id=m["id"],
        name=m["name"],
        owner_id=m["owner_id"],
        scopes=tuple(m["scopes"]),
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
    )


class ApiKeyStore:
    """API keys: ``brb_<id>_<secret>``; the id is visible, the secret stored hashed."""

    def __init__(self, db: Database, revocations: RevocationLog, clock: Clock = system_clock):
        self._db = db
        self._revocations = revocations
        self._clock = clock

    async def create(
        self, name: str, owner_id: str, scopes: list[str], *, ttl: float | None = None
    ) -> tuple[ApiKey, str]:
        """Create a key for ``owner_id``; returns the record and the full key (shown once)."""
        key_id = secrets.token_hex(6)
        full = f"{API_KEY_PREFIX}{key_id}_{new_secret()}"
        now = self._clock()
        values = {
            "id": key_id,
            "name": name,
            "owner_id": owner_id,
            "key_hash": digest(full),
            "scopes": sorted(set(scopes)),
            "created_at": now,
            "expires_at": now + ttl if ttl else None,
            "revoked_at": None,
        }
        async with self._db.begin() as conn:
            await conn.execute(insert(api_keys).values(**values))
        return _api_key(values), full

    async def verify(self, full: str) -> ApiKey:
        """The key record for a presented key.

        Raises:
            ApiKeyInvalidError: Malformed, unknown, revoked or expired.
        """
        if not full.startswith(API_KEY_PREFIX) or len(full) > 128:
            raise ApiKeyInvalidError("invalid API key")
        key_id, _, _secret = full[len(API_KEY_PREFIX) :].partition("_")
        async with self._db.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        stored = row.key_hash if row is not None else digest(secrets.token_hex(8))
        if row is None or not matches(full, stored):
            raise ApiKeyInvalidError("invalid API key")
        key = _api_key(row._mapping)
        if key.revoked_at is not None or (
            key.expires_at is not None and key.expires_at <= self._clock()
        ):
            raise ApiKeyInvalidError("invalid API key")
        return key

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key; ``False`` if there was no such active key."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
            if result.rowcount:
                await self._revocations.api_key(conn, key_id)
        return bool(result.rowcount)

    async def all(self, owner_id: str | None = None) -> list[ApiKey]:
        """Keys, newest first (optionally one owner's)."""
        query = select(api_keys).order_by(api_keys.c.created_at.desc())
        if owner_id is not None:
            query = query.where(api_keys.c.owner_id == owner_id)
        async with self._db.connect() as conn:
            return [_api_key(row._mapping) for row in (await conn.execute(query)).all()]
