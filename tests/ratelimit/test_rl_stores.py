"""The contract every store keeps: same decisions, exact under concurrency, safe keys."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.cluster import key_slot
from rl_helpers import REDIS_URL, FakeClock, missing, redis_available

from barbacana.errors import ConfigurationError
from barbacana.ratelimit import (
    ALGORITHMS,
    Limit,
    MemoryStore,
    Meter,
    RedisStore,
    parse_limit,
    store_from_url,
)

pytestmark = pytest.mark.redis

#: A window long enough that no boundary falls inside a test run on the real clock.
LONG = Limit(100, 31 * 86_400.0)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    if not redis_available():
        missing(f"Redis is not reachable at {REDIS_URL}")
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    limits=st.lists(
        st.tuples(st.integers(2, 6), st.sampled_from([1.0, 2.5, 7.0, 60.0])),
        min_size=1,
        max_size=2,
        unique=True,  # equal limits on one scope are one counter; policies merge them
    ),
    seq=st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 2)), min_size=1, max_size=30),
)
def test_memory_and_redis_decide_alike(
    loop: asyncio.AbstractEventLoop,
    name: str,
    limits: list[tuple[int, float]],
    seq: list[tuple[int, int]],
) -> None:
    """For one sequence of times and costs, both stores give identical answers."""
    algorithm = ALGORITHMS[name]
    meters = [Meter(f"m{i}", "s", Limit(a, w)) for i, (a, w) in enumerate(limits)]
    clock = FakeClock()
    memory = MemoryStore(clock=clock)
    prefix = f"brbtest{uuid.uuid4().hex[:12]}"

    async def run() -> None:
        shared = RedisStore(REDIS_URL, key_prefix=prefix, clock=clock)
        try:
            for delta, cost in seq:
                clock.advance(delta / 1000)
                a = memory.decide("who", meters, algorithm=algorithm, cost=cost)
                b = await shared.hit("who", meters, algorithm=algorithm, cost=cost)
                assert b.source == "redis"
                assert (a.allowed, a.remaining, a.reset_ms, a.retry_ms) == (
                    b.allowed,
                    b.remaining,
                    b.reset_ms,
                    b.retry_ms,
                )
        finally:
            client = aioredis.Redis.from_url(REDIS_URL)
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()
            await shared.aclose()

    loop.run_until_complete(run())


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
async def test_memory_admits_exactly_the_limit_under_concurrency(name: str) -> None:
    """1,000 concurrent requests against a limit of 100 admit exactly 100, in process."""
    store = MemoryStore()
    meter = Meter("m", "s", LONG)
    decisions = await asyncio.gather(
        *(store.hit("who", [meter], algorithm=ALGORITHMS[name]) for _ in range(1000))
    )
    assert sum(d.allowed for d in decisions) == 100


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
async def test_redis_admits_exactly_the_limit_under_concurrency(
    name: str, redis_url: str, prefix: str
) -> None:
    """1,000 concurrent requests against a limit of 100 admit exactly 100, on Redis (TIME)."""
    store = RedisStore(redis_url, key_prefix=prefix)
    meter = Meter("m", "s", LONG)
    try:
        decisions = await asyncio.gather(
            *(store.hit("who", [meter], algorithm=ALGORITHMS[name]) for _ in range(1000))
        )
    finally:
        await store.aclose()
    assert {d.source for d in decisions} == {"redis"}
    assert sum(d.allowed for d in decisions) == 100


async def test_two_stores_on_one_redis_share_the_limit(redis_url: str, prefix: str) -> None:
    """Two store instances (two services' worth) together admit the limit, not twice it."""
    one = RedisStore(redis_url, key_prefix=prefix)
    two = RedisStore(redis_url, key_prefix=prefix)
    meter = Meter("m", "s", LONG)
    try:
        decisions = await asyncio.gather(
            *(
                (one if i % 2 else two).hit("who", [meter], algorithm=ALGORITHMS["fixed_window"])
                for i in range(1000)
            )
        )
    finally:
        await one.aclose()
        await two.aclose()
    assert sum(d.allowed for d in decisions) == 100


async def test_keys_share_one_cluster_slot_and_expire(redis_url: str, prefix: str) -> None:
    """Every key of one decision hashes to one slot and carries an expiry."""
    store = RedisStore(redis_url, key_prefix=prefix)
    meters = [
        Meter("a", "orders|GET|/orders/{order_id}", parse_limit("5/second")),
        Meter("b", "global", parse_limit("50/hour")),
    ]
    identity = "sub:we}ird{name"
    for _name, algorithm in ALGORITHMS.items():
        await store.hit(identity, meters, algorithm=algorithm)
    await store.aclose()
    client = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    assert len(keys) == 10
    assert len({key_slot(k) for k in keys}) == 1
    for key in keys:
        assert 0 < await client.pttl(key) <= 2 * 3600 * 1000 + 2000  # at most two windows
    await client.aclose()


async def test_script_reloads_after_script_flush(redis_url: str, prefix: str) -> None:
    """NOSCRIPT (Redis restarted or flushed its scripts) reloads the script and decides."""
    store = RedisStore(redis_url, key_prefix=prefix)
    meter = Meter("m", "s", LONG)
    algorithm = ALGORITHMS["token_bucket"]
    assert (await store.hit("who", [meter], algorithm=algorithm)).remaining == (99,)
    client = aioredis.Redis.from_url(redis_url)
    await client.script_flush()
    await client.aclose()
    results = await asyncio.gather(
        *(store.hit("who", [meter], algorithm=algorithm) for _ in range(5))
    )
    await store.aclose()
    assert {d.source for d in results} == {"redis"}
    assert sorted(d.remaining[0] for d in results) == [94, 95, 96, 97, 98]


def test_store_from_url() -> None:
    """The scheme picks the store; an unknown scheme is a configuration error."""
    assert isinstance(store_from_url(None), MemoryStore)
    assert isinstance(store_from_url("memory://"), MemoryStore)
    assert isinstance(store_from_url("redis://127.0.0.1:6379/0"), RedisStore)
    with pytest.raises(ConfigurationError, match="memcached"):
        store_from_url("memcached://127.0.0.1")
