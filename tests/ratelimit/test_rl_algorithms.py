"""The five algorithms against simple reference models, with a fake clock.

Each reference model keeps the list of admitted requests and decides from
the definition alone (count in the window, weighted estimate, the min-plus
form of a token bucket). Where a float decision sits within 1e-6 of its
boundary either answer is accepted (both sides compute in doubles, in a
different order); the model then follows the store's answer.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rl_helpers import T0, FakeClock

from barbacana.errors import ConfigurationError
from barbacana.ratelimit import (
    ALGORITHMS,
    FixedWindow,
    LeakyBucket,
    Limit,
    MemoryStore,
    Meter,
    SlidingWindowCounter,
    SlidingWindowLog,
    TokenBucket,
    parse_limit,
)

EPS = 1e-6


class Reference(ABC):
    """Admitted requests, and a definition of 'would this one be admitted?'."""

    def __init__(self, amount: int, window: float) -> None:
        self.amount, self.window = amount, window
        self.admitted: list[tuple[float, int]] = []

    @abstractmethod
    def margin(self, now: float, cost: int) -> float:
        """Room left after this request: admitted iff >= 0."""


class FixedRef(Reference):
    def margin(self, now: float, cost: int) -> float:
        k = math.floor(now / self.window)
        used = sum(c for t, c in self.admitted if math.floor(t / self.window) == k)
        return self.amount - used - cost


class LogRef(Reference):
    def margin(self, now: float, cost: int) -> float:
        used = sum(c for t, c in self.admitted if t > now - self.window)
        return self.amount - used - cost


class CounterRef(Reference):
    def margin(self, now: float, cost: int) -> float:
        w = self.window
        k = math.floor(now / w)
        curr = sum(c for t, c in self.admitted if math.floor(t / w) == k)
        prev = sum(c for t, c in self.admitted if math.floor(t / w) == k - 1)
        return self.amount - (prev * (w - (now - k * w)) / w + curr) - cost


class BucketRef(Reference):
    """Token bucket (and its dual, the GCRA meter) in min-plus form.

    Tokens at t = min(B, min over admitted times s <= t of B + r(t - s) - A[s, t]),
    with A[s, t] the cost admitted in [s, t]: no recursion, no clamping state.
    """

    def margin(self, now: float, cost: int) -> float:
        b, r = self.amount, self.amount / self.window
        tokens = float(b)
        for s, _ in self.admitted:
            spent = sum(c for t, c in self.admitted if t >= s)
            tokens = min(tokens, b + r * (now - s) - spent)
        return tokens - cost


REFERENCES = {
    "fixed_window": FixedRef,
    "sliding_window_log": LogRef,
    "sliding_window_counter": CounterRef,
    "token_bucket": BucketRef,
    "leaky_bucket": BucketRef,
}

events = st.lists(
    st.tuples(st.integers(0, 4000), st.integers(1, 3)),  # (ms since previous, cost)
    min_size=1,
    max_size=40,
)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(amount=st.integers(3, 8), window=st.sampled_from([1.0, 2.0, 2.5, 5.0, 10.0]), seq=events)
def test_matches_reference_model(
    name: str, amount: int, window: float, seq: list[tuple[int, int]]
) -> None:
    """Admitted and refused sequences equal the reference model's."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    algorithm = ALGORITHMS[name]
    model = REFERENCES[name](amount, window)
    meter = Meter("m", "s", Limit(amount, window))
    for delta, cost in seq:
        clock.advance(delta / 1000)
        decision = store.decide("who", [meter], algorithm=algorithm, cost=cost)
        margin = model.margin(clock.now, cost)
        if abs(margin) > EPS:
            assert decision.allowed == (margin >= 0), (clock.now - T0, cost, margin)
        if decision.allowed:
            model.admitted.append((clock.now, cost))


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
@settings(max_examples=100, deadline=None)
@given(amount=st.integers(1, 10), window=st.sampled_from([1.0, 3.0, 60.0]), seq=events)
def test_remaining_and_retry_after_are_true(
    name: str, amount: int, window: float, seq: list[tuple[int, int]]
) -> None:
    """'remaining' more unit requests fit right now; a refused request fits after retry_ms."""
    algorithm = ALGORITHMS[name]
    meter = Meter("m", "s", Limit(amount, window))
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    for delta, cost in seq:
        clock.advance(delta / 1000)
        cost = min(cost, amount)
        decision = store.decide("who", [meter], algorithm=algorithm, cost=cost)
        if not decision.allowed:
            # Replay the same history in a scratch store so the probe charges nothing.
            retry = decision.retry_ms[0] / 1000
            assert retry > 0
            probe = _replay(store, clock.now + retry)
            assert probe.decide("who", [meter], algorithm=algorithm, cost=cost).allowed
    # At the same instant, exactly `remaining` unit requests still fit.
    last = store.decide("who", [meter], algorithm=algorithm, cost=1)
    if last.allowed:
        for _ in range(last.remaining[0]):
            assert store.decide("who", [meter], algorithm=algorithm, cost=1).allowed
        assert not store.decide("who", [meter], algorithm=algorithm, cost=1).allowed


