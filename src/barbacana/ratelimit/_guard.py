"""Brute-force protection on login (OWASP A07:2021; ASVS 2.2.1), like Keycloak's.

The identity service asks before checking a password and reports after::

    verdict = await guard.check(account, address)
    if not verdict.allowed:
        ...  # answer exactly as for a wrong password, with Retry-After
    await asyncio.sleep(verdict.delay)
    if password_ok:
        await guard.success(account, address)
    else:
        await guard.failure(account, address)

Failures are counted per account and per client address. Past a threshold
each further attempt waits twice as long as the one before (the delay is
returned, the caller applies it); at ``lock_after`` consecutive failures
(never more than 30) the account is locked for ``lock_seconds`` and every
check answers "locked" with a ``retry_after``. Slowing down alone is not
enough: an attacker with many connections can wait in parallel. After the
lock expires, one more failure locks again. A success resets the account,
never the address, so one good account does not launder an address's
guesses at others. Failures are forgotten ``failure_window`` seconds after
the last one. Unknown accounts are counted like real ones, so the guard's
answers reveal nothing about which accounts exist.

Account names are compared after NFKC normalisation and case folding
(``Alice`` and ``ALICE`` share one count); addresses by IPv4 address or IPv6 /64.
"""

from __future__ import annotations

import math
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from .._clock import Clock, system_clock
from ..errors import ConfigurationError
from ._policy import address_key
from ._settings import LoginGuardSettings

