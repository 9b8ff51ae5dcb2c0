"""The login guard on Redis: every instance of the identity service sees one count.

Each subject (``acct:<name>``, ``addr:<address>``) is a hash ``f, l, u``
(failures, last failure, locked until) with an expiry; a sorted set lists
locks for :meth:`RedisLoginGuard.locked`. A check is one round trip (a
pipeline of ``TIME`` and two ``HMGET``); a failure runs one short script per
subject (account, then address) that counts and locks using Redis ``TIME``,
plus one ``ZADD`` when it locks. Keys are hash-tagged per subject, so they
spread over a Redis Cluster.

If Redis cannot be reached the guard keeps working from an in-process guard
(logged once), and goes back to Redis ``retry_interval`` seconds later.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from .._clock import Clock
from ._base import encode_identity
from ._guard import (
    Lockout,
    LoginGuard,
    MemoryLoginGuard,
    Verdict,
    _State,
    _Thresholds,
    normalize_account,
)
from ._policy import address_key
from ._settings import LoginGuardSettings

__all__ = ["RedisLoginGuard"]

logger = logging.getLogger("barbacana.ratelimit")

# Mirrors LoginGuard._after_failure.
_FAILURE = """
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local window, lock_after, lock_seconds = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'f', 'l', 'u')
local f, u = 0, 0
if h[1] then
  local l = tonumber(h[2])
  u = tonumber(h[3])
  if now - l > window and u <= now then
    u = 0
  else
    f = tonumber(h[1])
  end
end
f = f + 1
if f >= lock_after then u = now + lock_seconds end
local fmt = '%.17g'
redis.call('HSET', KEYS[1], 'f', f, 'l', string.format(fmt, now), 'u', string.format(fmt, u))
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(window, u - now) * 1000) + 1000)
return {f, string.format('%.17g', now), string.format('%.17g', u)}
"""
# Redis names scripts by their SHA-1; not a security use.
_SHA = hashlib.sha1(_FAILURE.encode(), usedforsecurity=False).hexdigest()


class RedisLoginGuard(LoginGuard):
    """The login guard with its counts in Redis; see the module docstring.

    Args:
        url: the Redis URL.
        settings: thresholds.
        timeout: seconds to wait for Redis before using the in-process guard.
        retry_interval: seconds before trying Redis again after a failure.
        clock: tests only: a time source used instead of Redis ``TIME``.
    """

    def __init__(
        self,
        url: str,
        settings: LoginGuardSettings | None = None,
        *,
        timeout: float = 0.5,
        retry_interval: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        super().__init__(settings)
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._clock = clock
        self._retry_interval = retry_interval
        self._fallback = MemoryLoginGuard(self.settings, clock=clock or time.time)
        self._down_until = 0.0
        prefix = self.settings.key_prefix
        self._index = f"{prefix}:{{locks}}"
        self._prefix = prefix

    def _key(self, subject: str) -> str:
        return f"{self._prefix}:{{{encode_identity(subject)}}}"

    def _now_arg(self) -> str:
        return repr(self._clock()) if self._clock is not None else ""

    async def _use_redis(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        first = self._down_until == 0.0
        self._down_until = time.monotonic() + self._retry_interval
        if first:
            logger.warning(
                "login guard: redis unavailable (%s); counting in process until it returns",
                type(exc).__name__,
            )

    def _recovered(self) -> None:
        if self._down_until:
            self._down_until = 0.0
            logger.info("login guard: redis is back")

    @staticmethod
    def _state(raw: list[Any]) -> _State | None:
        if raw[0] is None:
            return None
        return int(raw[0]), float(raw[1]), float(raw[2])

    async def check(self, account: str, address: str) -> Verdict:
        if await self._use_redis():
            try:
                pipe = self._redis.pipeline(transaction=False)
                if self._clock is None:
                    pipe.time()
                pipe.hmget(self._key(f"acct:{normalize_account(account)}"), "f", "l", "u")
                pipe.hmget(self._key(address_key(address)), "f", "l", "u")
                replies = await pipe.execute()
            except Exception as exc:  # noqa: BLE001 -- any driver failure: use the fallback
                self._failed(exc)
            else:
                self._recovered()
                if self._clock is None:
                    seconds, micros = replies.pop(0)
                    now = seconds + micros / 1_000_000
                else:
                    now = self._clock()
                return self._verdict(self._state(replies[0]), self._state(replies[1]), now)
        return await self._fallback.check(account, address)

    async def _fail_one(self, subject: str, th: _Thresholds) -> tuple[_State, float]:
        from redis.exceptions import NoScriptError

        args = (
            self._now_arg(),
            self.settings.failure_window,
            th.lock_after,
            th.lock_seconds,
        )
        key = self._key(subject)
        try:
            raw: Any = await self._redis.evalsha(_SHA, 1, key, *args)
        except NoScriptError:
            raw = await self._redis.eval(_FAILURE, 1, key, *args)
        failures, now, until = int(raw[0]), float(raw[1]), float(raw[2])
        if until > now and failures >= th.lock_after:
            # The index expires with its longest possible lock, so it too always expires.
            longest = max(self.settings.lock_seconds, self.settings.address_lock_seconds)
            pipe = self._redis.pipeline(transaction=False)
            pipe.zadd(self._index, {subject: until})
            pipe.pexpire(self._index, longest * 1000 + 1000)
            await pipe.execute()
        return (failures, now, until), now

    async def failure(self, account: str, address: str) -> Verdict:
        if await self._use_redis():
            try:
                acct, now = await self._fail_one(
                    f"acct:{normalize_account(account)}", self._account
                )
                addr, _ = await self._fail_one(address_key(address), self._address)
            except Exception as exc:  # noqa: BLE001 -- any driver failure: use the fallback
                self._failed(exc)
            else:
                self._recovered()
                return self._verdict(acct, addr, now)
        return await self._fallback.failure(account, address)

    async def success(self, account: str, address: str) -> None:
        subject = f"acct:{normalize_account(account)}"
        await self._fallback.success(account, address)
        if await self._use_redis():
            try:
                await self._forget(subject)
            except Exception as exc:  # noqa: BLE001 -- any driver failure: use the fallback
                self._failed(exc)

    async def _forget(self, subject: str) -> bool:
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(self._key(subject))
        pipe.zrem(self._index, subject)
        deleted, _ = await pipe.execute()
        return bool(deleted)

    async def locked(self) -> list[Lockout]:
        now = self._clock() if self._clock is not None else time.time()
        try:
            await self._redis.zremrangebyscore(self._index, "-inf", now)
            rows: Any = await self._redis.zrangebyscore(self._index, now, "+inf", withscores=True)
        except Exception as exc:  # noqa: BLE001 -- any driver failure: use the fallback
            self._failed(exc)
            return await self._fallback.locked()
        found = []
        for member, until in rows:
            kind, name = bytes(member).decode().split(":", 1)
            found.append(Lockout("account" if kind == "acct" else "address", name, float(until)))
        return found

    async def unlock(self, account: str) -> bool:
        fallback = await self._fallback.unlock(account)
        return await self._forget(f"acct:{normalize_account(account)}") or fallback

    async def unlock_address(self, address: str) -> bool:
        fallback = await self._fallback.unlock_address(address)
        return await self._forget(address_key(address)) or fallback

    async def aclose(self) -> None:
        await self._redis.aclose()
