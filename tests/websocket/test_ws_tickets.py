"""Ticket stores (in process and Redis): single use, expiry, no ticket at rest, races."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from barbacana.errors import ConfigurationError
from barbacana.websocket import (
    MemoryTicketStore,
    RedisTicketStore,
    TicketRecord,
    TicketStore,
    TicketStoreFullError,
    TicketStoreUnavailableError,
    new_ticket,
    ticket_digest,
    ticket_expiry,
    ticket_store_from_url,
    well_formed_ticket,
)
from tests.websocket.conftest import FakeClock


def record(clock: FakeClock, ttl: float = 30.0, **extra: object) -> TicketRecord:
    values: dict[str, object] = {
        "sub": "user-1",
        "username": "alice",
        "sid": "family-1",
        "jti": "jti-1",
        "iat": clock.now - 5,
        "exp": clock.now + 600,
        "roles": ("user",),
        "scopes": ("chat:use",),
        "client_id": "public",
        "room": None,
        "origin": "https://app.example",
        "expires_at": clock.now + ttl,
    }
    values.update(extra)
    return TicketRecord(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[TicketStore]:
    """Each contract test runs on both stores."""
    if request.param == "memory":
        yield MemoryTicketStore(clock=clock)
        return
    redis_url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("prefix")
    redis_store = RedisTicketStore(redis_url, key_prefix=prefix, clock=clock)
    yield redis_store
    await redis_store.aclose()


class TestTicketContract:
    async def test_redeem_once(self, store: TicketStore, clock: FakeClock) -> None:
        """A ticket gives back its record once; the second redemption gets nothing."""
        issued = record(clock)
        ticket = await store.issue(issued)
        assert well_formed_ticket(ticket)
        assert len(ticket) == 43
        assert await store.redeem(ticket) == issued
        assert await store.redeem(ticket) is None

    async def test_unknown_and_malformed(self, store: TicketStore) -> None:
        """Unknown, empty, overlong or non-base64url tickets are simply not valid."""
        for ticket in (new_ticket(), "", "a" * 200, "not a ticket!", "x" * 31, "é" * 43):
            assert await store.redeem(ticket) is None

    async def test_expired_memory_clock(self, store: TicketStore, clock: FakeClock) -> None:
        """A ticket redeemed after its expiry is not valid (checked against the record)."""
        ticket = await store.issue(record(clock, ttl=30))
        clock.advance(30.001)
        assert await store.redeem(ticket) is None

    async def test_concurrent_redemptions_one_wins(
        self, store: TicketStore, clock: FakeClock
    ) -> None:
        """Fifty handshakes racing with one ticket: exactly one gets the record."""
        ticket = await store.issue(record(clock))
        results = await asyncio.gather(*(store.redeem(ticket) for _ in range(50)))
        assert sum(r is not None for r in results) == 1

    async def test_tickets_are_distinct(self, store: TicketStore, clock: FakeClock) -> None:
        """Each issue is a fresh 256-bit ticket."""
        tickets = {await store.issue(record(clock)) for _ in range(100)}
        assert len(tickets) == 100


class TestRedisStore:
    async def test_only_digests_at_rest(
        self, redis_url: str, prefix: str, clock: FakeClock
    ) -> None:
        """Redis holds the ticket's SHA-256 as the key, never the ticket, and a PX expiry."""
        store = RedisTicketStore(redis_url, key_prefix=prefix, clock=clock)
        ticket = await store.issue(record(clock, ttl=30))
        client = aioredis.Redis.from_url(redis_url)
        try:
            keys = [k.decode() async for k in client.scan_iter(match=f"{prefix}:*")]
            assert keys == [f"{prefix}:ticket:{ticket_digest(ticket)}"]
            stored = await client.get(keys[0])
            assert stored is not None
            assert ticket.encode() not in stored
            assert 29_000 < await client.pttl(keys[0]) <= 30_000
        finally:
            await client.aclose()
            await store.aclose()

    async def test_real_expiry(self, redis_url: str, prefix: str) -> None:
        """Redis forgets a ticket when its lifetime ends, whatever the clock says."""
        frozen = FakeClock(1_000.0)
        store = RedisTicketStore(redis_url, key_prefix=prefix, clock=frozen)
        ticket = await store.issue(record(frozen, ttl=0.05))
        await asyncio.sleep(0.15)
        assert await store.redeem(ticket) is None
        await store.aclose()

    async def test_unreachable(self, clock: FakeClock) -> None:
        """A Redis that does not answer is a 503-class error, never a crash or a pass."""
        store = RedisTicketStore("redis://127.0.0.1:1/0", clock=clock, timeout=0.2)
        with pytest.raises(TicketStoreUnavailableError):
            await store.issue(record(clock))
        with pytest.raises(TicketStoreUnavailableError):
            await store.redeem(new_ticket())
        with pytest.raises(TicketStoreUnavailableError):
            await store.check()
        await store.aclose()

    async def test_malformed_stored_value(
        self, redis_url: str, prefix: str, clock: FakeClock
    ) -> None:
        """A value that is not a ticket record is refused, not trusted."""
        store = RedisTicketStore(redis_url, key_prefix=prefix, clock=clock)
        ticket = new_ticket()
        client = aioredis.Redis.from_url(redis_url)
        await client.set(f"{prefix}:ticket:{ticket_digest(ticket)}", b'{"sub": 1}', px=5000)
        await client.aclose()
        with pytest.raises(TicketStoreUnavailableError):
            await store.redeem(ticket)
        await store.aclose()


class TestMemoryStore:
    async def test_full_store_sweeps_then_refuses(self, clock: FakeClock) -> None:
        """A full store drops expired tickets first, then refuses (bounded memory)."""
        store = MemoryTicketStore(clock=clock, max_tickets=3)
        for _ in range(3):
            await store.issue(record(clock, ttl=1))
        clock.advance(2)
        live = [await store.issue(record(clock, ttl=30)) for _ in range(3)]
        assert len(store) == 3
        with pytest.raises(TicketStoreFullError):
            await store.issue(record(clock))
        assert all([await store.redeem(t) for t in live])

    def test_bad_size(self) -> None:
        with pytest.raises(ConfigurationError):
            MemoryTicketStore(max_tickets=0)


class TestRecord:
    def test_claims_for_revocation(self, clock: FakeClock) -> None:
        """The record carries what RevocationState needs: sub, sid, jti, iat, exp."""
        claims = record(clock).claims()
        assert (claims.sub, claims.sid, claims.jti) == ("user-1", "family-1", "jti-1")
        assert claims.iat == clock.now - 5
        assert claims.exp == clock.now + 600

    def test_strict(self, clock: FakeClock) -> None:
        """Unknown fields and wrong types are refused."""
        good = record(clock).model_dump(mode="json")
        for bad in ({**good, "admin": True}, {**good, "roles": "admin"}, {**good, "exp": "soon"}):
            with pytest.raises(TicketStoreUnavailableError):
                TicketRecord.parse(bad)

    def test_expiry_never_past_the_token(self) -> None:
        assert ticket_expiry(100.0, 30.0, 1000.0) == 130.0
        assert ticket_expiry(100.0, 30.0, 110.0) == 110.0

    def test_scheme_table(self) -> None:
        assert isinstance(ticket_store_from_url(None), MemoryTicketStore)
        assert isinstance(ticket_store_from_url("memory://"), MemoryTicketStore)
        with pytest.raises(ConfigurationError, match="unknown ticket-store scheme"):
            ticket_store_from_url("memcached://x")
