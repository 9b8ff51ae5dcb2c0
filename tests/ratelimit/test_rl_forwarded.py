"""Client address resolution: the socket peer, unless a trusted proxy forwarded it."""

from __future__ import annotations

from typing import Any

import pytest

from barbacana.errors import ConfigurationError
from barbacana.web._forwarded import client_address, parse_trusted_proxies

PROXIES = parse_trusted_proxies(["10.0.0.0/8", "2001:db8:ffff::/48"])


def scope(peer: str | None, *forwarded: str) -> dict[str, Any]:
    return {
        "type": "http",
        "client": (peer, 5000) if peer else None,
        "headers": [(b"x-forwarded-for", v.encode()) for v in forwarded],
    }


class TestUntrustedPeer:
    def test_peer_is_the_client(self) -> None:
        """Without proxies, the socket peer is the client."""
        assert client_address(scope("203.0.113.7"), ()) == "203.0.113.7"

    @pytest.mark.parametrize(
        "spoof", ["1.2.3.4", "10.0.0.1", "1.2.3.4, 10.0.0.2", "garbage", "203.0.113.9"]
    )
    def test_spoofed_header_changes_nothing(self, spoof: str) -> None:
        """A peer that is not a trusted proxy cannot name another client."""
        assert client_address(scope("203.0.113.7", spoof), PROXIES) == "203.0.113.7"

    def test_ipv4_mapped_peer_is_reported_as_ipv4(self) -> None:
        """A dual-stack socket's ::ffff:a.b.c.d is the IPv4 client."""
        assert client_address(scope("::ffff:203.0.113.7"), ()) == "203.0.113.7"

    def test_no_peer(self) -> None:
        """A server that does not know the peer yields 'unknown', not an error."""
        assert client_address(scope(None), PROXIES) == "unknown"


class TestTrustedProxy:
    def test_forwarded_address_is_honoured(self) -> None:
        """Through a trusted proxy, the address it appended is the client."""
        assert client_address(scope("10.1.1.1", "198.51.100.4"), PROXIES) == "198.51.100.4"

    def test_walks_from_the_right_skipping_trusted_hops(self) -> None:
        """Entries left of the first untrusted hop were written by the client: ignored."""
        s = scope("10.1.1.1", "6.6.6.6, 198.51.100.4, 10.2.2.2")
        assert client_address(s, PROXIES) == "198.51.100.4"

    def test_repeated_header_fields_join_in_order(self) -> None:
        """Two X-Forwarded-For fields are one list (RFC 9110 §5.3)."""
        s = scope("10.1.1.1", "6.6.6.6", "198.51.100.4, 10.2.2.2")
        assert client_address(s, PROXIES) == "198.51.100.4"

    def test_ports_and_brackets(self) -> None:
        """Entries with ports, and bracketed IPv6, are understood."""
        assert client_address(scope("10.1.1.1", "198.51.100.4:5555"), PROXIES) == "198.51.100.4"
        assert client_address(scope("10.1.1.1", "[2001:db8::1]:443"), PROXIES) == "2001:db8::1"

    def test_all_hops_trusted(self) -> None:
        """An internal caller behind proxies only: the leftmost hop."""
        assert client_address(scope("10.1.1.1", "10.3.3.3, 10.2.2.2"), PROXIES) == "10.3.3.3"

    def test_garbage_at_the_boundary_falls_back_to_the_last_trusted_hop(self) -> None:
        """An unparsable entry never becomes an identity the client could vary."""
        assert client_address(scope("10.1.1.1", "1.1.1.1, nonsense"), PROXIES) == "10.1.1.1"

    def test_no_header(self) -> None:
        """A trusted proxy that forwarded nothing is itself the client."""
        assert client_address(scope("10.1.1.1"), PROXIES) == "10.1.1.1"

    def test_ipv6_proxy(self) -> None:
        """IPv6 proxies are matched by CIDR too."""
        s = scope("2001:db8:ffff::1", "2001:db8:1::5")
        assert client_address(s, PROXIES) == "2001:db8:1::5"


class TestParse:
    def test_addresses_and_blocks(self) -> None:
        """Bare addresses are single-host networks."""
        nets = parse_trusted_proxies(["127.0.0.1", "10.0.0.0/8", "::1"])
        assert [str(n) for n in nets] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]

    @pytest.mark.parametrize("bad", ["10.0.0.1/8", "not-an-ip", "10.0.0.0/33", ""])
    def test_bad_cidr_is_a_configuration_error(self, bad: str) -> None:
        """A typo in the trusted proxies stops start-up with a clear message."""
        with pytest.raises(ConfigurationError, match="trusted proxy"):
            parse_trusted_proxies([bad])
