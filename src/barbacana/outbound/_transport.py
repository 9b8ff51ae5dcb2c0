"""The SSRF guard as an httpx transport: check, resolve once, pin, connect.

For every request (each redirect is a new request) the transport:

1. parses the URL as a browser would (:func:`~._url.parse_url`), so that odd
   spellings of an address are judged as what they are;
2. applies the policy: scheme, address literal, no userinfo, host allow-list;
3. resolves the name itself, through the injected resolver, and checks
   *every* address returned (one bad answer refuses the whole host);
4. pins the checked addresses for this request and hands it to an httpcore
   connection pool whose network backend connects only to pinned addresses.

The URL given to httpcore keeps the original host name, so the ``Host``
header, TLS SNI and certificate verification all use the name while the socket
goes to the checked address; there is no second lookup for DNS rebinding to
change, and a pooled TLS connection is only reused for the same name. The
caller's credentials (``Authorization``, ``Proxy-Authorization``, ``Cookie``,
``X-API-Key``) are removed from every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

import httpcore
import httpx

from ._addresses import IPAddress
from ._policy import OutboundPolicy, _address_error
from ._resolver import Resolver, SystemResolver
from ._url import ParsedURL, parse_url
from .errors import BadURLError, DisallowedAddressError, OutboundTimeoutError

__all__ = ["STRIPPED_HEADERS", "CheckedTarget", "SafeTransport", "safe_transport"]

#: Request headers never sent to a user-supplied URL.
STRIPPED_HEADERS = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"x-api-key"})


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    """A URL that passed the policy, with the addresses it may be fetched from."""

    url: ParsedURL
    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class _Pin:
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


# The checked addresses of the request being sent. httpcore's pool opens the
# connection in the caller's task, so the pin travels with the request.
_PIN: ContextVar[_Pin | None] = ContextVar("barbacana_outbound_pin", default=None)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to the addresses pinned for the current request."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        pin = _PIN.get()
        if pin is None or pin.host != host or pin.port != port:
            # Fail closed: a connection nobody checked is never opened.
            raise DisallowedAddressError(
                "Outbound connection to an unchecked host refused", category="unchecked"
            )
        failure: Exception | None = None
        for address in pin.addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError("no address to connect to")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DisallowedAddressError("Outbound Unix sockets are refused", category="unix-socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# httpcore's errors become httpx's, most specific first (as httpx's own transport does).
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc), request=request) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes], request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors(self._request):
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """httpx's default context (certifi's CAs, hostname checks), built once per process.

    Loading the CA bundle takes a noticeable fraction of a second; the context
    is only read afterwards, so every transport can share it.
    """
    return httpx.create_ssl_context()


class SafeTransport(httpx.AsyncBaseTransport):
    """An httpx transport that only connects to checked, public addresses.

    Use it through :class:`~barbacana.outbound.SafeClient`, or with raw httpx
    via :func:`safe_transport` (then create the client with ``trust_env=False``
    so that no proxy from the environment bypasses the transport).

    Args:
        policy: What may be fetched.
        resolver: Name resolution (default: the system's, off the event loop).
        ssl_context: TLS settings for https (default: httpx's, with certifi's CAs).
        network_backend: The httpcore backend that opens sockets once an
            address is pinned (tests inject one that refuses anything but loopback).
        max_connections: Size of the connection pool.
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
        self._resolver: Resolver = resolver if resolver is not None else SystemResolver()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context if ssl_context is not None else _default_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=_PinnedBackend(network_backend or httpcore.AnyIOBackend()),
        )

    def precheck(self, url: str) -> ParsedURL:
        """Every check that needs no resolution: syntax, scheme, literal address, host.

        Raises:
            OutboundError: The matching subclass when the URL is refused.
        """
        parsed = parse_url(url)
        self.policy.check_scheme(parsed)
        self.policy.check_literal(parsed)
        if parsed.has_userinfo:
            raise BadURLError("URLs with credentials (user:password@) are not fetched")
        self.policy.check_host(parsed)
        return parsed

    async def admit(
        self, url: str | httpx.URL, *, resolve_timeout: float | None = None
    ) -> CheckedTarget:
        """Check ``url`` against the policy and resolve it; nothing is sent.

        Args:
            url: The URL, as given by the user.
            resolve_timeout: Seconds allowed for name resolution (default: the policy's timeout).

        Raises:
            OutboundError: The matching subclass when the URL is refused.
        """
        parsed = self.precheck(str(url))
        if parsed.address is not None:
            return CheckedTarget(parsed, (parsed.address,))
        if parsed.host == "localhost" or parsed.host.endswith(".localhost"):
            # RFC 6761 §6.3: these names are the loopback interface, whatever DNS says.
            raise _address_error("loopback")
        addresses = await self._resolve(parsed, resolve_timeout)
        for address in addresses:
            self.policy.check_address(address, parsed.port)
        return CheckedTarget(parsed, addresses)

    async def _resolve(self, url: ParsedURL, seconds: float | None) -> tuple[IPAddress, ...]:
        try:
            async with asyncio.timeout(seconds if seconds is not None else self.policy.timeout):
                answer: Sequence[IPAddress] = await self._resolver.resolve(url.host, url.port)
        except TimeoutError:
            raise OutboundTimeoutError("Resolving the URL's host took too long") from None
        return tuple(answer)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to a checked address of its host, or refuse it.

        Raises:
            OutboundError: The URL is refused by the policy.
            httpx.TransportError: The connection or exchange failed.
        """
        timeouts = request.extensions.get("timeout", {})
        target = await self.admit(request.url, resolve_timeout=timeouts.get("connect"))
        url = target.url
        headers = [(b"Host", url.authority.encode("ascii"))]
        headers += [
            (name, value)
            for name, value in request.headers.raw
            if name.lower() not in STRIPPED_HEADERS and name.lower() != b"host"
        ]
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.scheme.encode("ascii"),
                host=url.host.encode("ascii"),
                port=url.port,
                target=request.url.raw_path,
            ),
            headers=headers,
            content=request.stream,
            extensions=request.extensions,
        )
        token = _PIN.set(_Pin(url.host, url.port, target.addresses))
        try:
            with _httpx_errors(request):
                response = await self._pool.handle_async_request(core_request)
        finally:
            _PIN.reset(token)
        stream = response.stream
        if not isinstance(stream, AsyncIterable):  # pragma: no cover -- httpcore async pool
            raise TypeError("httpcore returned a synchronous stream")
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(stream, request),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._pool.aclose()


def safe_transport(
    policy: OutboundPolicy,
    *,
    resolver: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
    max_connections: int = 20,
) -> SafeTransport:
    """An SSRF-safe transport for raw httpx.

    Use it as ``httpx.AsyncClient(transport=safe_transport(policy), trust_env=False)``:
    with ``trust_env=True`` httpx mounts its own transports for proxies named
    in ``HTTP_PROXY``/``HTTPS_PROXY``, which would bypass this one. Redirects
    followed by the client go through the transport and are checked too.
    """
    return SafeTransport(
        policy,
        resolver=resolver,
        ssl_context=ssl_context,
        network_backend=network_backend,
        max_connections=max_connections,
    )
