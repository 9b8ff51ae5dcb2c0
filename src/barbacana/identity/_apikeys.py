"""API keys for programs: ``brb_<id>_<secret>``, and their rotation.

Rotating a key makes a new one with the same owner, name and scopes; the old
key keeps working for an overlap window (``retire_at``) so the programs that
hold it can move over, and is then revoked. :meth:`ApiKeyStore.verify` checks
the window itself, so the old key stops working on time even if nothing
sweeps; :meth:`ApiKeyStore.retire_due` records the revocation afterwards.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .._clock import Clock, system_clock
from ..storage import Database
from ._revocations import RevocationLog
from ._secrets import digest, matches, new_secret
from ._tables import api_keys
from .errors import (
    ApiKeyInvalidError,
    ApiKeyNotFoundError,
    InvalidRequestError,
    RotationInProgressError,
)

__all__ = ["API_KEY_PREFIX", "ApiKey", "ApiKeyRotation", "ApiKeyStore"]

API_KEY_PREFIX = "brb_"


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
    #: The key that replaced this one in a rotation.
    replaced_by: str | None = None
    #: When a rotated key stops working (the end of its overlap window).
    retire_at: float | None = None

    def active(self, now: float) -> bool:
        """Whether the key works at ``now``: not revoked, expired or past its overlap."""
        return not (
            self.revoked_at is not None
            or (self.expires_at is not None and self.expires_at <= now)
            or (self.retire_at is not None and self.retire_at <= now)
        )


@dataclass(frozen=True, slots=True)
class ApiKeyRotation:
    """The outcome of a rotation; ``key`` (the new full key) is shown once, never in ``repr``."""

    old: ApiKey
    new: ApiKey
    key: str = field(repr=False)

    @property
    def previous_valid_until(self) -> float:
        """When the old key stops working."""
        ends = [
            t
            for t in (self.old.retire_at, self.old.expires_at, self.old.revoked_at)
            if t is not None
        ]
        return min(ends) if ends else self.new.created_at


def _api_key(m: Mapping[Any, Any]) -> ApiKey:
    return ApiKey(
        id=m["id"],
        name=m["name"],
        owner_id=m["owner_id"],
        scopes=tuple(m["scopes"]),
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
        replaced_by=m.get("replaced_by"),
        retire_at=m.get("retire_at"),
    )


class ApiKeyStore:
    """API keys: ``brb_<id>_<secret>``; the id is visible, the secret stored hashed."""

    def __init__(self, db: Database, revocations: RevocationLog, clock: Clock = system_clock):
        self._db = db
        self._revocations = revocations
        self._clock = clock

    async def _insert(
        self,
        conn: AsyncConnection,
        name: str,
        owner_id: str,
        scopes: list[str] | tuple[str, ...],
        expires_at: float | None,
    ) -> tuple[ApiKey, str]:
        key_id = secrets.token_hex(6)
        full = f"{API_KEY_PREFIX}{key_id}_{new_secret()}"
        values: dict[str, Any] = {
            "id": key_id,
            "name": name,
            "owner_id": owner_id,
            "key_hash": digest(full),
            "scopes": sorted(set(scopes)),
            "created_at": self._clock(),
            "expires_at": expires_at,
            "revoked_at": None,
            "replaced_by": None,
            "retire_at": None,
        }
        await conn.execute(insert(api_keys).values(**values))
        return _api_key(values), full

    async def create(
        self, name: str, owner_id: str, scopes: list[str], *, ttl: float | None = None
    ) -> tuple[ApiKey, str]:
        """Create a key for ``owner_id``; returns the record and the full key (shown once)."""
        expires_at = self._clock() + ttl if ttl else None
        async with self._db.begin() as conn:
            return await self._insert(conn, name, owner_id, scopes, expires_at)

    async def verify(self, full: str) -> ApiKey:
        """The key record for a presented key.

        Raises:
            ApiKeyInvalidError: Malformed, unknown, revoked, expired or past its overlap.
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
        if not key.active(self._clock()):
            raise ApiKeyInvalidError("invalid API key")
        return key

    async def rotate(self, key_id: str, overlap: float) -> ApiKeyRotation:
        """A new key with the old one's owner, name, scopes and lifetime.

        The old key keeps working for ``overlap`` seconds, then stops (an
        overlap of 0 revokes it at once). A key already replaced is not
        rotated again: rotate its replacement.

        Raises:
            ApiKeyNotFoundError: No active key has that id.
            InvalidRequestError: ``overlap`` is negative.
            RotationInProgressError: The key was already rotated.
        """
        if overlap < 0:
            raise InvalidRequestError("overlap must not be negative", field="overlap")
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(api_keys).where(api_keys.c.id == key_id).with_for_update()
                )
            ).first()
            now = self._clock()
            old = _api_key(row._mapping) if row is not None else None
            if old is None or not old.active(now):
                raise ApiKeyNotFoundError("no such active API key")
            if old.replaced_by is not None:
                raise RotationInProgressError(
                    f"API key {old.id} was already rotated; rotate its replacement "
                    f"{old.replaced_by} instead"
                )
            lifetime = old.expires_at - old.created_at if old.expires_at is not None else None
            new, full = await self._insert(
                conn,
                old.name,
                old.owner_id,
                old.scopes,
                now + lifetime if lifetime is not None else None,
            )
            changes: dict[str, Any] = {"replaced_by": new.id}
            if overlap > 0:
                changes["retire_at"] = now + overlap
            else:
                changes["revoked_at"] = now
                await self._revocations.api_key(conn, old.id)
            await conn.execute(update(api_keys).where(api_keys.c.id == old.id).values(**changes))
        old = dataclasses.replace(old, **changes)
        return ApiKeyRotation(old=old, new=new, key=full)

    async def retire_due(self) -> list[ApiKey]:
        """Revoke rotated keys whose overlap has ended; the keys this call revoked.

        Each key is revoked once (at its ``retire_at``) even when several
        identity instances sweep at the same time.
        """
        now = self._clock()
        retired: list[ApiKey] = []
        async with self._db.begin() as conn:
            rows = (
                await conn.execute(
                    select(api_keys).where(
                        api_keys.c.retire_at <= now, api_keys.c.revoked_at.is_(None)
                    )
                )
            ).all()
            for row in rows:
                key = _api_key(row._mapping)
                result = await conn.execute(
                    update(api_keys)
                    .where(api_keys.c.id == key.id, api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=key.retire_at)
                )
                if result.rowcount:
                    await self._revocations.api_key(conn, key.id)
                    retired.append(dataclasses.replace(key, revoked_at=key.retire_at))
        return retired

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key now; ``False`` if there was no such active key."""
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