__all__ = ["Lockout", "LoginGuard", "MemoryLoginGuard", "Verdict", "login_guard_from_url"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """May this login attempt proceed, after waiting ``delay`` seconds?

    When locked, ``allowed`` is false and ``retry_after`` says in how many whole
    seconds the lock ends.
    """

    allowed: bool
    delay: float
    retry_after: int | None


@dataclass(frozen=True, slots=True)
class Lockout:
    """A locked account (or address) and the UNIX time its lock ends."""

    kind: Literal["account", "address"]
    name: str
    until: float


@dataclass(frozen=True, slots=True)
class _Thresholds:
    delay_after: int
    lock_after: int
    lock_seconds: int


# A subject's state: (consecutive failures, time of the last, locked until).
_State = tuple[int, float, float]


def normalize_account(account: str) -> str:
    """The form accounts are counted under: NFKC, case-folded, trimmed."""
    return unicodedata.normalize("NFKC", account).casefold().strip()


class LoginGuard(ABC):
    """Counts login failures per account and address; see the module docstring."""

    def __init__(self, settings: LoginGuardSettings | None = None) -> None:
        self.settings = s = settings or LoginGuardSettings()
        self._account = _Thresholds(s.delay_after, s.lock_after, s.lock_seconds)
        self._address = _Thresholds(
            s.address_delay_after, s.address_lock_after, s.address_lock_seconds
        )

    # -- the rules, shared by every backend ------------------------------

    def _current(self, state: _State | None, now: float) -> _State | None:
        """The state, or ``None`` once its failures are forgotten and no lock holds."""
        if state is None:
            return None
        if now - state[1] > self.settings.failure_window and state[2] <= now:
            return None
        return state

    def _after_failure(self, state: _State | None, now: float, th: _Thresholds) -> _State:
        state = self._current(state, now)
        failures, until = (state[0], state[2]) if state is not None else (0, 0.0)
        failures += 1
        if failures >= th.lock_after:
            until = now + th.lock_seconds
        return failures, now, until

    def _delay(self, state: _State | None, th: _Thresholds) -> float:
        if state is None or state[0] < th.delay_after:
            return 0.0
        s = self.settings
        return float(min(s.max_delay, s.base_delay * 2 ** min(state[0] - th.delay_after, 16)))

    def _verdict(self, account: _State | None, address: _State | None, now: float) -> Verdict:
        account, address = self._current(account, now), self._current(address, now)
        until = max((s[2] for s in (account, address) if s is not None), default=0.0)
        if until > now:
            return Verdict(False, 0.0, max(1, math.ceil(until - now)))
        delay = max(self._delay(account, self._account), self._delay(address, self._address))
        return Verdict(True, delay, None)

    # -- the API ------------------------------------------------------------

    @abstractmethod
    async def check(self, account: str, address: str) -> Verdict:
        """May an attempt on ``account`` from ``address`` proceed, and after what delay?"""

    @abstractmethod
    async def failure(self, account: str, address: str) -> Verdict:
        """Count a failed attempt; answer the verdict for the next one."""

    @abstractmethod
    async def success(self, account: str, address: str) -> None:
        """Reset ``account``'s count after a successful login (the address keeps its count)."""

    @abstractmethod
    async def locked(self) -> list[Lockout]:
        """Every account and address locked now, soonest unlock first."""

    @abstractmethod
    async def unlock(self, account: str) -> bool:
        """Forget ``account``'s failures and lock; ``False`` if there was nothing to forget."""

    @abstractmethod
    async def unlock_address(self, address: str) -> bool:
        """Forget ``address``'s failures and lock."""

    async def aclose(self) -> None:  # noqa: B027 -- only shared backends hold connections
        """Release connections."""


class MemoryLoginGuard(LoginGuard):
    """The login guard with its counts in this process (bounded by ``max_entries``)."""

    def __init__(
        self, settings: LoginGuardSettings | None = None, *, clock: Clock = system_clock
    ) -> None:
        super().__init__(settings)
        self._clock = clock
        self._states: dict[str, _State] = {}

    def _key(self, kind: str, name: str) -> str:
        return f"acct:{normalize_account(name)}" if kind == "account" else address_key(name)

    async def check(self, account: str, address: str) -> Verdict:
        now = self._clock()
        return self._verdict(
            self._states.get(self._key("account", account)),
            self._states.get(self._key("address", address)),
            now,
        )

    async def failure(self, account: str, address: str) -> Verdict:
        now = self._clock()
        acct, addr = self._key("account", account), self._key("address", address)
        self._states[acct] = self._after_failure(self._states.get(acct), now, self._account)
        self._states[addr] = self._after_failure(self._states.get(addr), now, self._address)
        if len(self._states) > self.settings.max_entries:
            self._sweep(now)
        return self._verdict(self._states[acct], self._states[addr], now)

    def _sweep(self, now: float) -> None:
        states = self._states
        for key in [k for k, s in states.items() if self._current(s, now) is None]:
            del states[key]
        excess = len(states) - self.settings.max_entries * 3 // 4
        if excess > 0:  # forget unlocked subjects first, the longest idle first
            order = sorted(states, key=lambda k: (states[k][2] > now, states[k][1]))
            for key in order[:excess]:
                del states[key]

    async def success(self, account: str, address: str) -> None:
        self._states.pop(self._key("account", account), None)

    async def locked(self) -> list[Lockout]:
        now = self._clock()
        found = [
            Lockout("account" if k.startswith("acct:") else "address", k.split(":", 1)[1], s[2])
            for k, s in self._states.items()
            if s[2] > now
        ]
        return sorted(found, key=lambda lock: lock.until)

    async def unlock(self, account: str) -> bool:
        return self._states.pop(self._key("account", account), None) is not None

    async def unlock_address(self, address: str) -> bool:
        return self._states.pop(self._key("address", address), None) is not None


def login_guard_from_url(
    url: str | None, settings: LoginGuardSettings | None = None, **options: object
) -> LoginGuard:
    """The guard a URL names: ``None``/``memory://`` in process, ``redis://...`` shared.

    Raises:
        ConfigurationError: the scheme is unknown.
    """
    scheme = (url or "memory://").split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryLoginGuard(settings, **options)  # type: ignore[arg-type]
    if scheme in {"redis", "rediss", "unix"}:
        from ._guard_redis import RedisLoginGuard

        return RedisLoginGuard(url or "", settings, **options)  # type: ignore[arg-type]
    raise ConfigurationError(f"unknown login guard store scheme {scheme!r}")
