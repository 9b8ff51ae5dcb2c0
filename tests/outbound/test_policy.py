"""The outbound policy: settings validated at start-up, one rule per method, stable errors."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import pytest
from pydantic import ValidationError

import barbacana.outbound as outbound
from barbacana.errors import ConfigurationError, OutboundError
from barbacana.outbound import (
    DisallowedAddressError,
    DisallowedHostError,
    DisallowedPortError,
    DisallowedSchemeError,
    OutboundPolicy,
    OutboundSettings,
    parse_url,
)
from barbacana.settings import Settings


def policy(profile: str = "development", **settings: Any) -> OutboundPolicy:
    return OutboundPolicy.from_settings(OutboundSettings(**settings), profile=profile)


class TestSettings:
    """Bad settings stop start-up with a message that says how to fix them."""

    def test_defaults(self) -> None:
        """Default: https only, ports 80/443, 5 redirects, 10 MiB, 10 s, no allowances."""
        p = policy()
        assert (p.allow_http, p.allowed_ports, p.max_redirects) == (False, frozenset({80, 443}), 5)
        assert (p.max_bytes, p.timeout) == (10 * 1024 * 1024, 10.0)
        assert p.test_only_allowed_networks == ()

    def test_from_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Wired as ``Settings.outbound``, every field reads from BARBACANA_OUTBOUND_*."""

        class Wired(Settings):
            outbound: OutboundSettings = OutboundSettings()

        monkeypatch.setenv("BARBACANA_OUTBOUND_ALLOW_HTTP", "true")
        monkeypatch.setenv("BARBACANA_OUTBOUND_TIMEOUT", "2.5")
        monkeypatch.setenv("BARBACANA_OUTBOUND_ALLOWED_HOSTS", '["a.example", "*.b.example"]')
        monkeypatch.setenv("BARBACANA_OUTBOUND_MAX_BYTES", "1000")
        wired = Wired(_env_file=None)
        p = OutboundPolicy.from_settings(wired.outbound, profile=wired.profile)
        assert (p.allow_http, p.timeout, p.max_bytes) == (True, 2.5, 1000)
        assert p.allowed_hosts == ("a.example", "*.b.example")

    def test_unknown_field_refused(self) -> None:
        """A typo in a field name is an error, not silently ignored."""
        with pytest.raises(ValidationError):
            OutboundSettings(allow_htp=True)  # type: ignore[call-arg]
        with pytest.raises(ValidationError):
            OutboundSettings(timeout=0)

    @pytest.mark.parametrize(
        ("settings", "fragment"),
        [
            ({"blocked_cidrs": ["10.0.0.1/8"]}, "host bits"),
            ({"blocked_cidrs": ["not-a-network"]}, "CIDR"),
            ({"allowed_hosts": ["https://example.com"]}, "not a host name"),
            ({"allowed_hosts": ["example.com:8080"]}, "not a host name"),
            ({"allowed_hosts": ["example.com/path"]}, "not a host name"),
            ({"allowed_hosts": ["user@example.com"]}, "not a host name"),
            ({"allowed_hosts": ["*.127.0.0.1"]}, "needs a name"),
            ({"allowed_ports": [0]}, "between 1 and 65535"),
            ({"user_agent": "x\r\nInjected: 1"}, "one line"),
            ({"test_only_allowed_cidrs": ["127.0.0.1/32"]}, "test_only_allowed_ports"),
        ],
    )
    def test_refused(self, settings: dict[str, Any], fragment: str) -> None:
        """Each invalid value is a ConfigurationError naming the fix."""
        with pytest.raises(ConfigurationError, match=fragment):
            policy(**settings)

    def test_test_only_allowance_refused_in_production(self) -> None:
        """Production can never carry the loopback allowance used by test suites."""
        with pytest.raises(ConfigurationError, match="production"):
            policy(
                "production",
                test_only_allowed_cidrs=["127.0.0.1/32"],
                test_only_allowed_ports=[8080],
            )
        assert policy("production").test_only_allowed_networks == ()

    def test_allowed_hosts_normalised(self) -> None:
        """Host patterns are compared in canonical (lowercase, IDNA) form."""
        p = policy(allowed_hosts=["Files.Example.COM.", "*.B\u00fccher.example", "[2606:4700::1]"])
        assert p.allowed_hosts == ("files.example.com", "*.xn--bcher-kva.example", "2606:4700::1")


