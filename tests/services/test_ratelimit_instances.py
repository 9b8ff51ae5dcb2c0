"""Invariant 8 on the real orders service: two instances sharing Redis admit exactly N."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import httpx
import pytest

from barbacana.ratelimit import PolicySettings, RateLimitSettings
from barbacana.services._runtime import DataDir
from barbacana.services.orders.app import create_app as create_orders
from barbacana.settings import ClientSettings, TokenSettings
from tests.conftest import ServerThread, make_settings
from tests.services.conftest import ISSUER, System

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_two_orders_instances_admit_exactly_the_limit(system: System) -> None:
    """1,000 concurrent reads spread over two instances with a limit of 100 admit exactly 100."""
    prefix = f"brb-test-{secrets.token_hex(4)}"
    limits = RateLimitSettings(
        store_url="redis://127.0.0.1:6379/0",
        key_prefix=prefix,
        failure_mode="closed",
        policies=[
            PolicySettings(name="reads", route="/orders", methods=["GET"], limits=["100/hour"])
        ],
        global_policy=PolicySettings(name="global", limits=["100000/hour"]),
    )
    settings = make_settings(
        system.data_dir,
        system.database_url,
        tokens=TokenSettings(
            issuer=ISSUER, identity_url=system.auth, jwks_refresh_interval=timedelta(seconds=5)
        ),
        client=ClientSettings(
            id="orders", secret_file=DataDir(system.data_dir).client_secret("orders")
        ),
        ratelimit=limits,
    )
    headers = system.bearer(system.token()["access_token"])
    with ServerThread(create_orders(settings)) as one, ServerThread(create_orders(settings)) as two:
        limit = asyncio.Semaphore(100)
        limits_http = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(limits=limits_http, timeout=60) as client:

            async def call(i: int) -> int:
                async with limit:
                    base = one.url if i % 2 else two.url
                    return (await client.get(f"{base}/orders", headers=headers)).status_code

            statuses = await asyncio.gather(*(call(i) for i in range(1000)))
    assert statuses.count(200) == 100
    assert statuses.count(429) == 900
