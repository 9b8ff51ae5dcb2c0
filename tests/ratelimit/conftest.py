"""Fixtures for the rate-limit tests: a fake clock, the shared Redis, a private Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from rl_helpers import REDIS_URL, FakeClock, PrivateRedis, missing, redis_available


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def redis_url() -> str:
    if not redis_available():
        missing(f"Redis is not reachable at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"brbtest{uuid.uuid4().hex[:12]}"
    yield value
    client = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"{value}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()
