"""SSRF attacks on the outbound client (OWASP A10:2021, invariant 11).

Canary servers listen on 127.0.0.1 and ::1 and count every connection; each
attack must leave them at zero. The client's network backend is a
FakeNetwork: loopback connections really happen (so a broken guard would hit
a canary), and any other address fails the test instead of connecting, so no
packet can leave this machine even when the guard is broken. Names resolve
through a stub resolver only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from barbacana.outbound import (
    DisallowedAddressError,
    DisallowedSchemeError,
    OutboundError,
    OutboundPolicy,
    OutboundSettings,
    SafeClient,
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

PUBLIC = "93.184.216.34"  # served in memory by FakeNetwork; never contacted

Make = Callable[..., Awaitable[SafeClient]]


@pytest.fixture
async def canary() -> AsyncIterator[CanaryServer]:
    async with CanaryServer("127.0.0.1") as server:
        yield server


@pytest.fixture
async def canary6() -> AsyncIterator[CanaryServer]:
    async with CanaryServer("::1") as server:
        yield server


@pytest.fixture
def network() -> FakeNetwork:
    return FakeNetwork()


@pytest.fixture
def resolver() -> StubResolver:
    return StubResolver()


@pytest.fixture
async def make(
    network: FakeNetwork, resolver: StubResolver, canary: CanaryServer, canary6: CanaryServer
) -> AsyncIterator[Make]:
    """Clients whose only obstacle to the canaries is the address check."""
    clients: list[SafeClient] = []

    async def build(**settings: Any) -> SafeClient:
        settings.setdefault("allow_http", True)
        settings.setdefault("allowed_ports", [80, 443, canary.port, canary6.port])
        client = SafeClient(
            OutboundPolicy.from_settings(OutboundSettings(**settings), profile="development"),
            resolver=resolver,
            network_backend=network,
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()
    assert canary.hits == 0, "a request reached the IPv4 loopback canary"
    assert canary6.hits == 0, "a request reached the IPv6 loopback canary"


LOOPBACK_SPELLINGS = [
    "http://127.0.0.1:{p}/",
    "http://127.0.0.2:{p}/",
    "http://2130706433:{p}/",
    "http://0x7f000001:{p}/",
    "http://0X7F000001:{p}/",
    "http://0177.0.0.1:{p}/",
    "http://0177.0000.0000.0001:{p}/",
    "http://017700000001:{p}/",
    "http://127.1:{p}/",
    "http://127.0.1:{p}/",
    "http://0x7f.1:{p}/",
    "http://0x7f.0.0.1:{p}/",
    "http://0x7F.0x0.0x0.0x1:{p}/",
    "http://127.000.000.001:{p}/",
    "http://127.0.0.1.:{p}/",
    "http://%31%32%37.%30.%30.%31:{p}/",
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{p}/",
    "http://127\u30020\u30020\u30021:{p}/",
    "http://0:{p}/",
    "http://0.0.0.0:{p}/",
    "http://0x0:{p}/",
    "HTTP://127.0.0.1:{p}/",
    "  http://127.0.0.1:{p}/  ",
    "http://127.0.\t0.1:{p}/",
    "http://good.com@127.0.0.1:{p}/",
    "http://good.com:pass@127.0.0.1:{p}/",
    "http://127.0.0.1:{p}#@good.com/",
    "http://127.0.0.1:{p}?@good.com/",
    "http://127.0.0.1:{p}\\@good.com/",
    "http:\\\\127.0.0.1:{p}\\",
    "http:/127.0.0.1:{p}/",
    "http:127.0.0.1:{p}/",
    "http:///127.0.0.1:{p}/",
    "http://[::ffff:127.0.0.1]:{p}/",
    "http://[::ffff:7f00:1]:{p}/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]:{p}/",
    "http://[::127.0.0.1]:{p}/",
    "http://[64:ff9b::7f00:1]:{p}/",
    "http://[2002:7f00:1::]:{p}/",
]

LOOPBACK6_SPELLINGS = [
    "http://[::1]:{p}/",
    "http://[0:0:0:0:0:0:0:1]:{p}/",
    "http://[::0001]:{p}/",
    "http://[::1%25lo]:{p}/",
    "http://[::1%lo]:{p}/",
    "http://[::]:{p}/",
    "http://good.com@[::1]:{p}/",
]


class TestSpellings:
    """Every spelling of a loopback address is refused; the canaries get nothing."""

    @pytest.mark.parametrize("template", LOOPBACK_SPELLINGS)
    async def test_ipv4_loopback(
        self, make: Make, canary: CanaryServer, network: FakeNetwork, template: str
    ) -> None:
        """Decimal, hex, octal, short, mixed, encoded, userinfo and backslash forms."""
        client = await make()
        with pytest.raises(DisallowedAddressError) as info:
            await client.fetch(template.format(p=canary.port))
        assert info.value.extra["category"] in {"loopback", "unspecified", "this-network"}
        assert network.attempts == []

    @pytest.mark.parametrize("template", LOOPBACK6_SPELLINGS)
    async def test_ipv6_loopback(
        self, make: Make, canary6: CanaryServer, network: FakeNetwork, template: str
    ) -> None:
        """Bracketed, expanded, zone-id and unspecified IPv6 forms."""
        client = await make()
        with pytest.raises(DisallowedAddressError):
            await client.fetch(template.format(p=canary6.port))
        assert network.attempts == []

    @pytest.mark.parametrize(
        "url",
        [
            "http://localhost:{p}/",
            "http://LOCALHOST:{p}/",
            "http://localhost.:{p}/",
            "http://api.localhost:{p}/",
            "http://%6c%6f%63%61%6c%68%6f%73%74:{p}/",
        ],
    )
    async def test_localhost_names(
        self, make: Make, canary: CanaryServer, resolver: StubResolver, url: str
    ) -> None:
        """RFC 6761 localhost names are loopback without even asking DNS."""
        client = await make()
        with pytest.raises(DisallowedAddressError):
            await client.fetch(url.format(p=canary.port))
        assert resolver.calls == []

    @pytest.mark.parametrize(
        ("url", "category"),
        [
            ("http://169.254.169.254/latest/meta-data/iam/", "metadata"),
            ("http://0xa9fea9fe/latest/", "metadata"),
            ("http://2852039166/latest/", "metadata"),
            ("http://0251.0376.0251.0376/", "metadata"),
            ("http://169.254.43518/", "metadata"),
            ("http://[::ffff:169.254.169.254]/", "metadata"),
            ("http://[::ffff:a9fe:a9fe]/", "metadata"),
            ("http://[64:ff9b::a9fe:a9fe]/", "metadata"),
            ("http://[2002:a9fe:a9fe::1]/", "metadata"),
            ("http://[fd00:ec2::254]/latest/", "metadata"),
            ("http://169.254.170.2/v2/credentials", "metadata"),
            ("http://100.100.100.200/latest/", "metadata"),
            ("http://10.1/", "private"),
            ("http://192.168.1/", "private"),
            ("http://172.16.0.1/", "private"),
            ("http://[fd12::1]/", "private"),
            ("http://[fe80::1%25eth0]/", "link-local"),
            ("http://100.64.0.1/", "shared"),
            ("http://198.18.0.1/", "benchmarking"),
            ("http://192.0.2.1/", "documentation"),
            ("http://224.0.0.1/", "multicast"),
            ("http://255.255.255.255/", "broadcast"),
            ("http://240.0.0.1/", "reserved"),
        ],
    )
    async def test_internal_literals(
        self, make: Make, network: FakeNetwork, url: str, category: str
    ) -> None:
        """Metadata and private literals, in any spelling, never get a connection."""
        client = await make()
        with pytest.raises(DisallowedAddressError) as info:
            await client.fetch(url)
        assert info.value.extra == {"category": category}
        assert network.attempts == []

    @pytest.mark.parametrize(
        "url",
        [
            "gopher://127.0.0.1:{p}/_SET%20x%201",
            "dict://127.0.0.1:{p}/info",
            "file:///etc/passwd",
            "ftp://127.0.0.1:{p}/",
            "ws://127.0.0.1:{p}/",
        ],
    )
    async def test_other_schemes(self, make: Make, canary: CanaryServer, url: str) -> None:
        """Protocol smuggling through other schemes is refused outright."""
        client = await make()
        with pytest.raises(DisallowedSchemeError):
            await client.fetch(url.format(p=canary.port))


class TestDNS:
    """Names are judged by every address they resolve to."""

    @pytest.mark.parametrize(
        "answer",
        [
            ["127.0.0.1"],
            ["::1"],
            ["10.0.0.5"],
            ["192.168.1.10"],
            ["172.16.0.1"],
            ["100.64.1.1"],
            ["169.254.169.254"],
            ["169.254.170.2"],
            ["fd00:ec2::254"],
            ["fe80::1"],
            ["::ffff:10.0.0.1"],
            ["64:ff9b::a9fe:a9fe"],
            ["2002:c0a8:101::1"],
            ["0.0.0.0"],
            ["224.0.0.1"],
            [PUBLIC, "10.0.0.5"],
            [PUBLIC, "127.0.0.1"],
        ],
    )
    async def test_name_resolving_inside(
        self,
        make: Make,
        canary: CanaryServer,
        resolver: StubResolver,
        network: FakeNetwork,
        answer: list[str],
    ) -> None:
        """One non-public answer refuses the host; nothing is connected."""
        resolver.answer("attacker.test", answer)
        client = await make()
        with pytest.raises(DisallowedAddressError):
            await client.fetch(f"http://attacker.test:{canary.port}/")
        assert network.attempts == []

    async def test_allowed_host_resolving_inside(
        self, make: Make, resolver: StubResolver, network: FakeNetwork
    ) -> None:
        """Being on the host allow-list does not excuse a metadata address."""
        resolver.answer("files.partner.test", ["169.254.169.254"])
        client = await make(allowed_hosts=["files.partner.test"])
        with pytest.raises(DisallowedAddressError):
            await client.fetch("https://files.partner.test/doc")
        assert network.attempts == []

    async def test_rebinding(
        self, make: Make, canary: CanaryServer, resolver: StubResolver, network: FakeNetwork
    ) -> None:
        """Public first, loopback after: one lookup, and the socket goes to the checked answer."""
        resolver.answer("rebind.test", [PUBLIC], ["127.0.0.1"])
        network.serve(PUBLIC, canary.port, http_response(200, b"public content"))
        client = await make()
        result = await client.fetch(f"http://rebind.test:{canary.port}/")
        assert result.content == b"public content"
        assert resolver.calls == ["rebind.test"]
        assert network.attempts == [(PUBLIC, canary.port)]

    async def test_rebinding_on_redirect(
        self, make: Make, canary: CanaryServer, resolver: StubResolver, network: FakeNetwork
    ) -> None:
        """A redirect to the same name is resolved and checked again, and refused."""
        resolver.answer("rebind.test", [PUBLIC], ["127.0.0.1"])
        network.serve(PUBLIC, canary.port, http_response(302, headers=[("Location", "/again")]))
        client = await make()
        with pytest.raises(DisallowedAddressError):
            await client.fetch(f"http://rebind.test:{canary.port}/")
        assert resolver.calls == ["rebind.test", "rebind.test"]
        assert network.attempts == [(PUBLIC, canary.port)]


class TestRedirects:
    """An allowed server redirecting inside is stopped at the redirect."""

    @pytest.mark.parametrize(
        "location",
        [
            "http://127.0.0.1:{p}/",
            "http://0x7f.1:{p}/",
            "//2130706433:{p}/",
            "/\\127.0.0.1:{p}/",
            "\\\\127.0.0.1:{p}\\",
            "http://good.com@127.0.0.1:{p}/",
            "http://[::ffff:127.0.0.1]:{p}/",
            "http://localhost:{p}/",
            "http://canary.test:{p}/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/latest/meta-data/",
        ],
    )
    async def test_redirect_inside(
        self,
        make: Make,
        canary: CanaryServer,
        resolver: StubResolver,
        network: FakeNetwork,
        location: str,
    ) -> None:
        """The first hop is allowed (test-only allowance for its port); the second is not."""
        resolver.answer("canary.test", ["127.0.0.1"])
        target = location.format(p=canary.port)
        routes = {"/start": CannedResponse(302, headers=(("Location", target),))}
        async with LocalHTTPServer(routes) as server:
            client = await make(
                test_only_allowed_cidrs=["127.0.0.1/32"], test_only_allowed_ports=[server.port]
            )
            with pytest.raises(DisallowedAddressError):
                await client.fetch(f"http://127.0.0.1:{server.port}/start")
        assert [r.path for r in server.requests] == ["/start"]
        assert network.attempts == [("127.0.0.1", server.port)]

    async def test_public_host_redirects_to_metadata(
        self, make: Make, resolver: StubResolver, network: FakeNetwork
    ) -> None:
        """The classic: an attacker's public server answers 302 to the metadata service."""
        resolver.answer("attacker.test", [PUBLIC])
        network.serve(
            PUBLIC,
            443,
            http_response(301, headers=[("Location", "http://[::ffff:a9fe:a9fe]/latest/")]),
        )
        client = await make()
        with pytest.raises(DisallowedAddressError) as info:
            await client.fetch("https://attacker.test/image.png")
        assert info.value.extra == {"category": "metadata"}
        assert network.attempts == [(PUBLIC, 443)]

    async def test_raw_httpx_following_redirects(
        self, canary: CanaryServer, network: FakeNetwork
    ) -> None:
        """With raw httpx and follow_redirects, the transport still checks each hop."""
        routes = {
            "/start": CannedResponse(302, headers=(("Location", f"http://127.1:{canary.port}/"),))
        }
        async with LocalHTTPServer(routes) as server:
            policy = OutboundPolicy.from_settings(
                OutboundSettings(
                    allow_http=True,
                    allowed_ports=[80, 443, canary.port],
                    test_only_allowed_cidrs=["127.0.0.1/32"],
                    test_only_allowed_ports=[server.port],
                ),
                profile="development",
            )
            transport = safe_transport(policy, resolver=StubResolver(), network_backend=network)
            async with httpx.AsyncClient(
                transport=transport, trust_env=False, follow_redirects=True
            ) as client:
                with pytest.raises(DisallowedAddressError):
                    await client.get(f"http://127.0.0.1:{server.port}/start")
        assert canary.hits == 0


class TestTestAllowance:
    """The test-only allowance opens exactly one address and port, nothing more."""

    async def test_other_port_still_refused(
        self, make: Make, canary: CanaryServer, network: FakeNetwork
    ) -> None:
        """Allowing 127.0.0.1 on one port does not open the canary's port."""
        client = await make(
            test_only_allowed_cidrs=["127.0.0.1/32"], test_only_allowed_ports=[canary.port + 1]
        )
        with pytest.raises(OutboundError):
            await client.fetch(f"http://127.0.0.1:{canary.port}/")
        assert network.attempts == []
