"""Name resolution, done by the client itself so that it can check every answer.

The addresses a resolver returns are the only ones the transport will ever
connect to: resolution happens once per request, before any check, and the
connection is pinned to the checked result (no second lookup for a DNS
rebinding attack to change).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from ipaddress import IPv6Address, ip_address
from typing import Protocol, runtime_checkable

from ._addresses import IPAddress
from .errors import UnresolvableHostError

__all__ = ["Resolver", "SystemResolver"]


@runtime_checkable
class Resolver(Protocol):
    """Something that turns a host name into the addresses to connect to."""

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        """Every address ``host`` resolves to, in the order to try them.

        Raises:
            UnresolvableHostError: The name has no address.
        """
        ...


class SystemResolver:
    """The operating system's resolver (``getaddrinfo``), run off the event loop.

    :meth:`asyncio.AbstractEventLoop.getaddrinfo` runs the blocking call in
    the loop's default executor, so a slow DNS server never stalls other
    requests; the caller bounds the wait.
    """

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        """Resolve ``host`` for a TCP connection to ``port``.

        Raises:
            UnresolvableHostError: The name does not resolve.
        """
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (OSError, UnicodeError):
            raise UnresolvableHostError("The URL's host name does not resolve") from None
        addresses: list[IPAddress] = []
        for family, _type, _proto, _name, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ip_address(str(sockaddr[0]).partition("%")[0])
            if isinstance(address, IPv6Address) and len(sockaddr) > 3 and sockaddr[3]:
                # A scope id means a link-local style address; keep it so the
                # check sees it (it is refused as link-local).
                address = IPv6Address(f"{address}%{sockaddr[3]}")
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise UnresolvableHostError("The URL's host name does not resolve")
        return addresses
