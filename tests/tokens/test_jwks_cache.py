"""JWKSCache against a real HTTP server on 127.0.0.1, counting requests."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from barbacana.errors import ConfigurationError
from barbacana.tokens import (
    JWKSCache,
    JWKSUnavailableError,
    KeyRing,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    UnknownKeyError,
    generate_signing_key,
)

from .helpers import (
    AUDIENCE,
    ISSUER,
    NOW,
    FakeClock,
    JSONServer,
    cached_key,
    claims,
    forge,
    header_for,
)


class Issuer:
    """The identity side: a ring, its issuer, and what its JWKS endpoint answers."""

    def __init__(self, *keys: SigningKey) -> None:
        self.clock = FakeClock()
        self.ring = KeyRing(keys)
        self.issuer = TokenIssuer(
            self.ring, issuer=ISSUER, audience=AUDIENCE, access_ttl=600, clock=self.clock
        )
        self.status = 200
        self.body: bytes | None = None

    def answer(self, target: str) -> tuple[int, bytes]:
        if self.body is not None:
            return self.status, self.body
        return self.status, json.dumps(self.ring.jwks()).encode()

    def token(self) -> str:
        return self.issuer.issue_access(
            "user-1", scope=["orders:read"], roles=["user"], client_id="web"
        ).token


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def verifier_for(cache: JWKSCache, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(
        cache,
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=["Ed25519", "ES256", "RS256"],
        clock=clock,
        cache_size=0,
    )


class TestLoad:
    """load() before readiness."""

    async def test_load_and_verify(self, http: httpx.AsyncClient) -> None:
        """After load, tokens from the issuer verify with the fetched keys."""
        issuer = Issuer(cached_key("Ed25519"))
        async with JSONServer(issuer.answer) as server:
            cache = JWKSCache(server.url + "/.well-known/jwks.json", http, clock=issuer.clock)
            await cache.load()
            assert server.targets == ["/.well-known/jwks.json"]
            assert verifier_for(cache, issuer.clock).verify(issuer.token()).sub == "user-1"
            assert cache.last_success == NOW
            assert cache.verification_key(cached_key("Ed25519").kid) is not None
            assert cache.verification_key(cached_key("Ed25519").kid).private_key is None  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        ("status", "body"),
        [
            (500, b"{}"),
            (404, b"not found"),
            (200, b"not json"),
            (200, b'{"keys": "none"}'),
            (200, b'{"keys": []}'),
            (
                200,
                json.dumps(
                    {"keys": [{**cached_key("Ed25519").public_jwk(), "d": "AAAA"}]}
                ).encode(),
            ),
            (200, json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}]}).encode()),
            (200, b'{"keys": []}' + b" " * 70_000),
        ],
        ids=["500", "404", "not-json", "no-array", "empty", "private", "symmetric", "oversized"],
    )
    async def test_load_fails(self, http: httpx.AsyncClient, status: int, body: bytes) -> None:
        """load() raises JWKSUnavailableError when the key set is not usable."""
        issuer = Issuer(cached_key("Ed25519"))
        issuer.status, issuer.body = status, body
        async with JSONServer(issuer.answer) as server:
            cache = JWKSCache(server.url, http, clock=issuer.clock)
            with pytest.raises(JWKSUnavailableError):
                await cache.load()
        assert len(cache.ring) == 0

    async def test_unreachable(self, http: httpx.AsyncClient) -> None:
        """A closed port is a JWKSUnavailableError, not a transport exception."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cache = JWKSCache(f"http://127.0.0.1:{port}/jwks", http, timeout=2)
        with pytest.raises(JWKSUnavailableError) as info:
            await cache.load()
        assert isinstance(info.value.__cause__, httpx.HTTPError)

    @pytest.mark.parametrize("url", ["ftp://x/jwks", "not a url", "/relative", "http://"])
    def test_bad_url(self, http: httpx.AsyncClient, url: str) -> None:
        """Only http(s) URLs are accepted, at construction."""
        with pytest.raises(ConfigurationError):
            JWKSCache(url, http)


class TestRefreshLimits:
    """Unknown kids cannot turn the cache into a request amplifier."""

    async def test_random_kids_flood_makes_one_request(self, http: httpx.AsyncClient) -> None:
        """200 concurrent tokens with random kids cause at most one fetch."""
        issuer = Issuer(cached_key("Ed25519"))
        async with JSONServer(issuer.answer, delay=0.2) as server:
            cache = JWKSCache(server.url, http, min_refresh_interval=5, clock=issuer.clock)
            await cache.load()
            verifier = verifier_for(cache, issuer.clock)
            issuer.clock.advance(10)  # the interval since load() has passed
            tokens = [
                forge(
                    header_for(cached_key("Ed25519"), kid=secrets.token_urlsafe(8)),
                    claims(),
                    cached_key("Ed25519"),
                )
                for _ in range(200)
            ]
            results = await asyncio.gather(
                *(verifier.verify_async(t) for t in tokens), return_exceptions=True
            )
            assert all(isinstance(result, UnknownKeyError) for result in results)
            assert len(server.targets) == 2  # load() and one shared refresh
            assert cache.fetches == 2

    async def test_within_interval_no_request(self, http: httpx.AsyncClient) -> None:
        """Right after a fetch, unknown kids cost nothing."""
        issuer = Issuer(cached_key("Ed25519"))
        async with JSONServer(issuer.answer) as server:
            cache = JWKSCache(server.url, http, min_refresh_interval=5, clock=issuer.clock)
            await cache.load()
            verifier = verifier_for(cache, issuer.clock)
            for _ in range(20):
                token = forge(
                    header_for(cached_key("Ed25519"), kid=secrets.token_urlsafe(8)),
                    claims(),
                    cached_key("Ed25519"),
                )
                with pytest.raises(UnknownKeyError):
                    await verifier.verify_async(token)
            assert len(server.targets) == 1

    async def test_implausible_kid_never_fetches(self, http: httpx.AsyncClient) -> None:
        """A missing or non-string kid does not ask the issuer anything."""
        issuer = Issuer(cached_key("Ed25519"))
        async with JSONServer(issuer.answer) as server:
            cache = JWKSCache(server.url, http, min_refresh_interval=1, clock=issuer.clock)
            await cache.load()
            issuer.clock.advance(60)
            verifier = verifier_for(cache, issuer.clock)
            for kid in (None, 5, "k" * 300):
                header = {**header_for(cached_key("Ed25519")), "kid": kid}
                with pytest.raises(UnknownKeyError):
                    await verifier.verify_async(forge(header, claims(), cached_key("Ed25519")))
            assert len(server.targets) == 1


