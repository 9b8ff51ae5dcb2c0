"""The outbound policy: which schemes, hosts, ports and addresses may be fetched.

One method per rule (scheme, host, address and port); the transport calls
them in order for every request, redirects included. Production policy has no
way to reach loopback or private space: the only exception is the explicitly
named test-only allowance, which needs both networks and ports, is refused in
the ``production`` profile, and never covers cloud metadata addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address, ip_network

from ..errors import ConfigurationError
from ._addresses import METADATA_ADDRESSES, IPAddress, IPNetwork, address_category
from ._settings import OutboundSettings
from ._url import ParsedURL, parse_url
from .errors import (
    BadURLError,
    DisallowedAddressError,
    DisallowedHostError,
    DisallowedPortError,
    DisallowedSchemeError,
    OutboundError,
)

__all__ = ["OutboundPolicy"]


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """What an SSRF-safe client may fetch; build it with :meth:`from_settings`.

    Attributes:
        allow_http: Plain ``http://`` is allowed besides ``https://``.
        allowed_hosts: Exact host names, or ``*.suffix`` for every subdomain of
            ``suffix``; empty allows any public host.
        allowed_ports: Ports that may be fetched.
        max_redirects: Redirects followed per fetch.
        max_bytes: Default cap on a decoded response body.
        timeout: Total seconds for one fetch.
        blocked_networks: Extra networks refused on top of the built-in ones.
        test_only_allowed_networks: TEST ONLY: refused networks allowed anyway,
            on ``test_only_allowed_ports`` only.
        test_only_allowed_ports: TEST ONLY: the ports those networks are allowed on.
        user_agent: ``User-Agent`` of outbound requests.
    """

    allow_http: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_ports: frozenset[int] = frozenset({80, 443})
    max_redirects: int = 5
    max_bytes: int = 10 * 1024 * 1024
    timeout: float = 10.0
    blocked_networks: tuple[IPNetwork, ...] = ()
    test_only_allowed_networks: tuple[IPNetwork, ...] = ()
    test_only_allowed_ports: frozenset[int] = field(default_factory=frozenset)
    user_agent: str = "barbacana-outbound"

    def __post_init__(self) -> None:
        if not 0 <= self.max_redirects <= 20:
            raise ConfigurationError("outbound.max_redirects must be between 0 and 20")
        if self.max_bytes < 1:
            raise ConfigurationError("outbound.max_bytes must be at least 1")
        if not self.timeout > 0:
            raise ConfigurationError("outbound.timeout must be more than 0 seconds")
        for port in (*self.allowed_ports, *self.test_only_allowed_ports):
            if not 0 < port < 65536:
                raise ConfigurationError(f"outbound port {port} is not between 1 and 65535")
        if self.test_only_allowed_networks and not self.test_only_allowed_ports:
            raise ConfigurationError(
                "outbound.test_only_allowed_cidrs needs outbound.test_only_allowed_ports: "
                "list the ports of the test servers it is meant for"
            )
        if any(c in self.user_agent for c in "\r\n\x00"):
            raise ConfigurationError("outbound.user_agent must be one line of text")

    @classmethod
    def from_settings(cls, settings: OutboundSettings, *, profile: str) -> OutboundPolicy:
        """Validate ``settings`` and build the policy.

        Args:
            settings: ``Settings.outbound``.
            profile: ``Settings.profile`` (required, so that it cannot be forgotten):
                ``"production"`` refuses the test-only allowances.

        Raises:
            ConfigurationError: A value is invalid; the message says how to fix it.
        """
        if profile == "production" and (
            settings.test_only_allowed_cidrs or settings.test_only_allowed_ports
        ):
            raise ConfigurationError(
                "outbound.test_only_allowed_cidrs/ports are for test suites only and are "
                "refused in the production profile: remove them "
                "(BARBACANA_OUTBOUND_TEST_ONLY_ALLOWED_CIDRS, ..._PORTS)"
            )
        return cls(
            allow_http=settings.allow_http,
            allowed_hosts=tuple(_host_pattern(h) for h in settings.allowed_hosts),
            allowed_ports=frozenset(settings.allowed_ports),
            max_redirects=settings.max_redirects,
            max_bytes=settings.max_bytes,
            timeout=settings.timeout,
            blocked_networks=tuple(_network(c, "blocked_cidrs") for c in settings.blocked_cidrs),
            test_only_allowed_networks=tuple(
                _network(c, "test_only_allowed_cidrs") for c in settings.test_only_allowed_cidrs
            ),
            test_only_allowed_ports=frozenset(settings.test_only_allowed_ports),
            user_agent=settings.user_agent,
        )

    def check_scheme(self, url: ParsedURL) -> None:
        """Only ``https``, and ``http`` when allowed.

        Raises:
            DisallowedSchemeError: The scheme is not allowed.
        """
        if url.scheme == "https" or (url.scheme == "http" and self.allow_http):
            return
        raise DisallowedSchemeError(f"Only https URLs may be fetched, not {url.scheme}")

    def check_host(self, url: ParsedURL) -> None:
        """The host is on the allow-list, when there is one.

        Raises:
            DisallowedHostError: The host is not on the allow-list.
        """
        if not self.allowed_hosts:
            return
        for pattern in self.allowed_hosts:
            if pattern.startswith("*."):
                if url.address is None and url.host.endswith(pattern[1:]):
                    return
            elif url.host == pattern:
                return
        raise DisallowedHostError("The URL's host is not one this service may fetch from")

    def check_address(self, address: IPAddress, port: int) -> None:
        """``address`` is public and ``port`` allowed (the test-only allowance aside).

        Raises:
            DisallowedAddressError: The address is not public, or blocked by policy.
            DisallowedPortError: The port is not allowed.
        """
        plain = IPv6Address(int(address)) if isinstance(address, IPv6Address) else address
        if plain in METADATA_ADDRESSES:
            raise _address_error("metadata")
        if port in self.test_only_allowed_ports and any(
            plain in network for network in self.test_only_allowed_networks
        ):
            return
        category = address_category(address)
        if category is None and any(plain in network for network in self.blocked_networks):
            category = "blocked"
        if category is not None:
            raise _address_error(category)
        if port not in self.allowed_ports:
            raise DisallowedPortError(f"Port {port} may not be fetched")

    def check_literal(self, url: ParsedURL) -> None:
        """An address-literal host is allowed, and carries no zone id.

        Raises:
            DisallowedAddressError: See :meth:`check_address`.
            DisallowedPortError: See :meth:`check_address`.
            BadURLError: The address carries a zone id.
        """
        if url.address is None:
            return
        self.check_address(url.address, url.port)
        if url.has_zone:
            raise BadURLError("IPv6 zone ids are not allowed in URLs")


def _address_error(category: str) -> DisallowedAddressError:
    return DisallowedAddressError(
        f"The URL's host leads to a non-public address ({category}); "
        "only public addresses may be fetched",
        category=category,
    )


def _host_pattern(value: str) -> str:
    wildcard = value.startswith("*.")
    text = value[2:] if wildcard else value
    try:
        parsed = parse_url(f"https://{text}/")
    except OutboundError:
        parsed = None
    bracketed = text.startswith("[") and text.endswith("]")
    if (
        parsed is None
        or any(c in text for c in "/?#@\\")
        or (":" in text and not bracketed)
        or parsed.port != 443
    ):
        raise ConfigurationError(
            f"outbound.allowed_hosts entry {value!r} is not a host name: write "
            "'files.example.com' or '*.example.com' (no scheme, port or path)"
        )
    if wildcard and parsed.address is not None:
        raise ConfigurationError(f"outbound.allowed_hosts entry {value!r}: '*.' needs a name")
    return f"*.{parsed.host}" if wildcard else parsed.host


def _network(value: str, name: str) -> IPNetwork:
    try:
        return ip_network(value.strip(), strict=True)
    except ValueError:
        raise ConfigurationError(
            f"outbound.{name} entry {value!r} is not a CIDR network such as 203.0.113.0/24 "
            "(host bits must be zero)"
        ) from None
