"""SafeClient end to end: real loopback servers, a stub resolver, and no other network."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ssl
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from barbacana.outbound import (
    BadResponseError,
    BadURLError,
    DisallowedAddressError,
    DisallowedSchemeError,
    OutboundConnectionError,
    OutboundPolicy,
    OutboundSettings,
    OutboundTimeoutError,
    ResponseTooLargeError,
    SafeClient,
    SystemResolver,
    TooManyRedirectsError,
    UnresolvableHostError,
    safe_transport,
)
from barbacana.outbound.testing import (
    CanaryServer,
    CannedResponse,
    FakeNetwork,
    LocalHTTPServer,
    StubResolver,
    http_response,
)

from .conftest import MakeClient

PUBLIC = "93.184.216.34"  # answered in memory by FakeNetwork, never contacted
CREDENTIAL_HEADERS = ("authorization", "cookie", "x-api-key", "proxy-authorization")


def allow(server: LocalHTTPServer, **extra: object) -> dict[str, object]:
    """Test-only policy settings that allow exactly this loopback server."""
    return {
        "allow_http": True,
        "test_only_allowed_cidrs": ["127.0.0.1/32"],
        "test_only_allowed_ports": [server.port],
        **extra,
    }


class TestHappyPath:
    """A small file is fetched from an allowed server."""

    async def test_fetch_small_file(self, make_client: MakeClient, resolver: StubResolver) -> None:
        """Body, status, media type and final URL come back; Host keeps the name."""
        routes = {
            "/report.txt": CannedResponse(
                body=b"quarterly numbers\n",
                headers=(("Content-Type", "text/plain; charset=utf-8"),),
            )
        }
        async with LocalHTTPServer(routes) as server:
            resolver.answer("files.test", ["127.0.0.1"])
            client = await make_client(**allow(server))
            result = await client.fetch(f"http://Files.Test:{server.port}/report.txt#top")
        assert result.status == 200
        assert result.content == b"quarterly numbers\n"
        assert result.content_type == "text/plain"
        assert result.url == f"http://files.test:{server.port}/report.txt"
        (request,) = server.requests
        assert request.header("host") == f"files.test:{server.port}"
        assert request.header("user-agent") == "barbacana-outbound"
        assert resolver.calls == ["files.test"]

    async def test_non_2xx_is_returned(self, make_client: MakeClient) -> None:
        """The caller sees the status; only policy refusals raise."""
        async with LocalHTTPServer() as server:
            client = await make_client(**allow(server))
            result = await client.fetch(f"http://127.0.0.1:{server.port}/missing")
        assert (result.status, result.content) == (404, b"not found")

    async def test_https_pins_address_and_keeps_name_for_sni(
        self, make_client: MakeClient, resolver: StubResolver, network: FakeNetwork
    ) -> None:
        """The socket goes to the checked address; Host and SNI carry the name."""
        network.serve(PUBLIC, 443, http_response(200, b"public data"))
        resolver.answer("public.test", [PUBLIC])
        client = await make_client()
        result = await client.fetch("https://public.test/doc")
        assert result.content == b"public data"
        assert network.attempts == [(PUBLIC, 443)]
        (request,) = network.requests
        assert (request.sni, request.header("host")) == ("public.test", "public.test")

    async def test_concurrent_fetches_keep_their_own_pins(
        self, make_client: MakeClient, resolver: StubResolver, network: FakeNetwork
    ) -> None:
        """Pins are per request: concurrent fetches of different hosts never cross."""
        hosts = {f"h{i}.test": f"93.184.216.{10 + i}" for i in range(4)}
        for name, address in hosts.items():
            resolver.answer(name, [address])
            network.serve(address, 443, http_response(200, name.encode()))
        client = await make_client()
        names = list(hosts) * 5
        results = await asyncio.gather(*(client.fetch(f"https://{n}/") for n in names))
        assert [r.content.decode() for r in results] == names

    async def test_check_without_fetching(
        self, make_client: MakeClient, resolver: StubResolver, network: FakeNetwork
    ) -> None:
        """check() returns the canonical URL and refuses bad ones, sending nothing."""
        resolver.answer("public.test", [PUBLIC])
        resolver.answer("inside.test", ["10.0.0.7"])
        client = await make_client()
        assert await client.check("HTTPS://Public.Test:443/a#b") == "https://public.test/a"
        with pytest.raises(DisallowedAddressError):
            await client.check("https://inside.test/")
        assert network.attempts == []


class TestTLS:
    """Over real TLS, the certificate is verified against the name, not the pinned address."""

    @pytest.fixture
    def pki(self, tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        """A throwaway CA and a server certificate for ``public.test`` only."""
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "outbound test CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "public.test")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName("public.test")]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
        client = ssl.create_default_context(
            cadata=ca.public_bytes(serialization.Encoding.PEM).decode()
        )
        return server, client

    async def test_certificate_checked_against_name(
        self,
        make_client: MakeClient,
        resolver: StubResolver,
        pki: tuple[ssl.SSLContext, ssl.SSLContext],
    ) -> None:
        """The name resolves to loopback (test allowance); SNI and verification use the name."""
        server_ctx, client_ctx = pki
        routes = {"/": CannedResponse(body=b"over tls")}
        async with LocalHTTPServer(routes, ssl_context=server_ctx) as server:
            resolver.answer("public.test", ["127.0.0.1"])
            resolver.answer("other.test", ["127.0.0.1"])
            client = await make_client(ssl_context=client_ctx, **allow(server))
            result = await client.fetch(f"https://public.test:{server.port}/")
            assert result.content == b"over tls"
            assert server.sni == ["public.test"]
            with pytest.raises(OutboundConnectionError):
                await client.fetch(f"https://other.test:{server.port}/")
        assert server.sni == ["public.test", "other.test"]
        assert len(server.requests) == 1


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


class TestSizeCap:
    """Bodies are capped after decoding; the cap refuses, it does not truncate."""

    async def test_declared_length_over_cap(self, make_client: MakeClient) -> None:
        """A Content-Length over the cap is refused before the body is read."""
        async with LocalHTTPServer({"/big": CannedResponse(body=b"x" * 200_000)}) as server:
            client = await make_client(**allow(server))
            with pytest.raises(ResponseTooLargeError):
                await client.fetch(f"http://127.0.0.1:{server.port}/big", max_bytes=1000)

    async def test_streamed_body_over_cap(self, make_client: MakeClient) -> None:
        """A body without Content-Length stops at the cap."""
        routes = {"/stream": CannedResponse(body=b"y" * 1_000_000, content_length=False)}
        async with LocalHTTPServer(routes) as server:
            client = await make_client(**allow(server))
            with pytest.raises(ResponseTooLargeError):
                await client.fetch(f"http://127.0.0.1:{server.port}/stream", max_bytes=65_536)

    async def test_exactly_the_cap(self, make_client: MakeClient) -> None:
        """A body of exactly the cap is accepted, whole."""
        routes = {"/edge": CannedResponse(body=b"z" * 5000, content_length=False)}
        async with LocalHTTPServer(routes) as server:
            client = await make_client(**allow(server), max_bytes=5000)
            result = await client.fetch(f"http://127.0.0.1:{server.port}/edge")
        assert result.content == b"z" * 5000

    async def test_gzip_bomb(self, make_client: MakeClient) -> None:
        """20 MB of zeros in ~20 kB of gzip stop at the cap, counted after inflating."""
        bomb = gzip.compress(bytes(20_000_000), compresslevel=9)
        assert len(bomb) < 100_000
        routes = {"/bomb": CannedResponse(body=bomb, headers=(("Content-Encoding", "gzip"),))}
        async with LocalHTTPServer(routes) as server:
            client = await make_client(**allow(server))
            with pytest.raises(ResponseTooLargeError):
                await client.fetch(f"http://127.0.0.1:{server.port}/bomb", max_bytes=1_000_000)
            assert server.requests[0].header("accept-encoding") == "identity"

    @pytest.mark.parametrize(
        ("encoding", "encode"),
        [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", _raw_deflate)],
        ids=["gzip", "zlib", "raw-deflate"],
    )
    async def test_compressed_within_cap(
        self, make_client: MakeClient, encoding: str, encode: Callable[[bytes], bytes]
    ) -> None:
        """A server that compresses anyway is decoded (gzip, zlib and raw deflate)."""
        body = b"hello " * 1000
        routes = {
            "/z": CannedResponse(body=encode(body), headers=(("Content-Encoding", encoding),))
        }
        async with LocalHTTPServer(routes) as server:
            client = await make_client(**allow(server))
            result = await client.fetch(f"http://127.0.0.1:{server.port}/z", max_bytes=6000)
        assert result.content == body

    async def test_unknown_encoding(self, make_client: MakeClient) -> None:
        """An encoding it cannot bound (br, zstd) is refused."""
        routes = {"/br": CannedResponse(body=b"\x0b\x02", headers=(("Content-Encoding", "br"),))}
        async with LocalHTTPServer(routes) as server:
            client = await make_client(**allow(server))
            with pytest.raises(BadResponseError):
                await client.fetch(f"http://127.0.0.1:{server.port}/br")


class TestTime:
    """The whole fetch has one deadline: resolution, redirects and body."""

    async def test_slow_server(self, make_client: MakeClient) -> None:
        """A server that does not answer in time is abandoned."""
        async with LocalHTTPServer({"/slow": CannedResponse(body=b"late", delay=10)}) as server:
            client = await make_client(**allow(server), timeout=0.3)
            with pytest.raises(OutboundTimeoutError):
                await client.fetch(f"http://127.0.0.1:{server.port}/slow")

    async def test_slow_resolver(self, network: FakeNetwork) -> None:
        """A resolver that hangs is abandoned too."""
        policy = OutboundPolicy.from_settings(OutboundSettings(timeout=0.3), profile="development")
        resolver = StubResolver({"slow.test": [PUBLIC]}, delay=10)
        async with SafeClient(policy, resolver=resolver, network_backend=network) as client:
            with pytest.raises(OutboundTimeoutError):
                await client.fetch("https://slow.test/")
        assert network.attempts == []


class TestRedirects:
    """Redirects are followed by hand, each one a new checked request, up to a limit."""

    @staticmethod
    def chain(length: int, status: int = 302) -> dict[str, CannedResponse]:
        routes = {
            f"/r{i}": CannedResponse(status, headers=(("Location", f"/r{i + 1}"),))
            for i in range(length)
        }
        routes[f"/r{length}"] = CannedResponse(body=b"arrived")
        return routes

    @pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
    async def test_within_limit(self, make_client: MakeClient, status: int) -> None:
        """Exactly max_redirects redirects are followed, always with GET."""
        async with LocalHTTPServer(self.chain(3, status)) as server:
            client = await make_client(**allow(server), max_redirects=3)
            result = await client.fetch(f"http://127.0.0.1:{server.port}/r0")
        assert result.content == b"arrived"
        assert result.url.endswith("/r3")
        assert [r.method for r in server.requests] == ["GET"] * 4

    async def test_over_limit(self, make_client: MakeClient) -> None:
        """One more is refused, after max_redirects + 1 requests."""
        async with LocalHTTPServer(self.chain(10)) as server:
            client = await make_client(**allow(server), max_redirects=3)
            with pytest.raises(TooManyRedirectsError):
                await client.fetch(f"http://127.0.0.1:{server.port}/r0")
        assert len(server.requests) == 4

    async def test_downgrade_to_http_refused(
        self, make_client: MakeClient, resolver: StubResolver, network: FakeNetwork
    ) -> None:
        """An https URL may not redirect to http when http is not allowed."""
        resolver.answer("public.test", [PUBLIC])
        network.serve(
            PUBLIC, 443, http_response(302, headers=[("Location", "http://public.test/")])
        )
        client = await make_client()
        with pytest.raises(DisallowedSchemeError):
            await client.fetch("https://public.test/")
        assert network.attempts == [(PUBLIC, 443)]


class TestCredentials:
    """The caller's credentials never leave, not even on redirects."""

    async def test_cookie_from_redirect_not_sent_back(self, make_client: MakeClient) -> None:
        """A cookie set by a redirecting server is not replayed: there is no cookie jar."""
        routes = {
            "/start": CannedResponse(
                302, headers=(("Set-Cookie", "sid=secret; Path=/"), ("Location", "/final"))
            ),
            "/final": CannedResponse(body=b"done"),
        }
        async with LocalHTTPServer(routes) as server:
            client = await make_client(**allow(server))
            await client.fetch(f"http://127.0.0.1:{server.port}/start")
        assert [r.path for r in server.requests] == ["/start", "/final"]
        for request in server.requests:
            assert all(request.header(h) is None for h in CREDENTIAL_HEADERS)

    async def test_userinfo_refused(self, make_client: MakeClient) -> None:
        """user:password@ in the URL is refused, not turned into Basic auth."""
        async with LocalHTTPServer({"/": CannedResponse(body=b"x")}) as server:
            client = await make_client(**allow(server))
            with pytest.raises(BadURLError):
                await client.fetch(f"http://admin:hunter2@127.0.0.1:{server.port}/")
        assert server.connections == 0

    async def test_raw_transport_strips_credentials(self, network: FakeNetwork) -> None:
        """Through raw httpx, auth headers and Basic auth set by the caller are removed."""
        async with LocalHTTPServer({"/": CannedResponse(body=b"x")}) as server:
            policy = OutboundPolicy.from_settings(
                OutboundSettings(**allow(server)), profile="development"
            )
            transport = safe_transport(policy, resolver=StubResolver(), network_backend=network)
            async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
                response = await client.get(
                    f"http://127.0.0.1:{server.port}/",
                    headers={
                        "Authorization": "Bearer tok",
                        "X-API-Key": "k",
                        "Cookie": "sid=1",
                        "Proxy-Authorization": "Basic eA==",
                    },
                )
                await client.get(f"http://127.0.0.1:{server.port}/", auth=("user", "pw"))
        assert response.status_code == 200
        for request in server.requests:
            assert all(request.header(h) is None for h in CREDENTIAL_HEADERS)

    async def test_proxy_environment_ignored(
        self, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """HTTP(S)_PROXY cannot route a fetch around the guard."""
        async with (
            CanaryServer() as proxy,
            LocalHTTPServer({"/": CannedResponse(body=b"ok")}) as server,
        ):
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
                monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
            client = await make_client(**allow(server))
            result = await client.fetch(f"http://127.0.0.1:{server.port}/")
        assert result.content == b"ok"
        assert proxy.hits == 0


class TestFailures:
    """Network failures become Barbacana errors with stable codes."""

    async def test_unresolvable(self, make_client: MakeClient, network: FakeNetwork) -> None:
        """A name with no address is a 422, and nothing is sent."""
        client = await make_client()
        with pytest.raises(UnresolvableHostError):
            await client.fetch("https://nowhere.test/")
        assert network.attempts == []

    async def test_connection_refused(self, make_client: MakeClient) -> None:
        """A closed port is an OutboundConnectionError."""
        async with LocalHTTPServer() as server:
            port = server.port
        client = await make_client(
            allow_http=True,
            test_only_allowed_cidrs=["127.0.0.1/32"],
            test_only_allowed_ports=[port],
        )
        with pytest.raises(OutboundConnectionError):
            await client.fetch(f"http://127.0.0.1:{port}/")

    async def test_not_http(
        self, make_client: MakeClient, resolver: StubResolver, network: FakeNetwork
    ) -> None:
        """Garbage instead of HTTP is a BadResponseError."""
        resolver.answer("public.test", [PUBLIC])
        network.serve(PUBLIC, 443, b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        client = await make_client()
        with pytest.raises(BadResponseError):
            await client.fetch("https://public.test/")


class TestSystemResolver:
    """The default resolver runs getaddrinfo off the loop (no DNS query in these tests)."""

    async def test_numeric_and_hosts_file(self) -> None:
        """Literal addresses and /etc/hosts names resolve without a DNS server."""
        assert [str(a) for a in await SystemResolver().resolve("127.0.0.1", 80)] == ["127.0.0.1"]
        addresses = await SystemResolver().resolve("localhost", 80)
        assert addresses
        assert all(a.is_loopback for a in addresses)
