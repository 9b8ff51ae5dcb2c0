"""``SafeClient``: fetch a user-supplied URL within the outbound policy.

It sends ``GET`` through :class:`~._transport.SafeTransport` and adds what a
single request cannot enforce: redirects followed by hand (each one a new,
fully checked request, up to the policy's limit), a total deadline over
resolution, redirects and body, and a body cap counted after decoding (a
gzip bomb stops at the cap, not after inflating). It is never given the
caller's credentials: there is no way to pass headers, no cookie jar, no
``.netrc`` and no proxy from the environment.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from dataclasses import dataclass
from types import TracebackType

import httpcore
import httpx

from ._policy import OutboundPolicy
from ._resolver import Resolver
from ._transport import CheckedTarget, SafeTransport
from ._url import join_url
from .errors import (
    BadResponseError,
    OutboundConnectionError,
    OutboundTimeoutError,
    ResponseTooLargeError,
    TooManyRedirectsError,
)

__all__ = ["FetchResult", "SafeClient"]

# RFC 9110 §15.4: the redirects that carry a Location to follow.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What a fetch returned.

    Attributes:
        url: The canonical URL finally fetched (after redirects).
        status: The final response's status code (not necessarily 2xx).
        headers: The final response's headers.
        content: The body, decoded from ``Content-Encoding``, at most the cap.
        content_type: The media type of ``Content-Type``, lowercase, without
            parameters; ``None`` when absent.
    """

    url: str
    status: int
    headers: httpx.Headers
    content: bytes
    content_type: str | None


