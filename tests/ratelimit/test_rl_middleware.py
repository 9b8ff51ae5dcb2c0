"""The ASGI layer: route templates, quota fields, 429 problem+json, tiers, the dependency."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from rl_helpers import FakeClock

from barbacana.errors import RateLimitError
from barbacana.ratelimit import (
    QUOTA_EXCEEDED_TYPE,
    Identity,
    MemoryStore,
    PolicySettings,
    RateLimit,
    RateLimitMiddleware,
    RateLimitSettings,
    rate_limit_exception_handler,
)


def build(settings: RateLimitSettings, store: MemoryStore, **options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/orders")
    async def orders() -> list[int]:
        return []

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    @app.post("/token")
    async def token() -> dict[str, str]:
        return {"access_token": "x"}

    app.add_middleware(RateLimitMiddleware, policies=settings, store=store, **options)
    return app


def client(app: FastAPI, peer: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 4321))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


STRICT = RateLimitSettings(
    algorithm="fixed_window",
    policies=[
        PolicySettings(
            name="token", route="/token", methods=["POST"], limits=["2/minute", "5/hour"]
        ),
        PolicySettings(name="reads", methods=["GET"], limits=["3/minute"]),
    ],
    global_policy=PolicySettings(name="global", limits=["100/minute"]),
)


class TestFields:
    async def test_ietf_and_x_ratelimit_fields(self, clock: FakeClock) -> None:
        """Every limited response carries RateLimit-Policy, RateLimit and X-RateLimit-*."""
        async with client(build(STRICT, MemoryStore(clock=clock))) as c:
            r = await c.post("/token")
        assert r.status_code == 200
        assert r.headers["ratelimit-policy"] == (
            '"token-1m";q=2;w=60, "token-1h";q=5;w=3600, "global";q=100;w=60'
        )
        t = r.headers["ratelimit"]
        assert t.startswith('"token-1m";r=1;t=')
        assert '"token-1h";r=4;t=' in t
        assert '"global";r=99;t=' in t
        assert r.headers["x-ratelimit-limit"] == "2"
        assert r.headers["x-ratelimit-remaining"] == "1"
        # Sliding window counter: a request weighs on the estimate for up to two windows.
        assert 0 < int(r.headers["x-ratelimit-reset"]) <= 120

    async def test_refusal_is_problem_json_quota_exceeded(self, clock: FakeClock) -> None:
        """The third POST /token in a minute is a 429 problem+json with Retry-After."""
        async with client(build(STRICT, MemoryStore(clock=clock))) as c:
            for _ in range(2):
                assert (await c.post("/token")).status_code == 200
            r = await c.post("/token")
        assert r.status_code == 429
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["type"] == QUOTA_EXCEEDED_TYPE
        assert body["status"] == 429
        assert body["instance"] == "/token"
        assert body["title"]
        assert "token-1m" in body["detail"]
        assert set(body) == {"type", "title", "status", "detail", "instance", "code"}
        assert 1 <= int(r.headers["retry-after"]) <= 120  # sliding counter: up to two windows
        assert '"token-1m";r=0;' in r.headers["ratelimit"]
        assert r.headers["x-ratelimit-remaining"] == "0"

    async def test_refused_requests_do_not_spend_the_hourly_quota(self, clock: FakeClock) -> None:
        """Refused by 2/minute, the 5/hour quota is untouched."""
        async with client(build(STRICT, MemoryStore(clock=clock))) as c:
            statuses = []
            for _ in range(3):
                for _ in range(4):
                    statuses.append((await c.post("/token")).status_code)
                clock.advance(60)
        assert statuses == [200, 200, 429, 429, 200, 200, 429, 429, 200, 429, 429, 429]

    async def test_errors_carry_the_fields_too(self, clock: FakeClock) -> None:
        """404, 405 and 422 answers are limited and carry the fields."""
        async with client(build(STRICT, MemoryStore(clock=clock))) as c:
            missing = await c.get("/nowhere")
            wrong_method = await c.get("/token")
            invalid = await c.get("/orders/not-a-number")
        for r in (missing, wrong_method, invalid):
            assert r.status_code in {404, 405, 422}
            assert "ratelimit" in r.headers
            assert "ratelimit-policy" in r.headers

    async def test_unmatched_paths_share_one_bucket(self, clock: FakeClock) -> None:
        """Probing many missing paths spends one 'unmatched' quota, not one per path."""
        async with client(build(STRICT, MemoryStore(clock=clock))) as c:
            codes = [(await c.get(f"/probe/{i}")).status_code for i in range(5)]
        assert codes == [404, 404, 404, 429, 429]

    async def test_path_parameters_share_the_template(self, clock: FakeClock) -> None:
        """/orders/1, /orders/2... count against /orders/{order_id} together."""
        async with client(build(STRICT, MemoryStore(clock=clock))) as c:
            codes = [(await c.get(f"/orders/{i}")).status_code for i in range(5)]
        assert codes == [200, 200, 200, 429, 429]


class TestIdentity:
    async def test_principal_and_tier_from_the_hook(self, clock: FakeClock) -> None:
        """The access layer's hook names the principal; its tier picks the limits."""
        settings = RateLimitSettings(
            policies=[
                PolicySettings(
                    name="reads",
                    methods=["GET"],
                    limits=["1/minute"],
                    tiers={"user": ["2/minute"], "admin": ["4/minute"]},
                )
            ],
            global_policy=None,
        )

        async def identify(scope: Any) -> Identity | None:
            for name, value in scope["headers"]:
                if name == b"x-test-user":
                    user, _, tier = value.decode().partition("/")
                    return Identity(f"sub:{user}", tier)
            return None

        app = build(settings, MemoryStore(clock=clock), identify=identify)

        async def count(headers: dict[str, str]) -> int:
            async with client(app) as c:
                return sum(
                    [(await c.get("/orders", headers=headers)).status_code == 200 for _ in range(6)]
                )

        assert await count({}) == 1
        assert await count({"x-test-user": "ann/user"}) == 2
        assert await count({"x-test-user": "bob/admin"}) == 4
        # Another user has their own count; the same user from another address does not.
        assert await count({"x-test-user": "cy/user"}) == 2
        async with client(app, peer="198.51.100.77") as c:
            r = await c.get("/orders", headers={"x-test-user": "ann/user"})
        assert r.status_code == 429


