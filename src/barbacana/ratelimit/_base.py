"""The store contract: decisions, health, and the scheme table.

A store counts. ``await store.hit(identity, meters, algorithm=..., cost=...)``
charges ``cost`` to every meter of one identity *all or nothing*: the request
is admitted only if every meter admits it, and a refused request charges none
of them (a request refused by ``10/second`` does not eat into ``500/hour``).
Every meter of one decision shares the identity's Redis hash tag, so one
atomic script sees them all, on a single server or a Redis Cluster.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from ..errors import ConfigurationError
from ._algorithms import Algorithm
from ._limits import Meter

__all__ = [
    "Decision",
    "FailureMode",
    "Source",
    "Store",
    "StoreHealth",
    "encode_identity",
    "store_from_url",
]

#: What a shared store's outage does to a request: admit it, refuse it with a
#: 503, or count it in process until the store returns.
FailureMode = Literal["open", "closed", "fallback"]
#: Who decided: the store itself, the in-process fallback, or nobody (failed open).
Source = Literal["memory", "redis", "fallback", "open"]


class Decision(NamedTuple):
    """The answer for one request: admitted or not, and each meter's quota.

    ``remaining``, ``reset_ms`` and ``retry_ms`` run parallel to ``meters``.
    A decision taken while failing open carries no quota numbers (empty tuples).
    (A named tuple: it is built on every request, and that is the cheapest.)
    """

    allowed: bool
    meters: tuple[Meter, ...]
    remaining: tuple[int, ...]
    reset_ms: tuple[int, ...]
    retry_ms: tuple[int, ...]
    source: Source

    @property
    def retry_after(self) -> int:
        """Whole seconds before a refused request may succeed (0 if admitted).

        The longest wait among the meters that refused, rounded up, never below
        one second (RFC 9110 §10.2.3 ``Retry-After`` takes whole seconds).
        """
        if self.allowed:
            return 0
        longest = max(self.retry_ms, default=1000)
        return max(1, math.ceil(longest / 1000))


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """What ``store.health()`` reports: is the store answering, and since when."""

    backend: str
    available: bool
    #: UNIX time of the last change between available and unavailable.
    since: float
    #: The class of the error that made the store unavailable, if it is.
    error: str | None = None


def encode_identity(identity: str) -> str:
    """Make an identity safe inside a Redis hash tag ``{...}``.

    Braces and ``%`` are percent-encoded so an identity can neither close the
    tag early nor collide with another identity's encoding; identities longer
    than 128 characters are replaced by their SHA-256.
    """
    if len(identity) > 128:
        return "h:" + hashlib.sha256(identity.encode()).hexdigest()
    if "{" in identity or "}" in identity or "%" in identity:
        return identity.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return identity


class Store(ABC):
    """Counts requests for rate limits; see the module docstring."""

    @abstractmethod
    async def hit(
        self,
        identity: str,
        meters: Sequence[Meter],
        *,
        algorithm: type[Algorithm],
        cost: int = 1,
        failure_mode: FailureMode = "fallback",
    ) -> Decision:
        """Charge ``cost`` to every meter of ``identity``, all or nothing.

        ``failure_mode`` applies only to a shared store that cannot be reached.

        Raises:
            ConfigurationError: ``cost`` is below 1 or above a meter's amount.
            LimiterUnavailable: the store is down and ``failure_mode`` is ``"closed"``.
        """

    @abstractmethod
    def health(self) -> StoreHealth:
        """Whether the store answers now (no I/O: the last known state)."""

    async def aclose(self) -> None:  # noqa: B027 -- most stores hold nothing to close
        """Release connections and background tasks."""


def check_cost(meters: Sequence[Meter], cost: int) -> None:
    """Refuse a cost that no meter could ever admit.

    Raises:
        ConfigurationError: ``cost`` is below 1 or above some meter's amount.
    """
    if cost < 1 or any(cost > m.limit.amount for m in meters):
        raise ConfigurationError(
            f"a request's cost ({cost}) must be at least 1 and at most every limit's amount"
        )


def ms(seconds: float) -> int:
    """Seconds to whole milliseconds, rounded up (the stores' unit on the wire)."""
    return math.ceil(seconds * 1000)


def retry_ms(seconds: float) -> int:
    """A wait in whole milliseconds, rounded up past the clock's own rounding.

    A UNIX time near 1.7e9 is a double with a resolution of about 0.24 µs, so
    ``now + retry`` can land just short of the true moment; one microsecond of
    margin makes "come back after ``retry_ms``" always enough. The Lua scripts
    do the same.
    """
    return math.ceil((seconds + 0.000001) * 1000) if seconds > 0 else 0


def store_from_url(url: str | None, **options: object) -> Store:
    """Build the store a URL names: ``None`` or ``memory://`` → in process,
    ``redis://``, ``rediss://`` or ``unix://`` → Redis.

    Options go to the store's constructor (``key_prefix``, ``max_keys``...).

    Raises:
        ConfigurationError: the scheme is unknown.
    """
    scheme = (url or "memory://").split("://", 1)[0].lower()
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore(**options)  # type: ignore[arg-type]
    if scheme in {"redis", "rediss", "unix"}:
        from .redis import RedisStore

        return RedisStore(url or "", **options)  # type: ignore[arg-type]
    raise ConfigurationError(
        f"unknown rate-limit store scheme {scheme!r}; use memory://, redis://, rediss:// or unix://"
    )
