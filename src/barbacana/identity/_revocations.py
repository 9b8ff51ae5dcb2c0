"""The revocation log: what resource services follow to drop revoked tokens.

Every revocation is one row with a growing sequence number. Resource services
poll ``GET /internal/revocations?after=N`` (DESIGN: effective everywhere within
2 seconds, with nothing but the identity service's database in the embedded
default); identity instances poll the table itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .._clock import Clock, system_clock
from ..storage import Database
from ._tables import revocations

__all__ = ["Revocation", "RevocationLog"]

Kind = Literal["jti", "sid", "sub", "apikey"]


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revocation event, as served on the feed."""

    seq: int
    kind: str
    value: str
    until: float | None
    before: float | None

    def as_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "value": self.value,
            "until": self.until,
            "before": self.before,
        }


class RevocationLog:
    """Append and read revocation events."""

    def __init__(self, db: Database, clock: Clock = system_clock) -> None:
        self._db = db
        self._clock = clock

    async def _add(
        self,
        conn: AsyncConnection,
        kind: Kind,
        value: str,
        *,
        until: float | None = None,
        before: float | None = None,
    ) -> None:
        await conn.execute(
            insert(revocations).values(
                kind=kind, value=value, until=until, before=before, created_at=self._clock()
            )
        )

    async def token(self, conn: AsyncConnection, jti: str, until: float) -> None:
        """One access token is void until it would have expired anyway."""
        await self._add(conn, "jti", jti, until=until)

    async def family(self, conn: AsyncConnection, sid: str, until: float) -> None:
        """A refresh family and every access token minted from it are void."""
        await self._add(conn, "sid", sid, until=until)

    async def cut_off(self, conn: AsyncConnection, subject: str, before: float) -> None:
        """Every token of ``subject`` issued before ``before`` is void."""
        await self._add(conn, "sub", subject, before=before)

    async def api_key(self, conn: AsyncConnection, key_id: str) -> None:
        """An API key is void."""
        await self._add(conn, "apikey", key_id)

    async def since(self, after: int, limit: int = 1000) -> tuple[int, list[Revocation]]:
        """Events with ``seq > after`` (at most ``limit``) and the new cursor."""
        async with self._db.connect() as conn:
            rows = (
                await conn.execute(
                    select(revocations)
                    .where(revocations.c.seq > after)
                    .order_by(revocations.c.seq)
                    .limit(limit)
                )
            ).all()
            if not rows:
                head = (await conn.execute(select(func.max(revocations.c.seq)))).scalar()
                cursor = min(after, int(head or 0))
                return cursor, []
        events = [Revocation(r.seq, r.kind, r.value, r.until, r.before) for r in rows]
        return events[-1].seq, events