def _replay(store: MemoryStore, at: float) -> MemoryStore:
    import copy

    probe = copy.deepcopy(store)
    probe._clock = lambda: at  # type: ignore[method-assign]
    return probe


class TestSemantics:
    """Documented behaviour of each algorithm, by example."""

    def _run(self, algorithm: type, limit: str, times: list[float]) -> list[bool]:
        clock = FakeClock()
        store = MemoryStore(clock=clock)
        meter = Meter("m", "s", parse_limit(limit))
        out = []
        for t in times:
            clock.now = T0 - (T0 % 60) + t  # t seconds after a minute boundary
            out.append(store.decide("who", [meter], algorithm=algorithm).allowed)
        return out

    def test_fixed_window_allows_a_double_burst_across_the_boundary(self) -> None:
        """The fixed window's known flaw: 2N requests within one window length."""
        assert self._run(FixedWindow, "3/minute", [59, 59, 59, 60, 60, 60, 61]) == [
            True,
            True,
            True,
            True,
            True,
            True,
            False,
        ]

    def test_sliding_log_is_exact_over_any_window(self) -> None:
        """The log refuses the second burst until the first has left the window."""
        assert self._run(SlidingWindowLog, "3/minute", [59, 59, 59, 60, 118.9, 119, 119]) == [
            True,
            True,
            True,
            False,
            False,
            True,
            True,
        ]

    def test_sliding_counter_weighs_the_previous_window(self) -> None:
        """Half-way into a window, half of the previous window's count still counts."""
        # 4 in [0,60); at 90 the estimate is 4*0.5 = 2, so 2 more fit, not 4.
        assert self._run(SlidingWindowCounter, "4/minute", [10, 10, 10, 10, 90, 90, 90]) == [
            True,
            True,
            True,
            True,
            True,
            True,
            False,
        ]

    def test_token_bucket_refills_at_the_rate(self) -> None:
        """A full bucket bursts; then one token comes back every window/amount."""
        assert self._run(TokenBucket, "2/10s", [0, 0, 0, 4.9, 5, 5]) == [
            True,
            True,
            False,
            False,
            True,
            False,
        ]

    def test_leaky_bucket_meters_like_its_dual(self) -> None:
        """The GCRA meter admits the same sequence as the token bucket."""
        times = [0, 0, 0, 4.9, 5, 5, 12, 12, 12]
        assert self._run(LeakyBucket, "2/10s", times) == self._run(TokenBucket, "2/10s", times)

    def test_several_limits_are_all_or_nothing(self, clock: FakeClock) -> None:
        """A request refused by one limit charges none of the others."""
        store = MemoryStore(clock=clock)
        meters = [Meter("a", "s", parse_limit("2/second")), Meter("b", "s", parse_limit("5/hour"))]
        results = []
        for _ in range(4):
            for _ in range(3):
                results.append(store.decide("who", meters, algorithm=FixedWindow).allowed)
            clock.advance(1)
        # 2 admitted per second until the hourly 5 are spent; refusals ate nothing.
        assert results == [True, True, False, True, True, False, True, False, False] + [False] * 3


class TestParsing:
    @pytest.mark.parametrize(
        ("text", "amount", "window"),
        [
            ("10/second", 10, 1.0),
            ("500/hour", 500, 3600.0),
            ("5 per 10 minutes", 5, 600.0),
            ("100/30s", 100, 30.0),
            ("7/day", 7, 86400.0),
        ],
    )
    def test_parses(self, text: str, amount: int, window: float) -> None:
        """Limits read the way people write them."""
        assert parse_limit(text) == Limit(amount, window)

    @pytest.mark.parametrize("text", ["", "ten/second", "10/fortnight", "0/second", "10/0s", "5"])
    def test_refuses(self, text: str) -> None:
        """Anything else is a configuration error that says how to write it."""
        with pytest.raises(ConfigurationError):
            parse_limit(text)

    def test_cost_above_the_amount_is_refused(self, clock: FakeClock) -> None:
        """A cost no limit could ever admit is a configuration error, not a silent 429."""
        store = MemoryStore(clock=clock)
        with pytest.raises(ConfigurationError):
            store.decide("who", [Meter("m", "s", Limit(2, 1))], algorithm=FixedWindow, cost=3)


class TestMemoryBound:
    def test_a_flood_of_distinct_keys_cannot_grow_memory(self, clock: FakeClock) -> None:
        """Live counters beyond max_keys are evicted: memory stays bounded."""
        store = MemoryStore(clock=clock, max_keys=1000)
        meter = Meter("m", "s", parse_limit("5/hour"))
        for i in range(20_000):
            store.decide(f"flood{i}", [meter], algorithm=FixedWindow)
            assert len(store) <= 1001

    def test_expired_keys_are_dropped(self, clock: FakeClock) -> None:
        """Counters whose window has passed are swept as the store grows."""
        store = MemoryStore(clock=clock, max_keys=100_000)
        meter = Meter("m", "s", parse_limit("5/second"))
        for i in range(3000):
            store.decide(f"a{i}", [meter], algorithm=SlidingWindowLog)
        clock.advance(10)
        for i in range(3000):
            store.decide(f"b{i}", [meter], algorithm=SlidingWindowLog)
        assert len(store) <= 3000 + 1024
