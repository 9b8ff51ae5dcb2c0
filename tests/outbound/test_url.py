"""The URL parser reads hosts as a browser does, so odd spellings show their real address."""

from __future__ import annotations

from ipaddress import IPv4Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from barbacana.outbound import BadURLError, DisallowedSchemeError, parse_url
from barbacana.outbound._url import join_url


class TestHostSpellings:
    """Every spelling of an address parses to that address (WHATWG URL + inet_aton)."""

    @pytest.mark.parametrize(
        ("url", "address"),
        [
            ("http://127.0.0.1/", "127.0.0.1"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://0X7F000001/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://017700000001/", "127.0.0.1"),
            ("http://127.000.000.001/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://127.0.1/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://0x7f.0x0.0x0.0x1/", "127.0.0.1"),
            ("http://127.0.0.1./", "127.0.0.1"),
            ("http://%31%32%37.0.0.1/", "127.0.0.1"),
            ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "127.0.0.1"),  # fullwidth
            ("http://127\u30020\u30020\u30021/", "127.0.0.1"),  # ideographic full stop
            ("http://0/", "0.0.0.0"),
            ("http://0x/", "0.0.0.0"),
            ("http://3232235777/", "192.168.1.1"),
            ("http://0xa9fea9fe/", "169.254.169.254"),
            ("http://[::1]/", "::1"),
            ("http://[0:0:0:0:0:0:0:1]/", "::1"),
            ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1"),
            ("http://[::FFFF:7F00:1]/", "::ffff:7f00:1"),
            ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
        ],
    )
    def test_address_literal(self, url: str, address: str) -> None:
        """The host is recognised as the address it spells."""
        parsed = parse_url(url)
        assert parsed.address == ip_address(address)
        assert parsed.host == ip_address(address).compressed

    @pytest.mark.parametrize(
        ("url", "host"),
        [
            ("http://good.com@127.0.0.1/", "127.0.0.1"),
            ("http://user:pass@127.0.0.1:81/", "127.0.0.1"),
            ("http://a@b@127.0.0.1/", "127.0.0.1"),
            ("http://127.0.0.1#@good.com/", "127.0.0.1"),
            ("http://127.0.0.1?@good.com/", "127.0.0.1"),
            ("http://127.0.0.1\\@good.com/", "127.0.0.1"),
            ("http:\\\\127.0.0.1\\path", "127.0.0.1"),
            ("http:/127.0.0.1/", "127.0.0.1"),
            ("http:127.0.0.1/", "127.0.0.1"),
            ("http:///127.0.0.1/", "127.0.0.1"),
            ("  http://127.0.0.1/\t", "127.0.0.1"),
            ("http://127.0.\t0.1/", "127.0.0.1"),
            ("http://127.0.\n0.1/", "127.0.0.1"),
            ("HTTP://LOCALHOST/", "localhost"),
            ("http://localhost./", "localhost"),
            ("http://%6c%6f%63%61%6c%68%6f%73%74/", "localhost"),
            ("http://B\u00dccher.example/", "xn--bcher-kva.example"),
        ],
    )
    def test_host_is_what_a_browser_sees(self, url: str, host: str) -> None:
        """Userinfo, fragments, backslashes and whitespace do not hide the real host."""
        assert parse_url(url).host == host

    def test_userinfo_is_flagged(self) -> None:
        """A URL with credentials is marked so the client can refuse it."""
        assert parse_url("http://good.com@127.0.0.1/").has_userinfo
        assert not parse_url("http://127.0.0.1/").has_userinfo

    def test_zone_id_is_flagged(self) -> None:
        """An IPv6 zone id is parsed off the address and flagged."""
        parsed = parse_url("http://[fe80::1%25eth0]/")
        assert parsed.address == ip_address("fe80::1")
        assert parsed.has_zone


