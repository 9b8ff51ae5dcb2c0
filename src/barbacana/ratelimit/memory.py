"""The in-process store: the embedded default, and the Redis store's fallback.

Counters live in a dict keyed by (identity, meter, algorithm). A decision runs
without awaiting anything, so on one event loop it is atomic: 1,000 concurrent
requests against a limit of 100 admit exactly 100.

Memory is bounded. Each entry records when it becomes equivalent to a fresh
counter; once the dict has doubled since the last sweep, a sweep drops every
such entry. If more than ``max_keys`` counters are still live (a flood of
distinct clients), the ones closest to expiry are evicted down to three
quarters of ``max_keys`` and one warning is logged. An evicted client starts
afresh; memory never grows past ``max_keys`` entries. Sweeps cost O(n) once
per n inserts, so a decision stays O(1) however many hits pile up.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from .._clock import Clock, system_clock
from ..errors import ConfigurationError
from ._algorithms import Algorithm
from ._base import Decision, FailureMode, Store, StoreHealth, check_cost, ms, retry_ms
from ._limits import Meter

__all__ = ["MemoryStore"]

logger = logging.getLogger("barbacana.ratelimit")

#: Entries kept after their expiry: a forgotten counter is then certainly a fresh one.
_GRACE = 1.0
_MIN_SWEEP = 1024


class MemoryStore(Store):
    """Rate-limit counters in this process; see the module docstring.

    Args:
        clock: the time source (UNIX seconds); tests pass a fake one.
        max_keys: most counters kept at once.
    """

    def __init__(self, *, clock: Clock = system_clock, max_keys: int = 100_000) -> None:
        if max_keys < 16:
            raise ConfigurationError("max_keys must be at least 16")
        self._clock = clock
        self._max_keys = max_keys
        self._sweep_at = min(max_keys, _MIN_SWEEP)
        # key -> [state, expires_at]
        self._data: dict[tuple[str, str, str], list[Any]] = {}
        self._since = time.time()

    def __len__(self) -> int:
        return len(self._data)

    async def hit(
        self,
        identity: str,
        meters: Sequence[Meter],
        *,
        algorithm: type[Algorithm],
        cost: int = 1,
        failure_mode: FailureMode = "fallback",
    ) -> Decision:
        return self.decide(identity, meters, algorithm=algorithm, cost=cost)

    def decide(
        self,
        identity: str,
        meters: Sequence[Meter],
        *,
        algorithm: type[Algorithm],
        cost: int = 1,
        source: str = "memory",
    ) -> Decision:
        """The synchronous decision behind :meth:`hit` (atomic on the event loop)."""
        if cost != 1 or len(meters) != 1:
            return self._decide_many(identity, meters, algorithm, cost, source)
        # The common case, one meter at cost 1, without loops or allocations to spare.
        meter = meters[0]
        limit = meter.limit
        now = self._clock()
        key = (identity, meter.key, algorithm.code)
        entry = self._data.get(key)
        r = algorithm.check(
            entry[0] if entry is not None else None, now, limit.amount, limit.window, 1
        )
        if r[0]:
            state = algorithm.commit(r[4], now, 1)
            if entry is None:
                self._data[key] = [state, now + r[5] + _GRACE]
                if len(self._data) > self._sweep_at:
                    self._sweep(now)
            else:
                entry[0] = state
                entry[1] = now + r[5] + _GRACE
        return Decision(
            r[0],
            meters if type(meters) is tuple else tuple(meters),
            (r[1],),
            (math.ceil(r[2] * 1000),),
            (retry_ms(r[3]),),
            source,  # type: ignore[arg-type]
        )

    def _decide_many(
        self,
        identity: str,
        meters: Sequence[Meter],
        algorithm: type[Algorithm],
        cost: int,
        source: str,
    ) -> Decision:
        check_cost(meters, cost)
        now = self._clock()
        data = self._data
        code = algorithm.code
        check = algorithm.check
        allowed = True
        keys = []
        entries = []
        checks = []
        for meter in meters:
            key = (identity, meter.key, code)
            entry = data.get(key)
            result = check(
                entry[0] if entry is not None else None,
                now,
                meter.limit.amount,
                meter.limit.window,
                cost,
            )
            allowed = allowed and result[0]
            keys.append(key)
            entries.append(entry)
            checks.append(result)
        if allowed:
            commit = algorithm.commit
            for key, entry, result in zip(keys, entries, checks, strict=True):
                state = commit(result[4], now, cost)
                if entry is None:
                    data[key] = [state, now + result[5] + _GRACE]
                else:
                    entry[0] = state
                    entry[1] = now + result[5] + _GRACE
            if len(data) > self._sweep_at:
                self._sweep(now)
        return Decision(
            allowed,
            tuple(meters),
            tuple(r[1] for r in checks),
            tuple(ms(r[2]) for r in checks),
            tuple(retry_ms(r[3]) for r in checks),
            source,  # type: ignore[arg-type]
        )

    def _sweep(self, now: float) -> None:
        data = self._data
        for key in [k for k, e in data.items() if e[1] <= now]:
            del data[key]
        if len(data) > self._max_keys:
            keep = self._max_keys * 3 // 4
            victims = heapq.nsmallest(len(data) - keep, data.items(), key=lambda kv: kv[1][1])
            for key, _ in victims:
                del data[key]
            logger.warning(
                "rate-limit memory store full: evicted %d live counters "
                "(more distinct clients than max_keys=%d)",
                len(victims),
                self._max_keys,
            )
        self._sweep_at = min(self._max_keys, max(_MIN_SWEEP, 2 * len(data)))

    def health(self) -> StoreHealth:
        return StoreHealth("memory", True, self._since)
