"""Service clients (client_credentials) and the rotation of their secrets.

A client holds one secret, or two during a rotation: the new one, and the
previous one until its overlap ends. Services that read their secret from a
file (``BARBACANA_CLIENT_SECRET_FILE``) pick up the new one without a restart,
so an overlap of a few minutes is enough for a rotation that fails nothing;
after it the previous secret is refused, whether or not anything swept it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from .._clock import Clock, system_clock
from ..storage import Database
from ._secrets import digest, matches, new_secret
from ._tables import service_clients
from .errors import (
    ClientNotFoundError,
    InvalidClientError,
    InvalidRequestError,
    RotationInProgressError,
    UserExistsError,
)

__all__ = ["ClientSecretRotation", "ClientStore", "ServiceClient"]

_CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


@dataclass(frozen=True, slots=True)
class ServiceClient:
    """A confidential OAuth2 client (another service); never its secrets."""

    client_id: str
    scopes: tuple[str, ...]
    disabled: bool
    created_at: float = 0.0
    #: While a rotation overlaps: when the previous secret stops working.
    previous_valid_until: float | None = None


@dataclass(frozen=True, slots=True)
class ClientSecretRotation:
    """The outcome of a secret rotation; ``secret`` is shown once and kept out of ``repr``."""

    client_id: str
    secret: str = field(repr=False)
    #: When the previous secret stops working (the rotation's instant with no overlap).
    previous_valid_until: float


def _client(m: Mapping[Any, Any], now: float) -> ServiceClient:
    until = m["previous_expires_at"]
    overlapping = m["previous_secret_hash"] is not None and until is not None and until > now
    return ServiceClient(
        client_id=m["client_id"],
        scopes=tuple(m["scopes"]),
        disabled=bool(m["disabled"]),
        created_at=m["created_at"],
        previous_valid_until=until if overlapping else None,
    )


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
        now = self._clock()
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    insert(service_clients).values(
                        client_id=client_id,
                        secret_hash=digest(secret),
                        scopes=sorted(set(scopes)),
                        created_at=now,
                        disabled=False,
                    )
                )
        except IntegrityError:
            raise UserExistsError(f"client {client_id!r} already exists") from None
        return ServiceClient(client_id, tuple(sorted(set(scopes))), False, now), secret

    async def rotate_secret(
        self, client_id: str, overlap: float, *, force: bool = False
    ) -> ClientSecretRotation:
        """A new secret; the current one keeps working for ``overlap`` seconds.

        Only two secrets ever work at once, so a second rotation while the
        previous secret still works would cut off whoever still holds it: it is
        refused unless ``force`` (a leaked secret must go now).

        Raises:
            ClientNotFoundError: No such client.
            InvalidRequestError: ``overlap`` is negative.
            RotationInProgressError: The previous secret still works (and not ``force``).
        """
        if overlap < 0:
            raise InvalidRequestError("overlap must not be negative", field="overlap")
        secret = new_secret()
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(service_clients)
                    .where(service_clients.c.client_id == client_id)
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise ClientNotFoundError(f"no client {client_id!r}")
            now = self._clock()
            current = _client(row._mapping, now)
            if current.previous_valid_until is not None and not force:
                raise RotationInProgressError(
                    f"client {client_id!r} is in a rotation: its previous secret works until "
                    f"{current.previous_valid_until:.0f} (UNIX time); rotate again after that, "
                    "or force it to cut the previous secret off now"
                )
            until = now + overlap
            await conn.execute(
                update(service_clients)
                .where(service_clients.c.client_id == client_id)
                .values(
                    secret_hash=digest(secret),
                    previous_secret_hash=row.secret_hash,
                    previous_expires_at=until,
                )
            )
        return ClientSecretRotation(client_id, secret, until)

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
        now = self._clock()
        overlapping = (
            row is not None
            and row.previous_secret_hash is not None
            and (row.previous_expires_at or 0.0) > now
        )
        if not ok and overlapping and row is not None:
            ok = matches(secret, row.previous_secret_hash)
        if row is None or not ok or row.disabled:
            raise InvalidClientError("client authentication failed")
        return _client(row._mapping, now)

    async def get(self, client_id: str) -> ServiceClient | None:
        """The client with ``client_id``, or ``None``."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    select(service_clients).where(service_clients.c.client_id == client_id)
                )
            ).first()
        return None if row is None else _client(row._mapping, self._clock())

    async def all(self) -> list[ServiceClient]:
        """Every client, by id."""
        async with self._db.connect() as conn:
            rows = (
                await conn.execute(select(service_clients).order_by(service_clients.c.client_id))
            ).all()
        now = self._clock()
        return [_client(row._mapping, now) for row in rows]
