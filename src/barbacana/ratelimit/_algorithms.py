"""The five rate-limit algorithms, as pure functions of (state, now).

Each algorithm decides whether a request of some ``cost`` fits a
:class:`~barbacana.ratelimit.Limit` of ``amount`` per ``window`` seconds,
given the counter's previous state and the current time. Nothing here reads
a clock or touches storage: the memory store keeps the states in a dict, and
the Redis store runs a Lua transcription of the same arithmetic, operation for
operation, so both stores decide alike for the same sequence of times.

Every check answers ``(allowed, remaining, reset, retry, state, ttl)``:

* ``remaining`` — units still available after this request (before it, if refused);
* ``reset`` — seconds until the full quota is available again (the ``t``
  parameter of the ``RateLimit`` field, draft-ietf-httpapi-ratelimit-headers);
* ``retry`` — seconds until a request of this cost could succeed (0 if allowed);
* ``state`` — the counter's state to store if every limit of the decision admits;
* ``ttl`` — seconds after which a forgotten state means the same as a fresh one
  (the stores expire keys then; correctness never depends on expiry).

Times are UNIX seconds as floats; a cost never exceeds a limit's amount
(policies refuse that at start-up).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from typing import Any, ClassVar, Literal

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "AlgorithmName",
    "Check",
    "FixedWindow",
    "LeakyBucket",
    "SlidingWindowCounter",
    "SlidingWindowLog",
    "TokenBucket",
]

AlgorithmName = Literal[
    "fixed_window", "sliding_window_log", "sliding_window_counter", "token_bucket", "leaky_bucket"
]

#: ``(allowed, remaining, reset, retry, state, ttl)`` — see the module docstring.
Check = tuple[bool, int, float, float, Any, float]


class Algorithm(ABC):
    """One rate-limit algorithm: a pure ``check`` and, for the log, a ``commit``."""

    #: Name used in settings.
    name: ClassVar[AlgorithmName]
    #: Short code used in storage keys, so two algorithms never share a counter.
    code: ClassVar[str]

    @staticmethod
    @abstractmethod
    def check(state: Any, now: float, amount: int, window: float, cost: int) -> Check:
        """Decide one request against one limit; see the module docstring."""

    @staticmethod
    def commit(state: Any, now: float, cost: int) -> Any:
        """The state to store once every limit admitted (most algorithms: ``state``)."""
        return state


class FixedWindow(Algorithm):
    """Fixed window counter: windows ``[k·w, (k+1)·w)`` aligned to the epoch.

    A request is admitted while the window's count plus its cost stays within
    the amount. Cheap (two numbers per key) and exact per window, but a client
    may spend a full quota at the end of one window and another at the start of
    the next: up to twice the amount inside one window-length span.
    """

    name = "fixed_window"
    code = "fw"

    @staticmethod
    def check(state: Any, now: float, amount: int, window: float, cost: int) -> Check:
        k = math.floor(now / window)
        count = state[1] if state is not None and state[0] == k else 0
        reset = max(0.0, (k + 1) * window - now)
        if count + cost <= amount:
            count += cost
            return True, amount - count, reset, 0.0, (k, count), reset
        return False, amount - count, reset, reset, state, reset


class SlidingWindowLog(Algorithm):
    """Sliding window log: one timestamp per admitted unit of cost.

    A request at ``now`` is admitted if the units admitted in ``(now - w, now]``
    plus its cost stay within the amount. Exact over every window-length span,
    at the price of memory proportional to the amount (one entry per unit).
    """

    name = "sliding_window_log"
    code = "swl"

    @staticmethod
    def check(state: Any, now: float, amount: int, window: float, cost: int) -> Check:
        log: deque[float] = state if state is not None else deque()
        cut = now - window
        while log and log[0] <= cut:
            log.popleft()  # expired entries: dropping them changes no decision
        n = len(log)
        if n + cost <= amount:
            return True, amount - n - cost, window, 0.0, log, window
        retry = log[n + cost - amount - 1] + window - now
        reset = max(0.0, log[-1] + window - now)
        return False, amount - n, reset, max(0.0, retry), log, reset

    @staticmethod
    def commit(state: Any, now: float, cost: int) -> Any:
        state.extend((now,) * cost)
        return state


class SlidingWindowCounter(Algorithm):
    """Sliding window counter: the previous window's count, weighted, plus this one's.

    With ``e`` seconds elapsed in the current fixed window, the estimate is
    ``previous · (w - e) / w + current``; a request is admitted if the estimate
    plus its cost stays within the amount. Two numbers per key, and close to
    the log's answer when traffic is evenly spread (Cloudflare's approach).
    """

    name = "sliding_window_counter"
    code = "swc"

    @staticmethod
    def check(state: Any, now: float, amount: int, window: float, cost: int) -> Check:
        k = math.floor(now / window)
        curr = prev = 0
        if state is not None:
            if state[0] == k:
                curr, prev = state[1], state[2]
            elif state[0] == k - 1:
                prev = state[1]
        start = k * window
        elapsed = now - start
        used = prev * ((window - elapsed) / window) + curr
        free = amount - used
        left = max(0.0, start + window - now)
        if cost <= free:
            curr += cost
            return True, math.floor(free - cost), left + window, 0.0, (k, curr, prev), left + window
        if curr + cost > amount:
            retry = left + max(0.0, window - (amount - cost) * window / curr)
        else:
            retry = max(0.0, window - (amount - cost - curr) * window / prev - elapsed)
        reset = left + window if curr > 0 else left
        return False, max(0, math.floor(free)), reset, retry, state, left + window


class TokenBucket(Algorithm):
    """Token bucket: ``amount`` tokens, refilled at ``amount / w`` per second.

    A request takes ``cost`` tokens if there are that many. Allows bursts up to
    the bucket's size while holding the long-run rate to the amount per window.
    """

    name = "token_bucket"
    code = "tb"

    @staticmethod
    def check(state: Any, now: float, amount: int, window: float, cost: int) -> Check:
        rate = amount / window
        tokens: float = amount
        last = now
        if state is not None:
            tokens, last = state
            elapsed = now - last
            if elapsed > 0:
                tokens = min(amount, tokens + elapsed * rate)
                last = now
        if tokens >= cost:
            tokens = tokens - cost
            reset = (amount - tokens) / rate
            return True, math.floor(tokens), reset, 0.0, (tokens, last), reset
        reset = (amount - tokens) / rate
        return False, math.floor(tokens), reset, (cost - tokens) / rate, state, reset


class LeakyBucket(Algorithm):
    """Leaky bucket as a meter: the Generic Cell Rate Algorithm (ITU-T I.371).

    An HTTP API cannot queue a request to leak it out later, so the bucket is
    used as a meter: it drains at ``amount / w`` units per second, holds at
    most ``amount`` units, and a request whose cost would overflow it is
    refused. The only state is the theoretical arrival time (TAT), kept here in
    units of the emission interval ``w / amount`` so that a burst at one instant
    is counted exactly. Its decisions equal a token bucket's with the same
    amount and window (the meter is that bucket's dual); it stores one number
    instead of two.
    """

    name = "leaky_bucket"
    code = "gcra"

    @staticmethod
    def check(state: Any, now: float, amount: int, window: float, cost: int) -> Check:
        rate = amount / window
        u = now * rate
        tat = state if state is not None and state > u else u
        new = tat + cost
        if new - u <= amount:
            reset = (new - u) / rate
            return True, math.floor(amount - (new - u)), reset, 0.0, new, reset
        reset = (tat - u) / rate
        remaining = max(0, math.floor(amount - (tat - u)))
        return False, remaining, reset, (new - u - amount) / rate, state, reset


#: Every algorithm by its settings name.
ALGORITHMS: dict[str, type[Algorithm]] = {
    a.name: a
    for a in (FixedWindow, SlidingWindowLog, SlidingWindowCounter, TokenBucket, LeakyBucket)
}
