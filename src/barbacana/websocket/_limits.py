"""Per-connection message rate and per-user connection caps.

The message rate is a token bucket (:class:`~barbacana.ratelimit.TokenBucket`'s
pure arithmetic) held by the connection itself: one socket is served by one
process, so nothing needs sharing and a decision costs no I/O.

Connection caps must hold across instances, so :class:`RedisConnectionCounter`
keeps each user's open connections in one sorted set, scored by a lease
expiry. Acquiring is one Lua script (drop expired leases, count, add if below
the cap) reading Redis ``TIME``, atomic on a single server or a Cluster (one
key). Each instance renews the leases of its live sockets; an instance that
dies without releasing them stops counting once its leases run out.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from .._clock import Clock, system_clock
from ..errors import ConfigurationError
from ..ratelimit import TokenBucket
from .errors import ConnectionStoreUnavailableError

__all__ = [
    "ConnectionCounter",
    "MemoryConnectionCounter",
    "MessageRate",
    "RedisConnectionCounter",
    "connection_counter_from_url",
]


class MessageRate:
    """A token bucket: ``burst`` messages at once, refilled at ``rate`` per second.

    Raises:
        ConfigurationError: ``rate`` or ``burst`` is not positive.
    """

    __slots__ = ("_burst", "_clock", "_state", "_window")

    def __init__(self, rate: float, burst: int, *, clock: Clock = system_clock) -> None:
        if rate <= 0 or burst < 1:
            raise ConfigurationError("a message rate needs rate > 0 and burst >= 1")
        self._burst = burst
        # TokenBucket refills ``amount`` per ``window``: burst / (burst / rate) = rate.
        self._window = burst / rate
        self._clock = clock
        self._state: Any = None

    def allow(self) -> bool:
        """Take one token; False when the bucket is empty (the message is refused)."""
        allowed, _, _, _, state, _ = TokenBucket.check(
            self._state, self._clock(), self._burst, self._window, 1
        )
        if allowed:
            self._state = state
        return allowed


class ConnectionCounter(ABC):
    """Counts each user's open connections against a cap."""

    @abstractmethod
    async def acquire(self, subject: str, connection_id: str, limit: int) -> bool:
        """Count ``connection_id`` for ``subject`` if fewer than ``limit`` are open.

        Raises:
            ConnectionStoreUnavailableError: The shared store cannot be reached.
        """

    @abstractmethod
    async def release(self, subject: str, connection_id: str) -> None:
        """Stop counting ``connection_id`` (idempotent; never raises for an outage)."""

    async def renew(self, held: Iterable[tuple[str, str]]) -> None:  # noqa: B027 -- in-process counts need no lease
        """Extend the leases of the ``(subject, connection_id)`` pairs still open here."""

    async def aclose(self) -> None:  # noqa: B027 -- most counters hold nothing to close
        """Release connections."""


class MemoryConnectionCounter(ConnectionCounter):
    """Connection counts of this process (one instance)."""

    def __init__(self) -> None:
        self._open: dict[str, set[str]] = {}

    def count(self, subject: str) -> int:
        """How many connections ``subject`` holds."""
        return len(self._open.get(subject, ()))

    async def acquire(self, subject: str, connection_id: str, limit: int) -> bool:
        held = self._open.setdefault(subject, set())
        if connection_id in held:
            return True
        if len(held) >= limit:
            return False
        held.add(connection_id)
        return True

    async def release(self, subject: str, connection_id: str) -> None:
        held = self._open.get(subject)
        if held is not None:
            held.discard(connection_id)
            if not held:
                del self._open[subject]


# KEYS[1]: the user's sorted set. ARGV: connection id, cap, lease (ms).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
return 1
"""

# KEYS[1]: the user's sorted set. ARGV: lease (ms), then connection ids held here.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease)
return 1
"""


def _tag(subject: str) -> str:
    # A Redis Cluster hash tag must not be closed early by the subject itself.
    return subject.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


class RedisConnectionCounter(ConnectionCounter):
    """Connection counts shared by every instance through Redis; see the module docstring.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL.
        key_prefix: First part of every key (``<prefix>:conns:{<subject>}``).
        lease: Seconds a connection counts without being renewed.
        timeout: Seconds to wait for Redis.
    """

    def __init__(
        self, url: str, *, key_prefix: str = "brb:ws", lease: float = 60.0, timeout: float = 2.0
    ) -> None:
        import redis.asyncio as aioredis

        if lease < 1:
            raise ConfigurationError("the connection lease must be at least one second")
        try:
            self._redis = aioredis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"bad connection-counter Redis URL: {exc}") from None
        self._prefix = key_prefix
        self._lease_ms = int(lease * 1000)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)

    def __repr__(self) -> str:
        return f"RedisConnectionCounter(prefix={self._prefix!r})"

    def _key(self, subject: str) -> str:
        return f"{self._prefix}:conns:{{{_tag(subject)}}}"

    async def acquire(self, subject: str, connection_id: str, limit: int) -> bool:
        from redis.exceptions import RedisError

        try:
            result = await self._acquire(
                keys=[self._key(subject)], args=[connection_id, limit, self._lease_ms]
            )
        except RedisError as exc:
            raise ConnectionStoreUnavailableError(
                "connection counts cannot be checked now"
            ) from exc
        return bool(result)

    async def release(self, subject: str, connection_id: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.zrem(self._key(subject), connection_id)
        except RedisError:
            # The lease ends on its own; a release must not fail a close.
            return

    async def count(self, subject: str) -> int:
        """Live connections of ``subject`` across instances (for tests and operators)."""
        seconds, micros = await self._redis.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        return int(await self._redis.zcount(self._key(subject), now_ms, "+inf"))

    async def renew(self, held: Iterable[tuple[str, str]]) -> None:
        from redis.exceptions import RedisError

        by_subject: dict[str, list[str]] = {}
        for subject, connection_id in held:
            by_subject.setdefault(subject, []).append(connection_id)
        try:
            await asyncio.gather(
                *(
                    self._renew(keys=[self._key(s)], args=[self._lease_ms, *ids])
                    for s, ids in by_subject.items()
                )
            )
        except RedisError:
            # Retried at the next renewal; leases are long compared with the interval.
            return

    async def aclose(self) -> None:
        await self._redis.aclose()


def connection_counter_from_url(
    url: str | None, *, key_prefix: str = "brb:ws", lease: float = 60.0
) -> ConnectionCounter:
    """In process for ``None``/``memory://``; Redis for ``redis://``, ``rediss://``, ``unix://``.

    Raises:
        ConfigurationError: The scheme is unknown.
    """
    scheme = (url or "memory://").split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryConnectionCounter()
    if scheme in {"redis", "rediss", "unix"}:
        return RedisConnectionCounter(url or "", key_prefix=key_prefix, lease=lease)
    raise ConfigurationError(
        f"unknown connection-counter scheme {scheme!r}; use memory://, redis://, rediss:// or unix://"
    )
