"""Who is the client? The socket's peer, unless a trusted proxy says otherwise.

``X-Forwarded-For`` is a list each proxy appends its peer's address to, so
only its right-hand end is trustworthy: everything left of the last address
a trusted proxy wrote could have been typed by the client. The resolver
therefore believes the header only when the socket peer is a configured
trusted proxy, and then walks the list from the right, skipping trusted
hops; the first untrusted address is the client. A client that sends its own
``X-Forwarded-For`` straight to the service changes nothing, and one that
sends it through the proxy only adds entries to the left of the one the proxy
appended. (MDN, "X-Forwarded-For: Selecting an IP address"; RFC 7239 §8.)
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import ConfigurationError

__all__ = ["Network", "client_address", "parse_trusted_proxies"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: What the resolver answers when the server does not know the peer (no ``client`` in scope).
UNKNOWN = "unknown"


def parse_trusted_proxies(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """Parse the trusted proxies setting: addresses or CIDR blocks.

    A block with host bits set (``10.0.0.1/8``) is refused: it is almost always
    a typo for a narrower block, and guessing would trust too much.

    Raises:
        ConfigurationError: an entry is not an address or a CIDR block.
    """
    networks: list[Network] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(str(cidr).strip(), strict=True))
        except ValueError as exc:
            raise ConfigurationError(
                f"trusted proxy {cidr!r} is not an IP address or CIDR block ({exc})"
            ) from None
    return tuple(networks)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> _Address | None:
    """An address from a forwarded-for entry: bare, ``[v6]:port`` or ``v4:port``.

    Cached: it runs on every request for the socket peer, and peers repeat.
    """
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: _Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


def _forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """Every ``X-Forwarded-For`` entry, joining repeated fields in order (RFC 9110 §5.3)."""
    hops: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            hops.extend(value.decode("latin-1").split(","))
    return hops


def client_address(scope: Mapping[str, Any], trusted_proxies: Sequence[Network]) -> str:
    """The client's address for an ASGI HTTP or WebSocket scope.

    The socket peer, unless it is one of ``trusted_proxies``; then the first
    untrusted address found walking ``X-Forwarded-For`` from the right. If every
    hop is trusted, the leftmost one; if the walk meets an entry that is not an
    address, the last trusted hop (the header is unusable, and its garbage must
    not become an identity the client can vary). IPv4-mapped IPv6 addresses are
    reported as IPv4.
    """
    client = scope.get("client")
    if not client:
        return UNKNOWN
    peer = _parse(str(client[0]))
    if peer is None:
        return str(client[0])
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return str(peer)
    last = peer
    for entry in reversed(_forwarded_for(scope.get("headers", ()))):
        if not entry.strip():
            continue
        hop = _parse(entry)
        if hop is None:
            return str(last)
        if not _trusted(hop, trusted_proxies):
            return str(hop)
        last = hop
    return str(last)
