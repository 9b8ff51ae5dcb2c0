"""Test helpers for code that fetches user-supplied URLs, without the network.

- :class:`StubResolver` answers name lookups from a table (and can change its
  answer between calls, to play a DNS rebinding attack).
- :class:`FakeNetwork` is an httpcore network backend for
  :class:`~barbacana.outbound.SafeClient`: it serves in-memory "public" hosts,
  passes loopback through to real sockets, and raises
  :class:`UnexpectedConnectionError` (failing the test) for anything else, so
  that a broken guard can never put a packet on a real network.
- :class:`CanaryServer` is a loopback server that counts connections: a test
  asserts it got none.
- :class:`LocalHTTPServer` is a small loopback HTTP server with canned
  responses that records what it received.

Every server listens on a loopback address only.
"""

from __future__ import annotations

import abc
import asyncio
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from types import TracebackType

import httpcore

from ._addresses import IPAddress
from .errors import UnresolvableHostError

__all__ = [
    "CanaryServer",
    "CannedResponse",
    "FakeNetwork",
    "LocalHTTPServer",
    "RecordedRequest",
    "StubResolver",
    "UnexpectedConnectionError",
    "http_response",
]


class UnexpectedConnectionError(AssertionError):
    """A connection to an address the test did not provide was attempted."""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One HTTP request as a test server received it."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    address: str = ""
    port: int = 0
    sni: str | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    @property
    def path(self) -> str:
        """The target without its query."""
        return self.target.partition("?")[0]


def http_response(
    status: int = 200,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    content_length: bool = True,
) -> bytes:
    """The bytes of an HTTP/1.1 response that closes the connection."""
    return _head(status, headers, len(body) if content_length else None) + body


def _head(status: int, headers: Iterable[tuple[str, str]], length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} Test", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_request(data: bytes, address: str, port: int, sni: str | None) -> RecordedRequest:
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1")
    request_line, *header_lines = head.split("\r\n")
    method, target, _version = [*request_line.split(" "), "", "", ""][:3]
    headers = tuple(
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in header_lines)
    )
    return RecordedRequest(method, target, headers, address, port, sni)


class StubResolver:
    """A resolver answering from a table, recording every question.

    Args:
        answers: Host name to the addresses it resolves to.
        delay: Seconds each answer takes (to test time limits).
    """

    def __init__(self, answers: Mapping[str, Sequence[str]] | None = None, *, delay: float = 0):
        self.calls: list[str] = []
        self.delay = delay
        self._answers: dict[str, list[list[str]]] = {
            host: [list(addresses)] for host, addresses in (answers or {}).items()
        }

    def answer(self, host: str, *answers: Sequence[str]) -> None:
        """Answer ``host`` with each of ``answers`` in turn; the last one then repeats."""
        self._answers[host] = [list(a) for a in answers]

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        """The next answer for ``host``.

        Raises:
            UnresolvableHostError: ``host`` is not in the table.
        """
        self.calls.append(host)
        if self.delay:
            await asyncio.sleep(self.delay)
        queue = self._answers.get(host)
        if not queue:
            raise UnresolvableHostError("The URL's host name does not resolve")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return [ip_address(a) for a in answer]


Responder = Callable[[RecordedRequest], bytes]


class _MemoryStream(httpcore.AsyncNetworkStream):
    def __init__(self, network: FakeNetwork, address: str, port: int, responder: Responder):
        self._network = network
        self._address = address
        self._port = port
        self._responder = responder
        self._received = b""
        self._pending: bytes | None = None
        self._sni: str | None = None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self._received += buffer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        if self._pending is None:
            request = _parse_request(self._received, self._address, self._port, self._sni)
            self._network.requests.append(request)
            self._pending = self._responder(request)
        chunk, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return chunk

    async def aclose(self) -> None:
        return None

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        # No real TLS in memory; record the name the client would send as SNI.
        self._sni = server_hostname
        return self

    def get_extra_info(self, info: str) -> object:
        return None


