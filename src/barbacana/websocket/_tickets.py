"""Single-use WebSocket tickets: issued by the identity service, redeemed before accept.

Browsers cannot set ``Authorization`` on a WebSocket handshake, and a token
in the URL ends up in access logs, proxies and history (seed §5.6). So a
client trades its bearer token for a *ticket* over an ordinary authenticated
``POST /ws/tickets`` and presents the ticket in the handshake. A ticket is:

- random (256 bits from :func:`secrets.token_urlsafe`) and stored only as its
  SHA-256, so a dump of the store holds nothing presentable;
- single-use: redeeming removes it atomically (``GETDEL`` on Redis, ``pop``
  in process), so two handshakes racing with one ticket get one success;
- short-lived (30 s by default, never past the token's own ``exp``);
- bound to the user's token (``sub``, ``sid``, ``jti``, ``iat``, ``exp``,
  roles and scopes, so the WebSocket service can follow revocations), to a
  room if one was named, and to the ``Origin`` of the page that asked for it
  (or to no origin, for a program that sent none).

Stores: :class:`MemoryTicketStore` in the identity service's process (the
WebSocket service redeems through the identity service's internal endpoint
over mTLS), or :class:`RedisTicketStore` shared by every instance.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._clock import Clock, system_clock
from ..errors import ConfigurationError
from ..tokens import AccessClaims
from .errors import TicketStoreFullError, TicketStoreUnavailableError

__all__ = [
    "MemoryTicketStore",
    "RedisTicketStore",
    "TicketRecord",
    "TicketRedeemer",
    "TicketStore",
    "new_ticket",
    "ticket_digest",
    "ticket_expiry",
    "ticket_store_from_url",
    "well_formed_ticket",
]

#: base64url of 32 random bytes is 43 characters; anything longer is not ours.
_TICKET = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


def new_ticket() -> str:
    """A fresh ticket: 256 random bits, base64url (safe in a subprotocol or a query)."""
    return secrets.token_urlsafe(32)


def well_formed_ticket(ticket: str) -> bool:
    """True when ``ticket`` could come from :func:`new_ticket` (checked before any lookup)."""
    return _TICKET.fullmatch(ticket) is not None


def ticket_digest(ticket: str) -> str:
    """The key a ticket is stored under: its SHA-256, hex."""
    return hashlib.sha256(ticket.encode("ascii")).hexdigest()


class TicketRecord(BaseModel):
    """What a ticket stands for: the token it was traded for, and its bindings."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    sub: str = Field(min_length=1, max_length=256)
    username: str | None = Field(None, max_length=256)
    #: Refresh-token family of the access token (``None`` for client tokens).
    sid: str | None = Field(None, max_length=256)
    jti: str = Field(min_length=1, max_length=256)
    iat: float
    exp: float
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    client_id: str | None = Field(None, max_length=256)
    #: The room the ticket is for, or ``None`` for any room the user may join.
    room: str | None = Field(None, max_length=64)
    #: The ``Origin`` of the page that asked for the ticket, ``None`` for a program.
    origin: str | None = Field(None, max_length=2048)
    #: UNIX time after which the ticket cannot be redeemed.
    expires_at: float

    @classmethod
    def from_claims(
        cls,
        claims: AccessClaims,
        *,
        origin: str | None,
        room: str | None,
        expires_at: float,
    ) -> TicketRecord:
        """The record of a ticket traded for the verified token ``claims``."""
        username = claims.raw.get("preferred_username")
        return cls(
            sub=claims.sub,
            username=username if isinstance(username, str) else None,
            sid=claims.sid,
            jti=claims.jti,
            iat=float(claims.iat),
            exp=float(claims.exp),
            roles=tuple(claims.roles),
            scopes=tuple(sorted(claims.scope)),
            client_id=claims.client_id,
            room=room,
            origin=origin,
            expires_at=expires_at,
        )

    def claims(self) -> AccessClaims:
        """The token's claims as a :class:`RevocationState` checks them."""
        return AccessClaims(
            sub=self.sub,
            scope=frozenset(self.scopes),
            roles=self.roles,
            client_id=self.client_id or "",
            jti=self.jti,
            sid=self.sid,
            iat=self.iat,
            exp=self.exp,
            iss="",
            aud=(),
            raw={},
        )

    def with_roles(self, roles: tuple[str, ...]) -> TicketRecord:
        """The same record with the user's current roles (for re-checking a room's rules)."""
        return self.model_copy(update={"roles": roles})

    @classmethod
    def parse(cls, data: str | bytes | Mapping[str, Any]) -> TicketRecord:
        """A record from stored JSON or a decoded mapping.

        Raises:
            TicketStoreUnavailableError: The stored value is not a ticket record.
        """
        try:
            if isinstance(data, str | bytes):
                return cls.model_validate_json(data)
            # JSON numbers may arrive as ints: validate like JSON, not like Python.
            return cls.model_validate_json(json.dumps(dict(data)))
        except (ValidationError, TypeError, ValueError):
            raise TicketStoreUnavailableError("a stored ticket record is malformed") from None


class TicketRedeemer(Protocol):
    """What a WebSocket service needs: take a ticket once, get what it stands for."""

    async def redeem(self, ticket: str) -> TicketRecord | None:
        """The ticket's record, removing it; ``None`` if unknown, expired or used.

        Raises:
            TicketStoreUnavailableError: The store cannot be reached.
        """
        ...


