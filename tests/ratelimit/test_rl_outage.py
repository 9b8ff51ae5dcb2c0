"""Redis stops mid-test: each failure mode behaves as configured, then Redis returns."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import FastAPI
from rl_helpers import PrivateRedis, free_port

from barbacana.ratelimit import (
    ALGORITHMS,
    Meter,
    PolicySettings,
    RateLimitMiddleware,
    RateLimitSettings,
    RedisStore,
    parse_limit,
)

pytestmark = pytest.mark.redis

SETTINGS = RateLimitSettings(
    algorithm="fixed_window",
    policies=[
        PolicySettings(name="open", route="/open", limits=["2/hour"], failure_mode="open"),
        PolicySettings(name="closed", route="/closed", limits=["2/hour"], failure_mode="closed"),
        PolicySettings(
            name="fallback", route="/fallback", limits=["2/hour"], failure_mode="fallback"
        ),
    ],
    global_policy=None,
)


def build(store: RedisStore) -> FastAPI:
    app = FastAPI()
    for path in ("/open", "/closed", "/fallback"):
        app.add_api_route(path, lambda: {"ok": True}, methods=["GET"])
    app.add_middleware(RateLimitMiddleware, policies=SETTINGS, store=store)
    return app


async def test_failure_modes_and_recovery(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """open admits, closed answers 503 problem+json, fallback counts in process; never a 500."""
    caplog.set_level(logging.INFO, logger="barbacana.ratelimit")
    store = RedisStore(private_redis.url, timeout=0.3, retry_interval=0.2)
    transport = httpx.ASGITransport(app=build(store), client=("203.0.113.7", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:

        async def codes(path: str, n: int) -> list[int]:
            return [(await c.get(path)).status_code for _ in range(n)]

        # Redis up: each route admits 2 per hour.
        assert await codes("/open", 3) == [200, 200, 429]
        assert await codes("/closed", 3) == [200, 200, 429]
        assert await codes("/fallback", 1) == [200]
        assert store.health().available

        private_redis.stop()
        # open: admitted, with the policy but no (unknown) counts.
        opened = [await c.get("/open") for _ in range(4)]
        assert [r.status_code for r in opened] == [200] * 4
        assert "ratelimit-policy" in opened[0].headers
        assert "ratelimit" not in opened[0].headers
        # closed: 503 problem+json with Retry-After, never a 500.
        closed = [await c.get("/closed") for _ in range(4)]
        for r in closed:
            assert r.status_code == 503
            assert r.headers["content-type"] == "application/problem+json"
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["status"] == 503
        # fallback: counted in process, afresh, still 2 per hour.
        assert await codes("/fallback", 4) == [200, 200, 429, 429]
        health = store.health()
        assert not health.available
        assert health.error is not None
        assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1

        private_redis.start()
        deadline = asyncio.get_running_loop().time() + 10
        while not store.health().available:  # the next request after retry_interval probes
            assert asyncio.get_running_loop().time() < deadline, "no recovery"
            await c.get("/open")
            await asyncio.sleep(0.05)
        assert len([r for r in caplog.records if "is back" in r.getMessage()]) == 1
        # Back on Redis, which lost its data (no persistence): counting starts there again.
        assert await codes("/closed", 3) == [200, 200, 429]
        r = await c.get("/fallback")
        assert "ratelimit" in r.headers
    await store.aclose()


async def test_unreachable_from_the_start(caplog: pytest.LogCaptureFixture) -> None:
    """A Redis that was never there: fallback works and the switch is logged once."""
    caplog.set_level(logging.INFO, logger="barbacana.ratelimit")
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2, retry_interval=10)
    meter = Meter("m", "s", parse_limit("2/hour"))
    decisions = [
        await store.hit("who", [meter], algorithm=ALGORITHMS["token_bucket"]) for _ in range(3)
    ]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert {d.source for d in decisions} == {"fallback"}
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    await store.aclose()