class FakeNetwork(httpcore.AsyncNetworkBackend):
    """A network where only the hosts a test declares exist.

    Args:
        allow_loopback: Pass connections to ``127.0.0.0/8`` and ``::1`` to real
            sockets (for :class:`LocalHTTPServer` and :class:`CanaryServer`).

    Attributes:
        attempts: Every ``(address, port)`` a connection was attempted to.
        requests: Every request the in-memory hosts received.
    """

    def __init__(self, *, allow_loopback: bool = True) -> None:
        self.allow_loopback = allow_loopback
        self.attempts: list[tuple[str, int]] = []
        self.requests: list[RecordedRequest] = []
        self._hosts: dict[tuple[IPAddress, int], Responder] = {}
        self._real = httpcore.AnyIOBackend()

    def serve(self, address: str, port: int, responder: Responder | bytes) -> None:
        """Answer connections to ``address:port`` in memory with ``responder``."""
        if isinstance(responder, bytes):
            canned = responder

            def responder(_request: RecordedRequest) -> bytes:
                return canned

        self._hosts[(ip_address(address), port)] = responder

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append((host, port))
        address = ip_address(host)
        responder = self._hosts.get((address, port))
        if responder is not None:
            return _MemoryStream(self, host, port, responder)
        if self.allow_loopback and address.is_loopback:
            return await self._real.connect_tcp(host, port, timeout=timeout)
        raise UnexpectedConnectionError(f"a connection to {host} port {port} was attempted")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnexpectedConnectionError(f"a connection to the Unix socket {path} was attempted")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _LoopbackServer(abc.ABC):
    """Common start/stop of the loopback test servers."""

    def __init__(self, host: str = "127.0.0.1", *, ssl_context: ssl.SSLContext | None = None):
        if not ip_address(host).is_loopback:
            raise ValueError("test servers listen on loopback addresses only")
        self.host = host
        self.port = 0
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> _LoopbackServer:
        self._server = await asyncio.start_server(self._accept, self.host, 0, ssl=self._ssl)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def authority(self) -> str:
        """``host:port`` of the server, bracketed for IPv6."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self.handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    @abc.abstractmethod
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one connection (each test server says how)."""


class CanaryServer(_LoopbackServer):
    """A loopback server that counts the connections it accepts (``hits``).

    It answers ``200 canary``, so a client that reached it also gets a
    visibly wrong result.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.hits = 0

    async def __aenter__(self) -> CanaryServer:
        await super().__aenter__()
        return self

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hits += 1
        writer.write(http_response(200, b"canary"))
        await writer.drain()


@dataclass(frozen=True, slots=True)
class CannedResponse:
    """What :class:`LocalHTTPServer` answers on one path.

    Attributes:
        status: Status code.
        body: Body bytes.
        headers: Extra headers.
        delay: Seconds to wait before answering.
        content_length: Send ``Content-Length``; without it the body ends at close.
        chunk_size: The body is written in pieces of this size.
    """

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    content_length: bool = True
    chunk_size: int = 16384


class LocalHTTPServer(_LoopbackServer):
    """A loopback HTTP/1.1 server answering canned responses by path.

    Args:
        routes: Path to response; other paths get 404.
        host: The loopback address to listen on.
        ssl_context: Serve HTTPS with this server context.

    Attributes:
        requests: Every request received, in order.
        connections: Number of connections accepted.
    """

    def __init__(
        self,
        routes: Mapping[str, CannedResponse] | None = None,
        host: str = "127.0.0.1",
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(host, ssl_context=ssl_context)
        self.routes: dict[str, CannedResponse] = dict(routes or {})
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self.sni: list[str | None] = []
        if ssl_context is not None:
            ssl_context.sni_callback = self._record_sni

    async def __aenter__(self) -> LocalHTTPServer:
        await super().__aenter__()
        return self

    def _record_sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.sni.append(name)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        request = _parse_request(head, self.host, self.port, None)
        self.requests.append(request)
        canned = self.routes.get(request.path, CannedResponse(404, b"not found"))
        if canned.delay:
            await asyncio.sleep(canned.delay)
        length = len(canned.body) if canned.content_length else None
        writer.write(_head(canned.status, canned.headers, length))
        for offset in range(0, len(canned.body), canned.chunk_size):
            writer.write(canned.body[offset : offset + canned.chunk_size])
            await writer.drain()
        await writer.drain()
