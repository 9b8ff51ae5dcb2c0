"""Fixtures for the outbound tests: no test here resolves a real name or leaves loopback.

Every client is built with a :class:`StubResolver` and a :class:`FakeNetwork`,
which refuses (and fails the test on) any connection to an address outside
``127.0.0.0/8`` and ``::1`` that the test did not serve in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from barbacana.outbound import OutboundPolicy, OutboundSettings, SafeClient
from barbacana.outbound.testing import CanaryServer, FakeNetwork, StubResolver

MakeClient = Callable[..., Awaitable[SafeClient]]


@pytest.fixture
def network() -> FakeNetwork:
    return FakeNetwork()


@pytest.fixture
def resolver() -> StubResolver:
    return StubResolver()


@pytest.fixture
async def canary() -> AsyncIterator[CanaryServer]:
    async with CanaryServer() as server:
        yield server


@pytest.fixture
async def make_client(network: FakeNetwork, resolver: StubResolver) -> AsyncIterator[MakeClient]:
    """Build a SafeClient from settings overrides; every client is closed afterwards."""
    clients: list[SafeClient] = []

    async def make(
        *, ssl_context: Any = None, profile: str = "development", **settings: Any
    ) -> SafeClient:
        policy = OutboundPolicy.from_settings(OutboundSettings(**settings), profile=profile)
        client = SafeClient(
            policy, resolver=resolver, network_backend=network, ssl_context=ssl_context
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
