"""Limits (an amount per window) and meters (a limit applied to one bucket).

A limit is written the way people say it: ``"10/second"``, ``"500/hour"``,
``"5 per 10 minutes"``, ``"100/30s"``. Parsing happens once, when policies are
built, and a bad string is a :class:`~barbacana.errors.ConfigurationError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ConfigurationError

__all__ = ["MAX_AMOUNT", "MAX_WINDOW", "Limit", "Meter", "parse_limit"]

#: Largest amount a limit may allow per window (keeps every count exact in a double).
MAX_AMOUNT = 10_000_000
#: Longest window, in seconds (31 days).
MAX_WINDOW = 31 * 86_400.0

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86_400.0,
    "day": 86_400.0,
    "days": 86_400.0,
}
_LIMIT = re.compile(
    r"^\s*(?P<amount>\d{1,9})\s*(?:/|\bper\b)\s*(?P<count>\d{1,7}(?:\.\d{1,3})?)?\s*"
    r"(?P<unit>[a-z]+)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``amount`` units of cost per ``window`` seconds."""

    amount: int
    window: float

    def __post_init__(self) -> None:
        if not 1 <= self.amount <= MAX_AMOUNT:
            raise ConfigurationError(f"a limit's amount must be 1..{MAX_AMOUNT}, not {self.amount}")
        if not 0.001 <= self.window <= MAX_WINDOW:
            raise ConfigurationError(
                f"a limit's window must be 0.001..{MAX_WINDOW:g} seconds, not {self.window}"
            )

    def __str__(self) -> str:
        return f"{self.amount}/{self.window:g}s"


def parse_limit(text: str) -> Limit:
    """Parse ``"10/second"``, ``"500/hour"``, ``"5 per 10 minutes"`` or ``"100/30s"``.

    Raises:
        ConfigurationError: the text is not a limit, or its numbers are out of range.
    """
    match = _LIMIT.match(text) if isinstance(text, str) else None
    unit = _UNITS.get(match["unit"].lower()) if match else None
    if match is None or unit is None:
        raise ConfigurationError(
            f"{text!r} is not a rate limit; write it like '10/second', '500/hour' "
            "or '5 per 10 minutes'"
        )
    count = float(match["count"]) if match["count"] else 1.0
    return Limit(int(match["amount"]), count * unit)


_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Meter:
    """One limit applied to one bucket.

    ``name`` is the quota policy name shown in ``RateLimit-Policy``; ``scope``
    says what is counted (``"global"``, or a policy, method and route
    template). Two meters with the same scope and limit share their counter.
    """

    name: str
    scope: str
    limit: Limit
    #: The counter's key suffix: scope and limit, so a changed limit starts afresh.
    key: str = field(init=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigurationError(
                f"quota policy name {self.name!r} must be 1-64 letters, digits, '_', '.' or '-'"
            )
        object.__setattr__(self, "key", f"{self.scope}:{self.limit.amount}/{self.limit.window:g}")
