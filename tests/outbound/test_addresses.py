"""Address categories: every non-public block is refused, and so are its IPv6 disguises."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from barbacana.outbound import METADATA_ADDRESSES, address_category


class TestIPv4:
    """IPv4 special-purpose blocks (IANA registry) are refused with their category."""

    @pytest.mark.parametrize(
        ("address", "category"),
        [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared"),
            ("100.127.255.255", "shared"),
            ("169.254.1.1", "link-local"),
            ("169.254.169.254", "metadata"),
            ("169.254.170.2", "metadata"),
            ("100.100.100.200", "metadata"),
            ("168.63.129.16", "metadata"),
            ("192.0.0.192", "metadata"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "this-network"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("192.0.0.8", "reserved"),
            ("192.88.99.1", "reserved"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.1", "documentation"),
            ("203.0.113.1", "documentation"),
        ],
    )
    def test_refused(self, address: str, category: str) -> None:
        """The category names the kind of address."""
        assert address_category(ip_address(address)) == category

    @pytest.mark.parametrize(
        "address",
        [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "169.253.255.255",
            "223.255.255.255",
        ],
    )
    def test_public(self, address: str) -> None:
        """Public addresses (including the edges of blocks) are allowed."""
        assert address_category(ip_address(address)) is None


class TestIPv6:
    """IPv6 special blocks, and every form that embeds an IPv4 address."""

    @pytest.mark.parametrize(
        ("address", "category"),
        [
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fe80::1%eth0", "link-local"),
            ("fc00::1", "private"),
            ("fd12:3456::1", "private"),
            ("fec0::1", "private"),
            ("fd00:ec2::254", "metadata"),
            ("fd00:ec2::23", "metadata"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("2001:2::1", "benchmarking"),
            ("100::1", "reserved"),
            ("64:ff9b:1::1", "nat64-local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "metadata"),
            ("::ffff:0:127.0.0.1", "loopback"),
            ("::127.0.0.1", "loopback"),
            ("::8.8.8.8", "reserved"),
            ("64:ff9b::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "metadata"),
            ("64:ff9b::192.168.0.1", "private"),
            ("2002:7f00:1::", "loopback"),
            ("2002:c0a8:101::1", "private"),
            ("2002:a9fe:a9fe::", "metadata"),
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "teredo"),  # client 8.8.8.8
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "documentation"),  # client 192.0.2.45
            # Teredo with the client's obfuscated address 127.0.0.1 (XOR 0xffffffff).
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),
            ("5f00::1", "reserved"),
            ("4000::1", "reserved"),
        ],
    )
    def test_refused(self, address: str, category: str) -> None:
        """The embedded IPv4 address decides, since that is where the packet goes."""
        assert address_category(ip_address(address)) == category

    @pytest.mark.parametrize(
        "address",
        [
            "2606:4700:4700::1111",
            "2a00:1450:4007::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ],
    )
    def test_public(self, address: str) -> None:
        """Global unicast, and embedded forms of public IPv4, are allowed."""
        assert address_category(ip_address(address)) is None


BLOCKED_V4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
]


@st.composite
def blocked_ipv4(draw: st.DrawFn) -> IPv4Address:
    network = IPv4Network(draw(st.sampled_from(BLOCKED_V4)))
    offset = draw(st.integers(min_value=0, max_value=network.num_addresses - 1))
    return network[offset]


@given(blocked_ipv4())
def test_every_blocked_ipv4_is_refused_in_every_disguise(address: IPv4Address) -> None:
    """A blocked IPv4 address stays blocked as mapped, compatible, NAT64 and 6to4 IPv6."""
    value = int(address)
    forms: list[IPv4Address | IPv6Address] = [
        address,
        IPv6Address((0xFFFF << 32) | value),  # ::ffff:a.b.c.d
        IPv6Address((0xFFFF << 48) | value),  # ::ffff:0:a.b.c.d
        IPv6Address(int(IPv6Address("64:ff9b::")) | value),
        IPv6Address((0x2002 << 112) | (value << 80)),
    ]
    if value > 1:
        forms.append(IPv6Address(value))  # ::a.b.c.d (not :: or ::1 themselves)
    for form in forms:
        assert address_category(form) is not None, form


def test_metadata_set_is_refused() -> None:
    """Every listed metadata address is categorised as metadata."""
    assert {address_category(a) for a in METADATA_ADDRESSES} == {"metadata"}
