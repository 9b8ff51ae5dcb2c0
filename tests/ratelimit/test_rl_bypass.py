"""Attacks on the limiter over real HTTP: none of them resets or dodges a count."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from rl_helpers import Served, raw_request

from barbacana.ratelimit import MemoryStore, PolicySettings, RateLimitMiddleware, RateLimitSettings

LIMIT = 3
SETTINGS = RateLimitSettings(
    algorithm="sliding_window_log",
    policies=[PolicySettings(name="orders", route="/orders", methods=["GET"], limits=["3/hour"])],
    global_policy=PolicySettings(name="global", limits=["1000/hour"]),
)


def build(trusted: list[str]) -> tuple[FastAPI, list[int]]:
    served: list[int] = []
    app = FastAPI()

    @app.get("/orders")
    async def orders() -> list[int]:
        served.append(1)
        return []

    app.add_middleware(
        RateLimitMiddleware, policies=SETTINGS, store=MemoryStore(), trusted_proxies=trusted
    )
    return app, served


async def test_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() -> None:
    """A client that invents X-Forwarded-For values is still counted by its socket."""
    app, served = build(trusted=[])
    async with Served(app) as s, httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.port}") as c:
        codes = [
            (await c.get("/orders", headers={"X-Forwarded-For": f"198.51.100.{i}"})).status_code
            for i in range(8)
        ]
    assert codes == [200] * LIMIT + [429] * 5
    assert len(served) == LIMIT


async def test_path_variants_do_not_dodge_the_limit() -> None:
    """Trailing slash, doubled slash, query, case, percent-encoding: the handler runs 3 times."""
    app, served = build(trusted=[])
    async with Served(app) as s:
        for _ in range(LIMIT):
            assert await raw_request(s.port, "/orders") == 200
        variants = [
            "/orders",
            "/orders?x=1",
            "/orders?",
            "/orders/",
            "//orders",
            "/ORDERS",
            "/Orders",
            "/%6Frders",
            "/orders%2F",
            "/./orders",
            "/orders/.",
            "/orders;x=1",
            "/orders#frag",
            "http://127.0.0.1/orders",
        ]
        codes = {v: await raw_request(s.port, v) for v in variants}
    assert 200 not in codes.values(), codes
    assert len(served) == LIMIT


async def test_changing_user_agent_does_not_reset_the_count() -> None:
    """Headers other than identity (User-Agent, cookies) are not part of the key."""
    app, _served = build(trusted=[])
    async with Served(app) as s, httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.port}") as c:
        codes = [
            (
                await c.get("/orders", headers={"User-Agent": f"bot/{i}", "Cookie": f"session={i}"})
            ).status_code
            for i in range(6)
        ]
    assert codes == [200] * LIMIT + [429] * 3


async def test_a_trusted_proxys_forwarded_address_is_honoured() -> None:
    """Behind a trusted proxy, each forwarded client has its own count, and cannot forge one."""
    app, _served = build(trusted=["127.0.0.1/32"])
    async with Served(app) as s, httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.port}") as c:

        async def get(xff: str) -> int:
            return (await c.get("/orders", headers={"X-Forwarded-For": xff})).status_code

        first = [await get("198.51.100.1") for _ in range(4)]
        second = [await get("198.51.100.2") for _ in range(4)]
        # The client prepends a fake address; the proxy appended the real one.
        forged = await get("203.0.113.250, 198.51.100.1")
    assert first == [200] * LIMIT + [429]
    assert second == [200] * LIMIT + [429]
    assert forged == 429
