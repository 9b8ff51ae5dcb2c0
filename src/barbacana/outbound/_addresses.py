"""Which IP addresses an outbound request may reach.

An address is *public* when it belongs to none of the special-purpose blocks of
the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and its
updates), is not a cloud metadata endpoint, and, for IPv6, lies in global
unicast space (``2000::/3``, RFC 4291 §2.4). IPv6 forms that carry an IPv4
address (IPv4-mapped, IPv4-compatible, SIIT-translated, NAT64, 6to4, Teredo)
are judged by the IPv4 address they lead to, because that is where a packet
to them ends up.

The tables are written out here instead of relying on
:attr:`ipaddress.IPv4Address.is_private`, whose meaning has changed between
Python patch releases.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

__all__ = ["METADATA_ADDRESSES", "IPAddress", "IPNetwork", "address_category"]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

#: Instance-metadata and similar credential-bearing endpoints of cloud platforms.
#: They are refused even when a test-only allowance covers them.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean… instance metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.170.23",  # AWS EKS Pod Identity agent
        "100.100.100.200",  # Alibaba Cloud metadata
        "192.0.0.192",  # Oracle Cloud (classic) metadata
        "168.63.129.16",  # Azure WireServer (a public address, reachable only from inside)
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity agent over IPv6
    )
)

# IANA IPv4 Special-Purpose Address Registry, plus multicast and class E.
# More specific blocks come first so that the category named is the precise one.
_IPV4: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(cidr), category)
    for cidr, category in (
        ("255.255.255.255/32", "broadcast"),  # RFC 919 limited broadcast
        ("0.0.0.0/32", "unspecified"),  # RFC 1122 §3.2.1.3; reaches the local host on Linux
        ("0.0.0.0/8", "this-network"),  # RFC 791
        ("10.0.0.0/8", "private"),  # RFC 1918
        ("100.64.0.0/10", "shared"),  # RFC 6598 carrier-grade NAT
        ("127.0.0.0/8", "loopback"),  # RFC 1122
        ("169.254.0.0/16", "link-local"),  # RFC 3927
        ("172.16.0.0/12", "private"),  # RFC 1918
        ("192.0.0.0/24", "reserved"),  # RFC 6890 IETF protocol assignments
        ("192.0.2.0/24", "documentation"),  # RFC 5737 TEST-NET-1
        ("192.88.99.0/24", "reserved"),  # RFC 7526 deprecated 6to4 relay anycast
        ("192.168.0.0/16", "private"),  # RFC 1918
        ("198.18.0.0/15", "benchmarking"),  # RFC 2544
        ("198.51.100.0/24", "documentation"),  # RFC 5737 TEST-NET-2
        ("203.0.113.0/24", "documentation"),  # RFC 5737 TEST-NET-3
        ("224.0.0.0/4", "multicast"),  # RFC 5771
        ("240.0.0.0/4", "reserved"),  # RFC 1112 class E
    )
)

# IANA IPv6 Special-Purpose Address Registry blocks inside or near 2000::/3 that
# are not globally reachable; everything outside 2000::/3 is refused anyway.
_IPV6: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(cidr), category)
    for cidr, category in (
        ("::/128", "unspecified"),  # RFC 4291; reaches the local host on Linux
        ("::1/128", "loopback"),  # RFC 4291
        ("64:ff9b:1::/48", "nat64-local"),  # RFC 8215 local-use IPv4/IPv6 translation
        ("100::/64", "reserved"),  # RFC 6666 discard-only
        ("2001:2::/48", "benchmarking"),  # RFC 5180
        ("2001:db8::/32", "documentation"),  # RFC 3849
        ("2001::/23", "reserved"),  # RFC 2928 IETF protocol assignments (ORCHID, AMT…)
        ("3fff::/20", "documentation"),  # RFC 9637
        ("5f00::/16", "reserved"),  # RFC 9602 SRv6 SIDs
        ("fc00::/7", "private"),  # RFC 4193 unique local
        ("fe80::/10", "link-local"),  # RFC 4291
        ("fec0::/10", "private"),  # RFC 3879 deprecated site-local
        ("ff00::/8", "multicast"),  # RFC 4291
    )
)

_GLOBAL_UNICAST = IPv6Network("2000::/3")
_MAPPED = IPv6Network("::ffff:0:0/96")  # RFC 4291 §2.5.5.2
_TRANSLATED = IPv6Network("::ffff:0:0:0/96")  # RFC 2765 SIIT
_COMPATIBLE = IPv6Network("::/96")  # RFC 4291 §2.5.5.1, deprecated
_NAT64 = IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_SIX_TO_FOUR = IPv6Network("2002::/16")  # RFC 3056
_TEREDO = IPv6Network("2001::/32")  # RFC 4380


def address_category(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached, or ``None`` when it is public.

    The answer is a short category name (``"loopback"``, ``"private"``,
    ``"metadata"``, ``"link-local"``…) safe to show to a client: it says what
    kind of address was refused without saying which one.
    """
    if isinstance(address, IPv6Address) and address.scope_id is not None:
        # A zone id only makes sense for link-local and similar scoped addresses.
        address = IPv6Address(int(address))
    if address in METADATA_ADDRESSES:
        return "metadata"
    if isinstance(address, IPv4Address):
        return _table(address, _IPV4)
    return _ipv6_category(address)


def _table(address: IPAddress, table: tuple[tuple[IPNetwork, str], ...]) -> str | None:
    for network, category in table:
        if address in network:
            return category
    return None


def _low32(address: IPv6Address) -> IPv4Address:
    return IPv4Address(int(address) & 0xFFFFFFFF)


def _ipv6_category(address: IPv6Address) -> str | None:
    if int(address) <= 1:
        # :: and ::1 are themselves, not IPv4-compatible forms of 0.0.0.0 and 0.0.0.1.
        return _table(address, _IPV6)
    if address in _MAPPED:
        return address_category(_low32(address))
    if address in _NAT64:
        return address_category(_low32(address))
    if address in _COMPATIBLE or address in _TRANSLATED:
        # Deprecated forms: nothing public is reached through them.
        return address_category(_low32(address)) or "reserved"
    if address in _SIX_TO_FOUR:
        embedded = IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
        return address_category(embedded)
    if address in _TEREDO:
        # RFC 4380 §4: server address in bits 32-63, client address obfuscated in the low 32.
        for embedded in address.teredo or ():
            category = address_category(embedded)
            if category is not None:
                return category
        return "teredo"
    category = _table(address, _IPV6)
    if category is not None:
        return category
    if address not in _GLOBAL_UNICAST:
        return "reserved"
    return None
