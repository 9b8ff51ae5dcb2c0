"""RevocationFollower against a real feed server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from barbacana.errors import ConfigurationError
from barbacana.tokens import (
    RevocationFollower,
    RevocationState,
    RevocationUnavailableError,
    TokenRevokedError,
)

from .helpers import NOW, FakeClock, JSONServer, make_kit


class Feed:
    """An append-only event log served as ``?after=cursor`` pages."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail = 0
        self.override: bytes | None = None

    def add(
        self, kind: str, value: str, *, until: float | None = None, before: float | None = None
    ) -> None:
        self.events.append({"kind": kind, "value": value, "until": until, "before": before})

    def answer(self, target: str) -> tuple[int, bytes]:
        if self.fail:
            self.fail -= 1
            return 503, b'{"detail": "down"}'
        if self.override is not None:
            return 200, self.override
        after = int(parse_qs(urlsplit(target).query)["after"][0])
        return 200, json.dumps({"cursor": len(self.events), "events": self.events[after:]}).encode()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class TestPoll:
    """One poll applies one batch."""

    async def test_applies_each_kind(self, http: httpx.AsyncClient) -> None:
        """jti, sid and sub events reach the state, and the cursor follows the feed."""
        feed, clock = Feed(), FakeClock()
        state = RevocationState(clock=clock)
        feed.add("jti", "j1", until=NOW + 600)
        feed.add("sid", "fam-1", until=NOW + 3600)
        feed.add("sub", "alice", before=NOW)
        async with JSONServer(feed.answer) as server:
            follower = RevocationFollower(
                server.url + "/internal/revocations", http, state, clock=clock
            )
            assert await follower.poll_once() == 3
            assert follower.cursor == 3
            assert server.targets == ["/internal/revocations?after=0"]
            feed.add("jti", "j2", until=NOW + 600)
            assert await follower.poll_once() == 1
            assert server.targets[-1] == "/internal/revocations?after=3"
            assert await follower.poll_once() == 0
        assert len(state) == 4
        assert follower.healthy
        assert follower.last_success == NOW

    async def test_end_to_end_revocation(self, http: httpx.AsyncClient) -> None:
        """A verifier sharing the state refuses a token once its jti arrives through the feed."""
        kit = make_kit(cache_size=16)
        feed = Feed()
        token = kit.token()
        claims = kit.verifier.verify(token)
        async with JSONServer(feed.answer) as server:
            follower = RevocationFollower(server.url, http, kit.revocation, clock=kit.clock)
            feed.add("jti", claims.jti, until=claims.exp)
            await follower.poll_once()
        with pytest.raises(TokenRevokedError):
            kit.verifier.verify(token)

    @pytest.mark.parametrize(
        "body",
        [
            b"not json",
            b"[]",
            b'{"cursor": "1", "events": []}',
            b'{"cursor": -1, "events": []}',
            b'{"cursor": 1, "events": {}}',
            b'{"cursor": 1, "events": [{"kind": "user", "value": "x"}]}',
            b'{"cursor": 1, "events": [{"kind": "jti", "value": ""}]}',
            b'{"cursor": 1, "events": [{"kind": "jti", "value": "x", "until": "soon"}]}',
            b'{"cursor": 1, "events": [{"kind": "sub", "value": "alice"}]}',
            b'{"cursor": 2, "events": [{"kind": "jti", "value": "ok"}, '
            b'{"kind": "sid", "value": 5}]}',
        ],
    )
    async def test_malformed_batch_applies_nothing(
        self, http: httpx.AsyncClient, body: bytes
    ) -> None:
        """A bad batch is refused whole: nothing applied, cursor kept, failure counted."""
        feed, state = Feed(), RevocationState()
        feed.override = body
        async with JSONServer(feed.answer) as server:
            follower = RevocationFollower(server.url, http, state)
            with pytest.raises(RevocationUnavailableError):
                await follower.poll_once()
        assert len(state) == 0
        assert follower.cursor == 0
        assert follower.failures == 1
        assert not follower.healthy

    async def test_oversized_answer(self, http: httpx.AsyncClient) -> None:
        """Answers over the byte cap are refused."""
        feed = Feed()
        feed.override = b'{"cursor": 0, "events": []}' + b" " * 2000
        async with JSONServer(feed.answer) as server:
            follower = RevocationFollower(server.url, http, RevocationState(), max_bytes=1000)
            with pytest.raises(RevocationUnavailableError):
                await follower.poll_once()

    async def test_server_error(self, http: httpx.AsyncClient) -> None:
        """A 5xx is a RevocationUnavailableError."""
        feed = Feed()
        feed.fail = 1
        async with JSONServer(feed.answer) as server:
            follower = RevocationFollower(server.url, http, RevocationState())
            with pytest.raises(RevocationUnavailableError, match="503"):
                await follower.poll_once()

    @pytest.mark.parametrize("url", ["file:///etc/passwd", "nope", ""])
    def test_bad_url(self, http: httpx.AsyncClient, url: str) -> None:
        """Only http(s) feed URLs."""
        with pytest.raises(ConfigurationError):
            RevocationFollower(url, http, RevocationState())

    def test_bad_interval(self, http: httpx.AsyncClient) -> None:
        """Durations must be positive."""
        with pytest.raises(ConfigurationError):
            RevocationFollower("http://127.0.0.1:1/", http, RevocationState(), interval=0)