class TicketStore(ABC):
    """Keeps tickets between issue and redemption; see the module docstring."""

    @abstractmethod
    async def issue(self, record: TicketRecord) -> str:
        """Store ``record`` under a fresh ticket and return the ticket.

        Raises:
            TicketStoreUnavailableError: The store cannot be reached.
            TicketStoreFullError: The in-process store is full.
        """

    @abstractmethod
    async def redeem(self, ticket: str) -> TicketRecord | None:
        """Atomically take a ticket: its record, or ``None`` if unknown, expired or used.

        Raises:
            TicketStoreUnavailableError: The store cannot be reached.
        """

    async def check(self) -> None:  # noqa: B027 -- the in-process store is always up
        """Raise :class:`TicketStoreUnavailableError` unless the store answers."""

    async def aclose(self) -> None:  # noqa: B027 -- most stores hold nothing to close
        """Release connections."""


class MemoryTicketStore(TicketStore):
    """Tickets in this process: the embedded default (one identity-service instance).

    Args:
        clock: Time source.
        max_tickets: Live tickets kept at most; expired ones are swept first.
    """

    def __init__(self, *, clock: Clock = system_clock, max_tickets: int = 100_000) -> None:
        if max_tickets < 1:
            raise ConfigurationError("max_tickets must be at least 1")
        self._clock = clock
        self._max = max_tickets
        self._tickets: dict[str, TicketRecord] = {}

    def __len__(self) -> int:
        return len(self._tickets)

    def __repr__(self) -> str:
        return f"MemoryTicketStore(live={len(self._tickets)})"

    async def issue(self, record: TicketRecord) -> str:
        if len(self._tickets) >= self._max:
            now = self._clock()
            for key in [k for k, r in self._tickets.items() if r.expires_at <= now]:
                del self._tickets[key]
            if len(self._tickets) >= self._max:
                raise TicketStoreFullError("too many live WebSocket tickets; retry shortly")
        ticket = new_ticket()
        self._tickets[ticket_digest(ticket)] = record
        return ticket

    async def redeem(self, ticket: str) -> TicketRecord | None:
        if not well_formed_ticket(ticket):
            return None
        record = self._tickets.pop(ticket_digest(ticket), None)
        if record is None or record.expires_at <= self._clock():
            return None
        return record


class RedisTicketStore(TicketStore):
    """Tickets in Redis, shared by every identity and WebSocket instance.

    Keys are ``<prefix>:ticket:<sha256>`` with a ``PX`` expiry equal to the
    ticket's lifetime; redemption is one ``GETDEL`` (Redis 6.2+), so a ticket
    is handed out once even when two instances race for it.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL.
        key_prefix: First part of every key.
        clock: Time source (for the record's own expiry check).
        timeout: Seconds to wait for Redis before the operation fails.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "brb:ws",
        clock: Clock = system_clock,
        timeout: float = 2.0,
    ) -> None:
        import redis.asyncio as aioredis

        try:
            self._redis = aioredis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"bad ticket-store Redis URL: {exc}") from None
        self._prefix = key_prefix
        self._clock = clock

    def __repr__(self) -> str:
        return f"RedisTicketStore(prefix={self._prefix!r})"

    def _key(self, digest: str) -> str:
        return f"{self._prefix}:ticket:{digest}"

    async def issue(self, record: TicketRecord) -> str:
        from redis.exceptions import RedisError

        ticket = new_ticket()
        ttl_ms = max(1, int((record.expires_at - self._clock()) * 1000))
        try:
            await self._redis.set(
                self._key(ticket_digest(ticket)), record.model_dump_json(), px=ttl_ms, nx=True
            )
        except RedisError as exc:
            raise TicketStoreUnavailableError("the ticket store cannot be reached") from exc
        return ticket

    async def redeem(self, ticket: str) -> TicketRecord | None:
        from redis.exceptions import RedisError

        if not well_formed_ticket(ticket):
            return None
        try:
            raw = await self._redis.getdel(self._key(ticket_digest(ticket)))
        except RedisError as exc:
            raise TicketStoreUnavailableError("the ticket store cannot be reached") from exc
        if raw is None:
            return None
        record = TicketRecord.parse(raw)
        return record if record.expires_at > self._clock() else None

    async def check(self) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.ping()
        except RedisError as exc:
            raise TicketStoreUnavailableError("the ticket store cannot be reached") from exc

    async def aclose(self) -> None:
        await self._redis.aclose()


def ticket_store_from_url(
    url: str | None, *, key_prefix: str = "brb:ws", clock: Clock = system_clock
) -> TicketStore:
    """The store a URL names: ``None`` or ``memory://`` → in process; ``redis://``,
    ``rediss://`` or ``unix://`` → Redis.

    Raises:
        ConfigurationError: The scheme is unknown.
    """
    scheme = (url or "memory://").split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryTicketStore(clock=clock)
    if scheme in {"redis", "rediss", "unix"}:
        return RedisTicketStore(url or "", key_prefix=key_prefix, clock=clock)
    raise ConfigurationError(
        f"unknown ticket-store scheme {scheme!r}; use memory://, redis://, rediss:// or unix://"
    )


def ticket_expiry(now: float, ttl: float, token_exp: float) -> float:
    """When a ticket issued at ``now`` expires: after ``ttl`` seconds, never after its token."""
    return min(now + ttl, token_exp)