class TestAvailability:
    """A failing issuer does not take verification down."""

    async def test_issuer_down_keeps_cached_keys(self, http: httpx.AsyncClient) -> None:
        """When the JWKS endpoint fails, known keys keep verifying and the failure is survivable."""
        issuer = Issuer(cached_key("Ed25519"))
        async with JSONServer(issuer.answer) as server:
            cache = JWKSCache(server.url, http, min_refresh_interval=1, clock=issuer.clock)
            await cache.load()
            verifier = verifier_for(cache, issuer.clock)
            token = issuer.token()
            issuer.status, issuer.body = 503, b"down"
            issuer.clock.advance(5)
            assert await cache.refresh() is False
            assert len(server.targets) == 2
            assert (await verifier.verify_async(token)).sub == "user-1"
            unknown = forge(
                header_for(cached_key("Ed25519"), kid="new-kid"), claims(), cached_key("Ed25519")
            )
            issuer.clock.advance(5)
            with pytest.raises(UnknownKeyError):
                await verifier.verify_async(unknown)
            assert len(server.targets) == 3
            assert (await verifier.verify_async(token)).sub == "user-1"
        # The server is gone altogether: still verifying.
        issuer.clock.advance(5)
        assert await cache.refresh() is False
        assert (await verifier.verify_async(token)).sub == "user-1"


class TestRotation:
    """New keys are learned on first sight; removed keys stop verifying."""

    async def test_new_kid_learned_on_first_sight(self, http: httpx.AsyncClient) -> None:
        """A token from a key published after load() verifies at once, with one fetch."""
        old = generate_signing_key("ES256", now=NOW, state="active")
        issuer = Issuer(old)
        async with JSONServer(issuer.answer) as server:
            cache = JWKSCache(server.url, http, min_refresh_interval=5, clock=issuer.clock)
            await cache.load()
            verifier = verifier_for(cache, issuer.clock)
            issuer.clock.advance(6)
            new = generate_signing_key("Ed25519", now=issuer.clock(), state="active")
            issuer.ring.replace([old.with_state("retiring", retire_at=issuer.clock() + 600), new])
            token = issuer.token()
            with pytest.raises(UnknownKeyError):
                verifier.verify(token)  # the sync path never fetches
            assert (await verifier.verify_async(token)).sub == "user-1"
            assert len(server.targets) == 2
            assert (await verifier.verify_async(issuer.token())).sub == "user-1"
            assert len(server.targets) == 2

    async def test_removed_key_stops_verifying(self, http: httpx.AsyncClient) -> None:
        """After a refresh without the key, its tokens are unknown."""
        key = generate_signing_key("Ed25519", now=NOW, state="active")
        issuer = Issuer(key)
        async with JSONServer(issuer.answer) as server:
            cache = JWKSCache(server.url, http, min_refresh_interval=1, clock=issuer.clock)
            await cache.load()
            verifier = verifier_for(cache, issuer.clock)
            token = issuer.token()
            issuer.ring.replace([key.with_state("retired"), cached_key("ES256")])
            issuer.clock.advance(2)
            assert await cache.refresh() is True
            with pytest.raises(UnknownKeyError):
                verifier.verify(token)

    async def test_unchanged_keys_keep_identity(self, http: httpx.AsyncClient) -> None:
        """A refresh returning the same key keeps the object, so the token cache stays valid."""
        issuer = Issuer(cached_key("Ed25519"))
        async with JSONServer(issuer.answer) as server:
            cache = JWKSCache(server.url, http, min_refresh_interval=1, clock=issuer.clock)
            await cache.load()
            before = cache.verification_key(cached_key("Ed25519").kid)
            issuer.clock.advance(2)
            assert await cache.refresh() is True
            assert cache.verification_key(cached_key("Ed25519").kid) is before

    async def test_cancelled_caller_does_not_cancel_the_fetch(
        self, http: httpx.AsyncClient
    ) -> None:
        """One waiter giving up leaves the shared fetch running for the others."""
        issuer = Issuer(cached_key("Ed25519"))
        async with JSONServer(issuer.answer, delay=0.2) as server:
            cache = JWKSCache(server.url, http, min_refresh_interval=1, clock=issuer.clock)
            first = asyncio.ensure_future(cache.load())
            second = asyncio.ensure_future(cache.refresh())
            await asyncio.sleep(0.05)
            first.cancel()
            assert await second is True
            assert len(server.targets) == 1
            assert len(cache.ring) == 1
