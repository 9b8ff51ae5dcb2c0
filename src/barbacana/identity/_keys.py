"""Signing keys at rest: private halves sealed under a key-encryption key.

The database holds only sealed PKCS#8 blobs; the key-encryption key (KEK)
comes from a secret source (a file in the data directory by default, Vault or
AWS in production), never from the database itself. Each blob is bound to its
``kid`` as associated data, so a blob moved to another row does not open.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sqlalchemy import insert, select, update

from .._clock import Clock, system_clock
from ..storage import Database
from ..tokens import SigningKey, next_to_promote, rotate
from ._tables import signing_keys
from .errors import RotationTooEarlyError

__all__ = ["KeySealer", "KeyStore", "Rewrapper"]


class KeySealer(Protocol):
    """Seals and opens private keys (AES-256-GCM envelope under the KEK)."""

    def seal(self, plaintext: bytes, *, aad: bytes) -> bytes: ...

    def open(self, blob: bytes, *, aad: bytes) -> bytes: ...


class Rewrapper(KeySealer, Protocol):
    """A sealer that knows the current and previous KEKs (``barbacana.crypto.Sealer``)."""

    def needs_rewrap(self, blob: bytes) -> bool: ...

    def rewrap(self, blob: bytes, *, aad: bytes) -> bytes: ...


class KeyStore:
    """The identity service's signing keys, persisted and rotated."""

    def __init__(self, db: Database, sealer: KeySealer, clock: Clock = system_clock) -> None:
        self._db = db
        self._sealer = sealer
        self._clock = clock

    def __repr__(self) -> str:
        return "KeyStore()"

    async def load(self) -> list[SigningKey]:
        """Every key that is not retired, with its private half opened."""
        async with self._db.connect() as conn:
            rows = (
                await conn.execute(
                    select(signing_keys)
                    .where(signing_keys.c.state != "retired")
                    .order_by(signing_keys.c.created_at)
                )
            ).all()
        return [self._open(row) for row in rows]

    async def all(self) -> list[dict[str, object]]:
        """Public metadata of every key, retired included (for ``keys list``)."""
        async with self._db.connect() as conn:
            rows = (
                await conn.execute(select(signing_keys).order_by(signing_keys.c.created_at))
            ).all()
        return [
            {
                "kid": row.kid,
                "alg": row.alg,
                "state": row.state,
                "created_at": row.created_at,
                "activated_at": row.activated_at,
                "retire_at": row.retire_at,
            }
            for row in rows
        ]

    def _open(self, row: object) -> SigningKey:
        m = row._mapping  # type: ignore[attr-defined]
        der = self._sealer.open(m["sealed_private_key"], aad=m["kid"].encode())
        return SigningKey.from_private_pkcs8(
            der,
            alg=m["alg"],
            state=m["state"],
            created_at=m["created_at"],
            activated_at=m["activated_at"],
            retire_at=m["retire_at"],
            kid=m["kid"],
        )

    async def _save(self, conn: object, keys: Iterable[SigningKey], known: set[str]) -> None:
        for key in keys:
            if key.kid in known:
                await conn.execute(  # type: ignore[attr-defined]
                    update(signing_keys)
                    .where(signing_keys.c.kid == key.kid)
                    .values(state=key.state, activated_at=key.activated_at, retire_at=key.retire_at)
                )
            else:
                await conn.execute(  # type: ignore[attr-defined]
                    insert(signing_keys).values(
                        kid=key.kid,
                        alg=key.alg,
                        state=key.state,
                        sealed_private_key=self._sealer.seal(
                            key.private_pkcs8(), aad=key.kid.encode()
                        ),
                        public_jwk=key.public_jwk(),
                        created_at=key.created_at,
                        activated_at=key.activated_at,
                        retire_at=key.retire_at,
                    )
                )

    async def rotate(
        self,
        *,
        alg: str,
        retire_after: float,
        ed25519_alg_name: str = "Ed25519",
        min_next_age: float = 0.0,
    ) -> list[SigningKey]:
        """One lifecycle step (next → active → retiring → retired), persisted atomically.

        Raises:
            RotationTooEarlyError: The ``next`` key is younger than ``min_next_age``:
                promoting it now could sign tokens that caches cannot verify yet.
        """
        async with self._db.begin() as conn:
            if self._db.dialect == "postgresql":
                await conn.execute(select(signing_keys.c.kid).with_for_update())
            rows = (
                await conn.execute(select(signing_keys).where(signing_keys.c.state != "retired"))
            ).all()
            current = [self._open(row) for row in rows]
            now = self._clock()
            # Only the key this step would promote must have been published long enough;
            # a next key of a previous algorithm is retired by the step, never promoted.
            promoted = next_to_promote(
                current,
                alg=alg,
                ed25519_alg_name=ed25519_alg_name,  # type: ignore[arg-type]
            )
            # On a fresh database nothing signs yet, so the first key may start at once.
            serving = any(key.state == "active" for key in current)
            if promoted is not None and serving and promoted.created_at + min_next_age > now:
                age = now - promoted.created_at
                raise RotationTooEarlyError(
                    f"the next key was published {age:.0f} s ago; it may sign after "
                    f"{min_next_age:.0f} s, once every JWKS cache has learned it"
                )
            updated = rotate(
                current,
                now=now,
                alg=alg,
                retire_after=retire_after,
                ed25519_alg_name=ed25519_alg_name,  # type: ignore[arg-type]
            )
            await self._save(conn, updated, {key.kid for key in current})
        return [key for key in updated if key.state != "retired"]

    @property
    def sealer(self) -> KeySealer:
        """The sealer in use (replaced when the KEK rotates)."""
        return self._sealer

    @sealer.setter
    def sealer(self, sealer: KeySealer) -> None:
        self._sealer = sealer

    async def rewrap(self, sealer: Rewrapper) -> int:
        """Move every sealed key to ``sealer``'s current KEK; how many moved.

        Each blob's payload is untouched: only its data key is re-encrypted
        (``sealer`` must also know the KEK the blobs are sealed under now).
        """
        moved = 0
        async with self._db.begin() as conn:
            rows = (
                await conn.execute(select(signing_keys.c.kid, signing_keys.c.sealed_private_key))
            ).all()
            for kid, blob in rows:
                if not sealer.needs_rewrap(blob):
                    continue
                await conn.execute(
                    update(signing_keys)
                    .where(signing_keys.c.kid == kid)
                    .values(sealed_private_key=sealer.rewrap(blob, aad=kid.encode()))
                )
                moved += 1
        self._sealer = sealer
        return moved

    async def retire_expired(self) -> list[str]:
        """Mark ``retiring`` keys whose window has passed as ``retired``; their kids.

        Each key is reported by the one caller that retired it, even when several
        instances sweep at once.
        """
        retired: list[str] = []
        async with self._db.begin() as conn:
            due = (
                await conn.execute(
                    select(signing_keys.c.kid).where(
                        signing_keys.c.state == "retiring",
                        signing_keys.c.retire_at <= self._clock(),
                    )
                )
            ).all()
            for (kid,) in due:
                result = await conn.execute(
                    update(signing_keys)
                    .where(signing_keys.c.kid == kid, signing_keys.c.state == "retiring")
                    .values(state="retired")
                )
                if result.rowcount:
                    retired.append(kid)
        return retired

    async def ensure_active(
        self, *, alg: str, retire_after: float, ed25519_alg_name: str = "Ed25519"
    ) -> list[SigningKey]:
        """The current keys, creating and activating a first key on a fresh database."""
        keys = await self.load()
        for _ in range(2):
            if any(key.state == "active" for key in keys):
                break
            keys = await self.rotate(
                alg=alg, retire_after=retire_after, ed25519_alg_name=ed25519_alg_name
            )
        return keys