class TestBackground:
    """start()/stop() and surviving failures."""

    async def test_survives_failures_and_catches_up(self, http: httpx.AsyncClient) -> None:
        """Failing polls are retried on the next tick; events then arrive in order."""
        feed, state = Feed(), RevocationState()
        feed.fail = 3
        feed.add("jti", "j1", until=time.time() + 600)
        async with JSONServer(feed.answer) as server:
            follower = RevocationFollower(server.url, http, state, interval=0.02)
            follower.start()
            follower.start()  # idempotent
            try:
                await wait_for(lambda: follower.cursor == 1)
                assert follower.failures == 3
                assert follower.healthy
                assert follower.running
                feed.add("sid", "fam", until=time.time() + 600)
                await wait_for(lambda: follower.cursor == 2)
            finally:
                await follower.stop()
        assert not follower.running
        assert len(state) == 2

    async def test_stop_before_start(self, http: httpx.AsyncClient) -> None:
        """stop() without start() is harmless."""
        await RevocationFollower("http://127.0.0.1:1/", http, RevocationState()).stop()

    async def test_unhealthy_when_stale(self, http: httpx.AsyncClient) -> None:
        """No success for stale_after seconds makes the follower unhealthy."""
        feed, clock = Feed(), FakeClock()
        async with JSONServer(feed.answer) as server:
            follower = RevocationFollower(
                server.url, http, RevocationState(), interval=1, stale_after=10, clock=clock
            )
            assert not follower.healthy
            await follower.poll_once()
            clock.advance(10)
            assert follower.healthy
            clock.advance(0.5)
            assert not follower.healthy

    async def test_prunes_expired_entries(self, http: httpx.AsyncClient) -> None:
        """Each successful poll forgets entries whose tokens have all expired."""
        feed, clock = Feed(), FakeClock()
        state = RevocationState(clock=clock)
        feed.add("jti", "short", until=NOW + 5)
        feed.add("jti", "long", until=NOW + 500)
        async with JSONServer(feed.answer) as server:
            follower = RevocationFollower(server.url, http, state, clock=clock)
            await follower.poll_once()
            assert len(state) == 2
            clock.advance(10)
            await follower.poll_once()
        assert len(state) == 1


class TestCatchUp:
    """A backlog is drained without waiting an interval per page."""

    async def test_full_pages_are_followed_at_once(self, http: httpx.AsyncClient) -> None:
        """With pages of two events and a long interval, five events still arrive promptly."""
        feed, state = Feed(), RevocationState()
        for n in range(5):
            feed.add("jti", f"j{n}", until=time.time() + 600)
        page = feed.answer

        def paged(target: str) -> tuple[int, bytes]:
            status, body = page(target)
            doc = json.loads(body)
            after = int(parse_qs(urlsplit(target).query)["after"][0])
            doc["events"] = doc["events"][:2]
            doc["cursor"] = after + len(doc["events"])
            return status, json.dumps(doc).encode()

        async with JSONServer(paged) as server:
            follower = RevocationFollower(server.url, http, state, interval=30, page_size=2)
            follower.start()
            try:
                await wait_for(lambda: follower.cursor == 5)
            finally:
                await follower.stop()
        assert len(state) == 5
        assert len(server.targets) == 3