class TestRules:
    """One method per rule."""

    def test_scheme(self) -> None:
        """https always; http only when allowed."""
        policy().check_scheme(parse_url("https://a.example/"))
        with pytest.raises(DisallowedSchemeError):
            policy().check_scheme(parse_url("http://a.example/"))
        policy(allow_http=True).check_scheme(parse_url("http://a.example/"))

    @pytest.mark.parametrize(
        ("url", "allowed"),
        [
            ("https://files.example.com/x", True),
            ("https://FILES.example.com./x", True),
            ("https://a.cdn.example/x", True),
            ("https://a.b.cdn.example/x", True),
            ("https://cdn.example/x", False),
            ("https://evilcdn.example/x", False),
            ("https://files.example.com.evil.example/x", False),
            ("https://example.com/x", False),
        ],
    )
    def test_host_allow_list(self, url: str, allowed: bool) -> None:
        """Exact names, and ``*.suffix`` for subdomains only."""
        p = policy(allowed_hosts=["files.example.com", "*.cdn.example"])
        if allowed:
            p.check_host(parse_url(url))
        else:
            with pytest.raises(DisallowedHostError):
                p.check_host(parse_url(url))

    def test_address_and_port(self) -> None:
        """Public addresses on allowed ports only; blocked CIDRs on top."""
        p = policy(blocked_cidrs=["93.184.216.0/24"])
        p.check_address(ip_address("8.8.8.8"), 443)
        with pytest.raises(DisallowedPortError):
            p.check_address(ip_address("8.8.8.8"), 22)
        with pytest.raises(DisallowedAddressError) as info:
            p.check_address(ip_address("93.184.216.34"), 443)
        assert info.value.extra == {"category": "blocked"}

    def test_test_only_allowance_is_narrow(self) -> None:
        """It allows its networks on its ports only, and never metadata."""
        p = policy(
            test_only_allowed_cidrs=["127.0.0.1/32", "169.254.0.0/16"],
            test_only_allowed_ports=[8080],
        )
        p.check_address(ip_address("127.0.0.1"), 8080)
        for address, port in [
            ("127.0.0.1", 8081),
            ("127.0.0.2", 8080),
            ("::1", 8080),
            ("::ffff:127.0.0.1", 8080),
            ("169.254.169.254", 8080),
        ]:
            with pytest.raises(DisallowedAddressError):
                p.check_address(ip_address(address), port)


class TestErrors:
    """Errors carry stable codes, answer 4xx, and do not reveal the address."""

    def test_codes_are_stable_and_unique(self) -> None:
        """Each leaf has its own code and a 4xx status."""
        leaves = [
            getattr(outbound, name)
            for name in outbound.__all__
            if isinstance(getattr(outbound, name), type)
            and issubclass(getattr(outbound, name), OutboundError)
            and getattr(outbound, name) is not OutboundError
        ]
        assert len(leaves) == 11
        assert len({leaf.code for leaf in leaves}) == len(leaves)
        assert all(leaf.code.startswith("outbound_") and leaf.status == 422 for leaf in leaves)

    def test_address_error_names_category_not_address(self) -> None:
        """The message says what kind of address, never which one."""
        with pytest.raises(DisallowedAddressError) as info:
            policy().check_address(ip_address("10.1.2.3"), 443)
        assert "private" in info.value.detail
        assert "10.1.2.3" not in info.value.detail
        assert info.value.extra == {"category": "private"}
