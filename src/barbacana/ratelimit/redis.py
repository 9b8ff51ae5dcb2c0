"""The Redis store: exact limits shared by every instance of a service.

One decision is one round trip: a single ``EVALSHA`` of the algorithm's Lua
script (``_lua.py``), which checks and charges every meter of the request
atomically. Scripts are identified by their SHA-1, computed locally; a
``NOSCRIPT`` answer (first use, or Redis restarted) loads the script once with
``SCRIPT LOAD`` and sends the call again. The scripts read Redis ``TIME``, so
instances whose clocks disagree still share one window; a ``clock`` is passed
only by tests, and then its time travels in ``ARGV``.

Keys look like ``brb:rl:{addr:203.0.113.7}:token|POST|/token:5/60:fw``: the
identity is the hash tag, so every key of one decision lives in one Cluster
slot, and every key gets an expiry when it is written.

Concurrent decisions are coalesced without waiting: when a connection is
free, a decision goes out at once on its own; while the connections are busy,
decisions queue, and the next free connection sends the whole queue as one
pipelined write and reads the replies in order. Each script still runs
atomically and in order on the server, so batching changes no count.

When Redis cannot be reached, each call follows its failure mode: ``open``
admits, ``closed`` raises :class:`~barbacana.ratelimit.LimiterUnavailable`
(a 503), ``fallback`` counts in an in-process :class:`MemoryStore`. The store
then stops trying Redis on the request path and probes it in the background
every ``retry_interval`` seconds; the outage and the recovery are logged once
each, and :meth:`RedisStore.health` reports the state.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, ResponseError

from .._clock import Clock
from ..errors import ConfigurationError
from ._algorithms import Algorithm
from ._base import Decision, FailureMode, Store, StoreHealth, check_cost, encode_identity
from ._limits import Meter
from ._lua import SCRIPTS
from .errors import LimiterUnavailable
from .memory import MemoryStore

__all__ = ["RedisStore"]

logger = logging.getLogger("barbacana.ratelimit")

_Command = tuple[Any, ...]


class RedisStore(Store):
    """Rate-limit counters in Redis; see the module docstring.

    Args:
        url: ``redis://[user:password@]host:port/db``, ``rediss://...`` or ``unix://...``.
        key_prefix: first part of every key (``brb:rl``).
        timeout: seconds to wait for Redis to connect or answer before failing over.
        retry_interval: seconds between reconnection probes while Redis is down.
        connections: connections used in parallel (each carries whole batches).
        max_keys: bound of the in-process fallback store.
        clock: tests only: a time source whose time the scripts use instead of
            Redis ``TIME``. Production leaves it ``None``.
        fallback_clock: the in-process fallback's time source.

    Raises:
        ConfigurationError: the URL or an option is unusable.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "brb:rl",
        timeout: float = 0.5,
        retry_interval: float = 1.0,
        connections: int = 2,
        max_keys: int = 100_000,
        clock: Clock | None = None,
        fallback_clock: Clock | None = None,
    ) -> None:
        if not key_prefix or "{" in key_prefix or "}" in key_prefix:
            raise ConfigurationError("the rate-limit key prefix must be non-empty, without braces")
        if timeout <= 0 or retry_interval <= 0 or connections < 1:
            raise ConfigurationError("timeout, retry_interval and connections must be positive")
        try:
            # No client-side retries: a retried EVALSHA could count one request twice.
            self._pool = aioredis.ConnectionPool.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                max_connections=connections + 1,
            )
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"bad rate-limit Redis URL: {exc}") from None
        parts = urlsplit(url)
        #: Where Redis is, for log lines (never the password).
        self.where = f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else parts.path
        self._prefix = key_prefix
        self._clock = clock
        self._retry_interval = retry_interval
        self._fallback = MemoryStore(
            clock=fallback_clock or (clock if clock is not None else time.time), max_keys=max_keys
        )
        # Redis names scripts by their SHA-1; not a security use.
        self._sha = {
            code: hashlib.sha1(src.encode(), usedforsecurity=False).hexdigest()
            for code, src in SCRIPTS.items()
        }
        self._lanes_total = connections
        self._lanes: list[Any] = []  # idle connections
        self._opened = 0
        self._pending: list[tuple[_Command, asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._down = False
        self._since = time.time()
        self._error: str | None = None
        self._next_probe = 0.0
        self._probing = False

    # -- the decision ------------------------------------------------------

    async def hit(
        self,
        identity: str,
        meters: Sequence[Meter],
        *,
        algorithm: type[Algorithm],
        cost: int = 1,
        failure_mode: FailureMode = "fallback",
    ) -> Decision:
        if cost != 1 or len(meters) != 1:
            check_cost(meters, cost)
        if self._down:
            self._maybe_probe()
            return self._degraded(identity, meters, algorithm, cost, failure_mode)
        code = algorithm.code
        head = f"{self._prefix}:{{{encode_identity(identity)}}}:"
        now = repr(self._clock()) if self._clock is not None else ""
        if len(meters) == 1:
            m = meters[0]
            command: _Command = (
                "EVALSHA", self._sha[code], 1, f"{head}{m.key}:{code}",
                now, cost, m.limit.amount, m.limit.window,
            )  # fmt: skip
        else:
            parts: list[Any] = ["EVALSHA", self._sha[code], len(meters)]
            parts.extend(f"{head}{m.key}:{code}" for m in meters)
            parts += [now, cost]
            for m in meters:
                parts += [m.limit.amount, m.limit.window]
            command = tuple(parts)
        try:
            reply = await self._call(command)
        except Exception as exc:  # noqa: BLE001 -- any driver failure means "Redis is unavailable"
            self._mark_down(exc)
            return self._degraded(identity, meters, algorithm, cost, failure_mode)
        return Decision(
            reply[0] == 1,
            meters if type(meters) is tuple else tuple(meters),
            tuple(reply[1::3]),
            tuple(reply[2::3]),
            tuple(reply[3::3]),
            "redis",
        )

    def _degraded(
        self,
        identity: str,
        meters: Sequence[Meter],
        algorithm: type[Algorithm],
        cost: int,
        failure_mode: FailureMode,
    ) -> Decision:
        if failure_mode == "fallback":
            return self._fallback.decide(
                identity, meters, algorithm=algorithm, cost=cost, source="fallback"
            )
        if failure_mode == "open":
            return Decision(True, tuple(meters), (), (), (), "open")
        raise LimiterUnavailable(
            "The rate limiter cannot be reached; try again shortly.",
            retry_after=max(1, math.ceil(self._retry_interval)),
        )

    # -- round trips, coalesced -------------------------------------------

    async def _call(self, command: _Command) -> Any:
        """Send one command now if a connection is idle, else queue it for the next batch."""
        if not self._pending:
            lane = self._lanes.pop() if self._lanes else await self._lane()
            if lane is not None:
                try:
                    await lane.send_packed_command(lane.pack_command(*command))
                    try:
                        return await lane.read_response()
                    except NoScriptError:
                        reply = (await self._roundtrip(lane, [command]))[0]
                finally:
                    self._release(lane)
                if isinstance(reply, Exception):
                    raise reply
                return reply
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((command, future))
        return await future

    async def _lane(self) -> Any:
        if self._lanes:
            return self._lanes.pop()
        if self._opened < self._lanes_total:
            self._opened += 1
            try:
                return await self._pool.get_connection()  # type: ignore[no-untyped-call]
            except BaseException:
                self._opened -= 1
                raise
        return None

    def _release(self, lane: Any) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            task = asyncio.ensure_future(self._flush(lane, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._lanes.append(lane)

    async def _flush(self, lane: Any, batch: list[tuple[_Command, asyncio.Future[Any]]]) -> None:
        try:
            replies = await self._roundtrip(lane, [command for command, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError())
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        finally:
            self._release(lane)

    async def _roundtrip(self, lane: Any, commands: list[_Command]) -> list[Any]:
        """Write every command at once, read every reply; reload scripts on NOSCRIPT.

        A command that Redis refused comes back as its exception, in its place.
        """
        replies = await self._exchange(lane, commands)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            for code in {self._code_of(commands[i][1]) for i in missing}:
                await self._exchange(lane, [("SCRIPT", "LOAD", SCRIPTS[code])], strict=True)
            again = await self._exchange(lane, [commands[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    async def _exchange(
        self, lane: Any, commands: list[_Command], strict: bool = False
    ) -> list[Any]:
        await lane.send_packed_command(lane.pack_commands(commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await lane.read_response())
            except ResponseError as exc:  # one command failed; the others' replies follow
                if strict:
                    raise
                replies.append(exc)
        return replies

    def _code_of(self, sha: str) -> str:
        return next(code for code, digest in self._sha.items() if digest == sha)

    # -- outage and recovery -------------------------------------------------

    def _mark_down(self, exc: BaseException) -> None:
        self._next_probe = time.monotonic() + self._retry_interval
        if self._down:
            return
        self._down = True
        self._since = time.time()
        self._error = type(exc).__name__
        logger.warning(
            "rate-limit store redis at %s unavailable (%s): each policy now fails open, "
            "fails closed or counts in process until it returns",
            self.where,
            self._error,
        )

    def _maybe_probe(self) -> None:
        if self._probing or time.monotonic() < self._next_probe:
            return
        self._probing = True
        task = asyncio.ensure_future(self._probe())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _probe(self) -> None:
        try:
            lane = await self._lane()
            if lane is None:  # every connection is busy: try again later
                self._next_probe = time.monotonic() + self._retry_interval
                return
            try:
                await self._exchange(lane, [("PING",)], strict=True)
            finally:
                self._release(lane)
        except Exception as exc:  # noqa: BLE001 -- still down, whatever the driver says
            self._next_probe = time.monotonic() + self._retry_interval
            self._error = type(exc).__name__
        else:
            self._recover()
        finally:
            self._probing = False

    def _recover(self) -> None:
        if not self._down:
            return
        self._down = False
        outage = time.time() - self._since
        self._since = time.time()
        self._error = None
        logger.info("rate-limit store redis at %s is back after %.1f s", self.where, outage)

    def health(self) -> StoreHealth:
        return StoreHealth("redis", not self._down, self._since, self._error)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._lanes.clear()
        await self._pool.disconnect()
