"""Web-layer checks: docs and debug in production, and whom forwarding headers are believed from.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from
``web.trusted_proxies`` (MDN, "X-Forwarded-For: Selecting an IP address";
RFC 7239 §8), and a mesh sidecar's identity header only from
``transport.mesh_trusted_sidecars``. A block that contains the whole
Internet turns either into a header anyone can set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from ..errors import ConfigurationError
from ..web._forwarded import parse_trusted_proxies
from ._catalogue import (
    DEBUG_IN_PRODUCTION,
    DOCS_IN_PRODUCTION,
    PROXIES_ANYONE,
    PROXIES_BROAD,
    PROXIES_INVALID,
)
from ._context import CheckContext
from ._messages import Message
from ._registry import Registry

__all__ = [
    "check_debug",
    "check_docs",
    "check_trusted_proxies",
    "is_broad_network",
    "register",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def check_docs(context: CheckContext) -> Iterator[Message]:
    """``/docs`` and ``/openapi.json`` served in production (W020)."""
    if context.production and context.settings.web.docs:
        yield DOCS_IN_PRODUCTION("web.docs is true", target="web.docs")


def check_debug(context: CheckContext) -> Iterator[Message]:
    """Debug on in production (E021)."""
    if context.production and context.settings.debug:
        yield DEBUG_IN_PRODUCTION("debug is true", target="debug")


def is_broad_network(network: Network) -> bool:
    """A block too large to be "our proxies": an IPv4 block larger than a /8 (IPv6: /32),
    or a public one larger than a /24 (IPv6: /64)."""
    if network.version == 4:
        whole, public = 8, 24
    else:
        whole, public = 32, 64
    return network.prefixlen < whole or (not network.is_private and network.prefixlen < public)


def check_trusted_proxies(context: CheckContext) -> Iterator[Message]:
    """Forwarding or identity headers believed from anyone (E022), a broad block (W023),
    or an entry the web layer refuses (E024)."""
    web = context.settings.web.trusted_proxies
    try:
        parse_trusted_proxies(web)
    except ConfigurationError as exc:
        yield PROXIES_INVALID(exc.detail, target="web.trusted_proxies")
    lists = {
        "web.trusted_proxies": web,
        "transport.mesh_trusted_sidecars": context.settings.transport.mesh_trusted_sidecars,
    }
    for setting, entries in lists.items():
        for entry in entries:
            try:
                network = ipaddress.ip_network(str(entry).strip(), strict=False)
            except ValueError:
                continue  # reported above (web) or refused by the settings (mesh)
            if network.prefixlen == 0:
                yield PROXIES_ANYONE(f"{setting} contains {network}", target=setting)
            elif is_broad_network(network):
                yield PROXIES_BROAD(
                    f"{setting} contains {network} ({network.num_addresses:,} addresses)",
                    target=setting,
                )


def register(registry: Registry) -> None:
    """Add the web-layer checks to ``registry``."""
    registry.register(check_docs, "web")
    registry.register(check_debug, "web")
    registry.register(check_trusted_proxies, "web", "transport")
