"""Refresh tokens: opaque, single-use, grouped in families with reuse detection.

Each login starts a family. Every refresh consumes the presented token and
issues the next one in the same family. A token presented a second time means
it was stolen (either the thief or the user used it first): the whole family
is revoked, and so are the access tokens minted from it (their ``sid`` is the
family id). OAuth 2.0 Security BCP (RFC 9700) §4.14.2.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .._clock import Clock, system_clock
from ..storage import Database
from ._revocations import RevocationLog
from ._secrets import digest, new_secret
from ._tables import refresh_families, refresh_tokens

__all__ = ["Family", "RefreshOutcome", "RefreshStore"]


@dataclass(frozen=True, slots=True)
class Family:
    """A refresh-token family: one login session."""

    id: str
    user_id: str
    client_id: str
    scope: tuple[str, ...]
    expires_at: float


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    """The result of presenting a refresh token."""

    status: str  # "ok", "reused", "invalid"
    family: Family | None = None
    token: str | None = None


class RefreshStore:
    """Refresh tokens stored as SHA-256 digests."""

    def __init__(
        self, db: Database, revocations: RevocationLog, ttl: float, clock: Clock = system_clock
    ) -> None:
        self._db = db
        self._revocations = revocations
        self._ttl = ttl
        self._clock = clock

    async def start(self, user_id: str, client_id: str, scope: list[str]) -> tuple[Family, str]:
        """Start a family for a fresh login; returns it and its first token."""
        now = self._clock()
        family = Family(new_secret(), user_id, client_id, tuple(scope), now + self._ttl)
        token = new_secret()
        async with self._db.begin() as conn:
            await conn.execute(
                insert(refresh_families).values(
                    id=family.id,
                    user_id=user_id,
                    client_id=client_id,
                    scope=" ".join(scope),
                    created_at=now,
                    expires_at=family.expires_at,
                )
            )
            await self._insert(conn, family.id, token, now, family.expires_at)
        return family, token

    async def _insert(
        self, conn: AsyncConnection, family_id: str, token: str, now: float, expires: float
    ) -> None:
        await conn.execute(
            insert(refresh_tokens).values(
                token_hash=digest(token), family_id=family_id, created_at=now, expires_at=expires
            )
        )

    async def use(self, token: str) -> RefreshOutcome:
        """Consume ``token`` and issue its successor, or detect reuse.

        The consume is one conditional UPDATE, so two concurrent uses of the same
        token cannot both succeed: the loser is treated as a reuse.
        """
        now = self._clock()
        token_hash = digest(token)
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(refresh_tokens, refresh_families)
                    .join(refresh_families, refresh_families.c.id == refresh_tokens.c.family_id)
                    .where(refresh_tokens.c.token_hash == token_hash)
                )
            ).first()
            if row is None:
                return RefreshOutcome("invalid")
            m = row._mapping
            family = Family(
                m[refresh_families.c.id],
                m[refresh_families.c.user_id],
                m[refresh_families.c.client_id],
                tuple(m[refresh_families.c.scope].split()),
                m[refresh_families.c.expires_at],
            )
            if m[refresh_families.c.revoked_at] is not None:
                return RefreshOutcome("invalid", family)
            consumed = await conn.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None)
                )
                .values(used_at=now)
            )
            if consumed.rowcount == 0:
                await self._revoke(conn, family, now, "reuse")
                return RefreshOutcome("reused", family)
            if m[refresh_tokens.c.expires_at] <= now:
                return RefreshOutcome("invalid", family)
            successor = new_secret()
            await self._insert(conn, family.id, successor, now, family.expires_at)
        return RefreshOutcome("ok", family, successor)

    async def _revoke(self, conn: AsyncConnection, family: Family, now: float, reason: str) -> None:
        await conn.execute(
            update(refresh_families)
            .where(refresh_families.c.id == family.id, refresh_families.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
        await self._revocations.family(conn, family.id, until=family.expires_at)

    async def revoke_family(self, family_id: str, reason: str) -> bool:
        """Revoke a family (logout, RFC 7009 revocation); ``False`` if unknown."""
        now = self._clock()
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(refresh_families).where(refresh_families.c.id == family_id)
                )
            ).first()
            if row is None:
                return False
            family = Family(
                row.id, row.user_id, row.client_id, tuple(row.scope.split()), row.expires_at
            )
            await self._revoke(conn, family, now, reason)
        return True

    async def family_of(self, token: str) -> str | None:
        """The family id of a refresh token (used or not), or ``None``."""
        async with self._db.connect() as conn:
            return (
                await conn.execute(
                    select(refresh_tokens.c.family_id).where(
                        refresh_tokens.c.token_hash == digest(token)
                    )
                )
            ).scalar()
