"""Building blocks for token tests: a settable clock, cached keys, hand-made tokens."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from barbacana.tokens import (
    KeyRing,
    RevocationState,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    generate_signing_key,
)
from barbacana.tokens._b64 import b64url_encode

ISSUER = "https://auth.barbacana.test"
AUDIENCE = "orders"
NOW = 1_700_000_000.0
ALGORITHMS = ("Ed25519", "ES256", "RS256")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@functools.cache
def cached_key(
    alg: str, index: int = 0, name: Literal["Ed25519", "EdDSA"] = "Ed25519"
) -> SigningKey:
    """An active key per (alg, index, name); RSA generation is slow, so keys are shared."""
    return generate_signing_key(alg, now=NOW - 3600, state="active", ed25519_alg_name=name)


@dataclass
class Kit:
    """A ring, an issuer and a verifier sharing one fake clock."""

    ring: KeyRing
    issuer: TokenIssuer
    verifier: TokenVerifier
    clock: FakeClock
    revocation: RevocationState
    key: SigningKey
    options: dict[str, Any] = field(default_factory=dict)

    def token(self, sub: str = "user-1", **kwargs: Any) -> str:
        kwargs.setdefault("scope", ["orders:read", "orders:write"])
        kwargs.setdefault("roles", ["user"])
        kwargs.setdefault("client_id", "web")
        return self.issuer.issue_access(sub, **kwargs).token

    def verifier_with(self, **changes: Any) -> TokenVerifier:
        options = {**self.options, **changes}
        provider = options.pop("ring_provider", self.ring)
        return TokenVerifier(provider, **options)


def make_kit(
    alg: str = "Ed25519",
    *,
    key: SigningKey | None = None,
    cache_size: int = 0,
    leeway: float = 0.0,
    algorithms: tuple[str, ...] | None = None,
    ttl: float = 600,
) -> Kit:
    clock = FakeClock()
    signing = key or cached_key(alg)
    ring = KeyRing([signing])
    revocation = RevocationState(clock=clock)
    issuer = TokenIssuer(ring, issuer=ISSUER, audience=AUDIENCE, access_ttl=ttl, clock=clock)
    options: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "algorithms": algorithms or (signing.alg,),
        "leeway": leeway,
        "clock": clock,
        "revocation": revocation,
        "cache_size": cache_size,
    }
    verifier = TokenVerifier(ring, **options)
    return Kit(ring, issuer, verifier, clock, revocation, signing, options)


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid RFC 9068 payload at :data:`NOW`; ``None`` values are removed."""
    values: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "exp": int(NOW) + 600,
        "iat": int(NOW),
        "nbf": int(NOW),
        "jti": "Zm9vYmFyYmF6cXV4MTIzNA",
        "client_id": "web",
        "scope": "orders:read",
        "roles": ["user"],
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def segment(value: Any) -> str:
    """base64url of compact JSON, or of raw bytes / text as given."""
    if isinstance(value, bytes):
        return b64url_encode(value)
    if isinstance(value, str):
        return b64url_encode(value.encode())
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


def forge(
    header: Any,
    payload: Any,
    key: SigningKey | None = None,
    *,
    sign: Callable[[bytes], bytes] | None = None,
) -> str:
    """A compact JWS with any header and payload, signed by ``key`` or ``sign`` (or unsigned)."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    if sign is None and key is not None:
        sign = key.sign
    signature = b64url_encode(sign(signing_input.encode())) if sign is not None else ""
    return f"{signing_input}.{signature}"


def header_for(key: SigningKey, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


class JSONServer:
    """A tiny HTTP/1.1 server on 127.0.0.1 in the test's event loop, counting requests.

    ``handler(target)`` returns ``(status, body)`` for each request target
    (path and query); ``delay`` holds every answer back, so concurrent callers
    overlap with the request in flight.
    """

    def __init__(self, handler: Callable[[str], tuple[int, bytes]], *, delay: float = 0.0) -> None:
        self.handler = handler
        self.delay = delay
        self.targets: list[str] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> JSONServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            target = request_line.split()[1].decode()
            self.targets.append(target)
            if self.delay:
                await asyncio.sleep(self.delay)
            status, body = self.handler(target)
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (ConnectionError, IndexError):
            pass
        finally:
            writer.close()