class TestDependency:
    async def test_single_route_dependency(self, clock: FakeClock) -> None:
        """Depends(RateLimit(...)) limits one route, with fields and problem+json."""
        store = MemoryStore(clock=clock)
        app = FastAPI()
        app.add_exception_handler(RateLimitError, rate_limit_exception_handler)

        @app.post(
            "/exports", dependencies=[Depends(RateLimit("2/minute", store=store, name="export"))]
        )
        async def export() -> dict[str, bool]:
            return {"ok": True}

        async with client(app) as c:
            first = await c.post("/exports")
            await c.post("/exports")
            refused = await c.post("/exports")
        assert first.status_code == 200
        assert first.headers["ratelimit-policy"] == '"export";q=2;w=60'
        assert first.headers["ratelimit"].startswith('"export";r=1;t=')
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert json.loads(refused.content)["type"] == QUOTA_EXCEEDED_TYPE
        assert int(refused.headers["retry-after"]) >= 1


class TestConfiguration:
    def test_bad_trusted_proxy_stops_start_up(self) -> None:
        """A bad CIDR is a configuration error when the middleware is built."""
        from barbacana.errors import ConfigurationError

        with pytest.raises(ConfigurationError):
            RateLimitMiddleware(
                FastAPI(), policies=STRICT, store=MemoryStore(), trusted_proxies=["10.0.0.1/8"]
            )


class TestKeyChain:
    def test_subject_then_api_key_then_address(self) -> None:
        """The key chain: authenticated subject, else API key id, else client address."""
        from barbacana.ratelimit import identity_chain

        assert identity_chain(address="203.0.113.7", subject="alice", api_key_id="k1") == Identity(
            "sub:alice", "user"
        )
        assert identity_chain(address="203.0.113.7", api_key_id="k1", roles=["admin"]) == Identity(
            "apikey:k1", "admin"
        )
        assert identity_chain(address="203.0.113.7") == Identity("addr:203.0.113.7", "anonymous")

    async def test_rotating_ipv6_addresses_inside_a_64_does_not_reset(
        self, clock: FakeClock
    ) -> None:
        """An IPv6 client is counted by its /64: new interface ids get no new quota."""
        app = build(STRICT, MemoryStore(clock=clock))
        codes = []
        for i in range(5):
            async with client(app, peer=f"2001:db8:1:2::{i + 1:x}") as c:
                codes.append((await c.get("/orders")).status_code)
        assert codes == [200, 200, 200, 429, 429]
        async with client(app, peer="2001:db8:1:3::1") as c:
            assert (await c.get("/orders")).status_code == 200


class TestNestedRouters:
    async def test_policy_applies_to_a_route_included_through_nested_prefixes(
        self, clock: FakeClock
    ) -> None:
        """A route in a router included into a router included with a prefix is still
        limited under its full template (FastAPI keeps only the innermost prefix on
        the included route itself)."""
        from fastapi import APIRouter

        inner, outer = APIRouter(prefix="/auth"), APIRouter(prefix="/v1")

        @inner.post("/token")
        async def token() -> dict[str, str]:
            return {"access_token": "x"}

        outer.include_router(inner)
        app = FastAPI()
        app.include_router(outer)
        settings = RateLimitSettings(
            algorithm="fixed_window",
            policies=[
                PolicySettings(
                    name="token", route="/v1/auth/token", methods=["POST"], limits=["2/minute"]
                )
            ],
        )
        app.add_middleware(RateLimitMiddleware, policies=settings, store=MemoryStore(clock=clock))
        async with client(app) as c:
            statuses = [(await c.post("/v1/auth/token")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
