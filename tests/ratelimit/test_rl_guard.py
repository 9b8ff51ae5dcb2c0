"""The login guard: delays grow, then the account locks; per account and per address."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from rl_helpers import REDIS_URL, FakeClock, missing, redis_available

from barbacana.errors import ConfigurationError
from barbacana.ratelimit import (
    LoginGuard,
    LoginGuardSettings,
    MemoryLoginGuard,
    RedisLoginGuard,
    login_guard_from_url,
)

SETTINGS = LoginGuardSettings(
    delay_after=3,
    base_delay=1,
    max_delay=8,
    lock_after=8,
    lock_seconds=600,
    address_delay_after=20,
    address_lock_after=40,
)


@pytest.fixture(params=["memory", "redis"])
async def guard(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[LoginGuard]:
    if request.param == "memory":
        yield MemoryLoginGuard(SETTINGS, clock=clock)
        return
    if not redis_available():
        missing(f"Redis is not reachable at {REDIS_URL}")
    import uuid

    import redis.asyncio as aioredis

    prefix = f"brbtest{uuid.uuid4().hex[:12]}"
    settings = SETTINGS.model_copy(update={"key_prefix": prefix})
    g = RedisLoginGuard(REDIS_URL, settings, clock=clock)
    yield g
    await g.aclose()
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_delays_grow_then_the_account_locks(guard: LoginGuard, clock: FakeClock) -> None:
    """1s, 2s, 4s, 8s, 8s... then 'locked' with retry_after, well within 30 failures."""
    delays = []
    for _ in range(SETTINGS.lock_after):
        verdict = await guard.check("alice", "203.0.113.7")
        assert verdict.allowed
        delays.append(verdict.delay)
        clock.advance(verdict.delay)  # the caller waits, then checks the password
        await guard.failure("alice", "203.0.113.7")
    assert delays == [0, 0, 0, 1, 2, 4, 8, 8]
    locked = await guard.check("alice", "203.0.113.7")
    assert not locked.allowed
    assert locked.retry_after == 600
    # From another address too: the account is locked, not the address.
    assert not (await guard.check("alice", "198.51.100.1")).allowed
    assert (await guard.check("bob", "203.0.113.7")).allowed


async def test_lock_expires_and_one_more_failure_locks_again(
    guard: LoginGuard, clock: FakeClock
) -> None:
    """After the lock, a single further failure locks again (slowing alone is not enough)."""
    for _ in range(SETTINGS.lock_after):
        await guard.failure("alice", "203.0.113.7")
    clock.advance(601)
    after = await guard.check("alice", "203.0.113.7")
    assert after.allowed
    assert after.delay == 8
    await guard.failure("alice", "203.0.113.7")
    assert not (await guard.check("alice", "203.0.113.7")).allowed


async def test_success_resets_the_account_but_not_the_address(
    guard: LoginGuard, clock: FakeClock
) -> None:
    """A good password clears the account's count; the address keeps its own."""
    for _ in range(5):
        await guard.failure("alice", "203.0.113.7")
    await guard.success("alice", "203.0.113.7")
    assert (await guard.check("alice", "203.0.113.7")).delay == 0
    for i in range(SETTINGS.address_delay_after):
        await guard.failure(f"user{i}", "198.51.100.9")
    await guard.success("user0", "198.51.100.9")
    assert (await guard.check("someone", "198.51.100.9")).delay == 1


async def test_spraying_from_one_address_locks_the_address(
    guard: LoginGuard, clock: FakeClock
) -> None:
    """One failure each on many accounts from one address: the address locks."""
    for i in range(SETTINGS.address_lock_after):
        await guard.failure(f"user{i}", "198.51.100.9")
    verdict = await guard.check("brand-new-user", "198.51.100.9")
    assert not verdict.allowed
    assert verdict.retry_after == 900
    assert (await guard.check("brand-new-user", "198.51.100.10")).allowed


async def test_locked_lists_and_unlock_clears(guard: LoginGuard, clock: FakeClock) -> None:
    """locked() names locked accounts with their end; unlock() forgets them."""
    for _ in range(SETTINGS.lock_after):
        await guard.failure("Alice", "203.0.113.7")
    locks = await guard.locked()
    accounts = [lock for lock in locks if lock.kind == "account"]
    assert [(a.name, a.until) for a in accounts] == [("alice", clock.now + 600)]
    assert await guard.unlock("ALICE")
    assert (await guard.check("alice", "203.0.113.7")).allowed
    assert [lock for lock in await guard.locked() if lock.kind == "account"] == []


async def test_case_and_unicode_variants_share_a_count(guard: LoginGuard) -> None:
    """'Alice', 'ALICE' and the full-width 'Alice' are one account to the guard."""
    fullwidth = "\uff21\uff4c\uff49\uff43\uff45"
    for name in ["Alice", "ALICE", fullwidth, " alice", "alice", "ALIce", "aLiCe"]:
        await guard.failure(name, "203.0.113.7")
    assert (await guard.check("alice", "203.0.113.7")).delay == 8


async def test_failures_are_forgotten_after_the_window(guard: LoginGuard, clock: FakeClock) -> None:
    """Failures older than failure_window no longer count."""
    for _ in range(5):
        await guard.failure("alice", "203.0.113.7")
    clock.advance(SETTINGS.failure_window + 1)
    assert (await guard.check("alice", "203.0.113.7")).delay == 0


async def test_memory_guard_is_bounded(clock: FakeClock) -> None:
    """A flood of distinct account names cannot grow the in-process guard without bound."""
    guard = MemoryLoginGuard(SETTINGS.model_copy(update={"max_entries": 100}), clock=clock)
    for i in range(2000):
        await guard.failure(f"user{i}", f"198.51.{i // 250}.{i % 250}")
        assert len(guard._states) <= 101


def test_thresholds_are_validated() -> None:
    """More than 30 failures before locking, or delays after the lock, are refused."""
    with pytest.raises(ValueError, match="30"):
        LoginGuardSettings(lock_after=31)
    with pytest.raises(ConfigurationError, match="delay_after"):
        LoginGuardSettings(delay_after=10, lock_after=5)
    with pytest.raises(ConfigurationError):
        login_guard_from_url("memcached://x")


async def test_redis_guard_keeps_counting_when_redis_is_down(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreachable Redis: the guard counts in process, and says so once."""
    import logging

    from rl_helpers import free_port

    caplog.set_level(logging.INFO, logger="barbacana.ratelimit")
    guard = RedisLoginGuard(
        f"redis://127.0.0.1:{free_port()}/0", SETTINGS, timeout=0.2, retry_interval=60, clock=clock
    )
    for _ in range(SETTINGS.lock_after):
        await guard.failure("alice", "203.0.113.7")
    assert not (await guard.check("alice", "203.0.113.7")).allowed
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    await guard.aclose()


async def test_every_redis_key_of_the_guard_expires(clock: FakeClock, redis_url: str) -> None:
    """Account, address and lock-index keys all carry an expiry."""
    import uuid

    import redis.asyncio as aioredis

    prefix = f"brbtest{uuid.uuid4().hex[:12]}"
    guard = RedisLoginGuard(redis_url, SETTINGS.model_copy(update={"key_prefix": prefix}))
    for _ in range(SETTINGS.lock_after):
        await guard.failure("alice", "203.0.113.7")
    assert not (await guard.check("alice", "203.0.113.7")).allowed
    await guard.aclose()
    client = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    assert len(keys) == 3
    for key in keys:
        assert await client.pttl(key) > 0
    await client.delete(*keys)
    await client.aclose()