class TestCanonical:
    """The canonical form is what every later parser must read the same way."""

    @pytest.mark.parametrize(
        ("url", "canonical"),
        [
            ("HTTPS://Example.COM:443/a?b=c#frag", "https://example.com/a?b=c"),
            ("http://example.com:80", "http://example.com/"),
            ("http://example.com:8080/x", "http://example.com:8080/x"),
            ("http://u:p@example.com/x", "http://example.com/x"),
            ("http://example.com\\a\\b?x=\\", "http://example.com/a/b?x=\\"),
            ("http://[::1]:8443/", "http://[::1]:8443/"),
            ("http://0x7f.1:81/", "http://127.0.0.1:81/"),
        ],
    )
    def test_canonical(self, url: str, canonical: str) -> None:
        """Scheme and host lowercased, default port, userinfo and fragment dropped."""
        assert parse_url(url).canonical() == canonical


class TestRefused:
    """Malformed or non-http URLs are refused with a clear error."""

    @pytest.mark.parametrize(
        "url",
        [
            "",
            "example.com/file",
            "//example.com/file",
            "/relative",
            "http://",
            "http:///",
            "http://[::1/",
            "http://[::1]x/",
            "http://[not-v6]/",
            "http://[fe80::1%25]/",
            "http://%5B::1%5D/",
            "http://ex ample.com/",
            "http://exa<mple.com/",
            "http://%zz.com/",
            "http://%ff.com/",
            "http://a..b/",
            "http://-bad-.com/",
            "http://256.1.1.1/",
            "http://1.2.3.4.5/",
            "http://4294967296/",
            "http://a.09/",
            "http://example.com:0/",
            "http://example.com:65536/",
            "http://example.com:8o/",
            "http://example.com:\uff18\uff10/",
            "http://" + "a" * 8001,
            "http://\uff0f\uff0fexample.com/",
        ],
    )
    def test_bad_url(self, url: str) -> None:
        """Each is a BadURLError, never a bare exception."""
        with pytest.raises(BadURLError):
            parse_url(url)

    @pytest.mark.parametrize(
        "url",
        [
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://127.0.0.1:6379/_INFO",
            "dict://127.0.0.1:11211/",
            "javascript:alert(1)",
            "data:text/plain,hi",
            "ws://example.com/",
            "jar:http://example.com!/",
        ],
    )
    def test_other_schemes(self, url: str) -> None:
        """Only http and https are parsed at all."""
        with pytest.raises(DisallowedSchemeError):
            parse_url(url)

    def test_not_a_string(self) -> None:
        """Non-string input is refused, not crashed on."""
        with pytest.raises(BadURLError):
            parse_url(b"http://example.com/")  # type: ignore[arg-type]


class TestJoin:
    """Redirect targets resolve like a browser resolves them."""

    @pytest.mark.parametrize(
        ("location", "host", "target"),
        [
            ("/next", "example.com", "/next"),
            ("next", "example.com", "/dir/next"),
            ("?q=1", "example.com", "/dir/page?q=1"),
            ("//127.0.0.1/x", "127.0.0.1", "/x"),
            ("/\\127.0.0.1/x", "127.0.0.1", "/x"),
            ("\\\\127.0.0.1/x", "127.0.0.1", "/x"),
            ("http://0x7f.1/", "127.0.0.1", "/"),
            (" http://169.254.169.254/latest ", "169.254.169.254", "/latest"),
        ],
    )
    def test_join(self, location: str, host: str, target: str) -> None:
        """Scheme-relative and backslash forms change host; others stay on it."""
        parsed = parse_url(join_url("https://example.com/dir/page", location))
        assert (parsed.host, parsed.target) == (host, target)


def _spell(value: int, radix: int) -> str:
    if radix == 16:
        return hex(value)
    if radix == 8:
        return "0" + oct(value)[2:]
    return str(value)


@given(
    address=st.integers(min_value=0, max_value=2**32 - 1),
    parts=st.integers(min_value=1, max_value=4),
    radixes=st.lists(st.sampled_from([8, 10, 16]), min_size=4, max_size=4),
)
def test_every_inet_aton_spelling(address: int, parts: int, radixes: list[int]) -> None:
    """Any 1-4 part spelling in any mix of radixes parses to the same IPv4 address."""
    octets = IPv4Address(address).packed
    numbers = [*octets[: parts - 1], int.from_bytes(octets[parts - 1 :])]
    host = ".".join(_spell(n, r) for n, r in zip(numbers, radixes, strict=False))
    assert parse_url(f"http://{host}/").address == IPv4Address(address)