class SafeClient:
    """An SSRF-safe HTTP client for URLs that come from outside.

    Args:
        policy: What may be fetched (see :meth:`OutboundPolicy.from_settings`).
        resolver: Name resolution (default: the system's, off the event loop).
        ssl_context: TLS settings (default: httpx's, with certifi's CAs).
        network_backend: The httpcore backend that opens sockets (tests only).
        max_connections: Size of the connection pool.

    Use one client per application (``async with`` or :meth:`aclose` at shutdown).
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        max_connections: int = 20,
    ) -> None:
        self.policy = policy
        self._transport = SafeTransport(
            policy,
            resolver=resolver,
            ssl_context=ssl_context,
            network_backend=network_backend,
            max_connections=max_connections,
        )

    async def __aenter__(self) -> SafeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._transport.aclose()

    async def check(self, url: str) -> str:
        """Check ``url`` (resolving its host) without fetching it; return it canonical.

        Lets a service refuse a bad URL with 4xx before queueing work. The
        fetch checks again: a name may resolve differently later.

        Raises:
            OutboundError: The matching subclass when the URL is refused.
        """
        try:
            async with asyncio.timeout(self.policy.timeout):
                target: CheckedTarget = await self._transport.admit(url)
        except TimeoutError:
            raise OutboundTimeoutError("Checking the URL took too long") from None
        return target.url.canonical()

    async def fetch(
        self, url: str, *, max_bytes: int | None = None, accept: str = "*/*"
    ) -> FetchResult:
        """``GET`` ``url``, following checked redirects, and read at most ``max_bytes``.

        Args:
            url: The URL, exactly as the user gave it.
            max_bytes: Cap on the decoded body (default: the policy's ``max_bytes``).
            accept: The ``Accept`` header.

        Raises:
            BadURLError, DisallowedSchemeError, DisallowedHostError,
            DisallowedPortError, DisallowedAddressError, UnresolvableHostError:
                The URL, or a redirect, is refused; nothing was sent to it.
            TooManyRedirectsError: More than ``policy.max_redirects`` redirects.
            ResponseTooLargeError: The body is larger than ``max_bytes``.
            OutboundTimeoutError: The whole fetch took longer than ``policy.timeout``.
            OutboundConnectionError: Connection or TLS verification failed.
            BadResponseError: The answer is not a readable HTTP response.
        """
        cap = self.policy.max_bytes if max_bytes is None else max_bytes
        if cap < 1:
            raise ValueError("max_bytes must be at least 1")
        try:
            async with asyncio.timeout(self.policy.timeout):
                return await self._follow(url, cap, accept)
        except TimeoutError:
            raise OutboundTimeoutError(
                f"Fetching the URL took longer than {self.policy.timeout:g} seconds"
            ) from None

    async def _follow(self, url: str, cap: int, accept: str) -> FetchResult:
        # Canonical first: what is fetched is the host a browser would see,
        # whatever httpx's own parser would make of the original spelling.
        current = self._transport.precheck(url).canonical()
        for _hop in range(self.policy.max_redirects + 1):
            response = await self._send(current, accept)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    current = self._transport.precheck(join_url(current, location)).canonical()
                    continue
                content = await _read_body(response, cap)
            finally:
                await response.aclose()
            media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
            return FetchResult(
                url=current,
                status=response.status_code,
                headers=response.headers,
                content=content,
                content_type=media or None,
            )
        raise TooManyRedirectsError(
            f"The URL redirected more than {self.policy.max_redirects} times"
        )

    async def _send(self, url: str, accept: str) -> httpx.Response:
        seconds = self.policy.timeout
        request = httpx.Request(
            "GET",
            url,
            headers={
                "User-Agent": self.policy.user_agent,
                "Accept": accept,
                # Ask for no compression; a server that compresses anyway is
                # decoded below within the cap.
                "Accept-Encoding": "identity",
            },
            extensions={
                "timeout": {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}
            },
        )
        try:
            return await self._transport.handle_async_request(request)
        except httpx.TimeoutException:
            raise OutboundTimeoutError("The URL's server did not answer in time") from None
        except httpx.ConnectError:
            raise OutboundConnectionError(
                "Could not connect to the URL's server, or its TLS certificate did not verify"
            ) from None
        except httpx.TransportError:
            raise BadResponseError("The URL's server did not answer with valid HTTP") from None


async def _read_body(response: httpx.Response, cap: int) -> bytes:
    declared = response.headers.get("content-length", "")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if declared.isdigit() and encoding == "identity" and int(declared) > cap:
        raise ResponseTooLargeError(f"The response is larger than {cap} bytes")
    decoder = _Decoder(encoding)
    chunks: list[bytes] = []
    total = 0
    try:
        async for raw in response.aiter_raw():
            data = decoder.feed(raw, cap - total)
            total += len(data)
            if total > cap:
                raise ResponseTooLargeError(f"The response is larger than {cap} bytes")
            chunks.append(data)
    except httpx.TimeoutException:
        raise OutboundTimeoutError("The URL's server stopped sending in time") from None
    except httpx.TransportError:
        raise BadResponseError("The URL's server broke off the response") from None
    return b"".join(chunks)


class _Decoder:
    """Incremental ``Content-Encoding`` decoder that never outputs more than asked.

    ``zlib``'s ``max_length`` bounds each step, so a small compressed chunk
    cannot inflate into gigabytes before the cap is checked (RFC 9110 §8.4.1).
    """

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._zlib: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding not in ("identity", "deflate", ""):
            raise BadResponseError(f"The response uses an unsupported encoding ({encoding})")

    def feed(self, data: bytes, remaining: int) -> bytes:
        """Decode ``data``, producing at most ``remaining + 1`` bytes.

        Raises:
            ResponseTooLargeError: More than that is pending.
            BadResponseError: The compressed data is corrupt.
        """
        if self._encoding == "deflate" and self._zlib is None and data:
            # RFC 9110 says zlib-wrapped; some servers send raw deflate.
            wrapped = len(data) > 1 and data[0] & 0x0F == 8 and int.from_bytes(data[:2]) % 31 == 0
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        if self._zlib is None:
            return data
        try:
            out = self._zlib.decompress(data, max(remaining, 0) + 1)
        except zlib.error:
            raise BadResponseError("The response's compressed body is corrupt") from None
        if self._zlib.unconsumed_tail:
            # Output stopped at the limit with input left: over the cap.
            raise ResponseTooLargeError("The response is too large once decompressed")
        return out
