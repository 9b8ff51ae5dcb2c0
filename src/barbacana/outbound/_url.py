"""Parse a user-supplied http(s) URL the way a browser does.

An SSRF filter and the HTTP stack that connects must agree on which host a
URL names; attackers live in the gap between parsers (``http://a@b``,
``http://b#@a``, ``http://b\\@a``, ``http://0x7f.1``). This module follows the
WHATWG URL Standard for special schemes (https://url.spec.whatwg.org/):
tabs and newlines are dropped, backslashes are slashes, the authority ends at
the first ``/ \\ ? #``, userinfo ends at the *last* ``@``, hosts are
percent-decoded and mapped with UTS #46 (so fullwidth digits and ideographic
full stops spell ``127.0.0.1`` too), and a host whose last label is a number is parsed as IPv4 with
the ``inet_aton`` rules (decimal, ``0x`` hex, leading-zero octal, and 1 to 4
parts: ``2130706433``, ``0177.0.0.1``, ``127.1``). The result is a canonical
URL that every later parser reads the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from urllib.parse import unquote_to_bytes, urljoin

import idna

from ._addresses import IPAddress
from .errors import BadURLError, DisallowedSchemeError

__all__ = ["ParsedURL", "join_url", "parse_url"]

#: Longer URLs are refused before any parsing (RFC 9110 §4.1 recommends 8000 octets).
MAX_URL_LENGTH = 8000

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_TAB_OR_NEWLINE = str.maketrans("", "", "\t\n\r")
_C0_OR_SPACE = "".join(chr(c) for c in range(0x21))
# WHATWG "forbidden domain code points", after percent-decoding and UTS #46.
_FORBIDDEN = frozenset(" #%/:<>?@[\\]^|\x7f") | frozenset(chr(c) for c in range(0x20))
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?")


@dataclass(frozen=True, slots=True)
class ParsedURL:
    """An http(s) URL reduced to what decides where a request goes.

    Attributes:
        scheme: ``"http"`` or ``"https"``.
        host: Canonical host: a lowercase ASCII name without trailing dot, a
            dotted-quad IPv4 address, or a compressed IPv6 address (no brackets).
        address: The IP address when the host is an address literal, in any spelling.
        port: The effective port (the scheme's default when none is written).
        target: Path and query, starting with ``/``; the fragment is dropped.
        has_userinfo: The URL carried ``user[:password]@``.
        has_zone: The IPv6 literal carried a zone id (``%25eth0``).
    """

    scheme: str
    host: str
    address: IPAddress | None
    port: int
    target: str
    has_userinfo: bool = False
    has_zone: bool = False

    @property
    def authority(self) -> str:
        """``host[:port]`` as written in a canonical URL and the ``Host`` header."""
        host = f"[{self.host}]" if isinstance(self.address, IPv6Address) else self.host
        if self.port == _DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    def canonical(self) -> str:
        """The URL without userinfo or fragment, in a form every parser agrees on."""
        return f"{self.scheme}://{self.authority}{self.target}"


def parse_url(raw: str) -> ParsedURL:
    """Parse an absolute http(s) URL as a browser would.

    Raises:
        BadURLError: Not an absolute URL, or its host or port is malformed.
        DisallowedSchemeError: The scheme is not ``http`` or ``https``.
    """
    if not isinstance(raw, str):
        raise BadURLError("The URL must be a string")
    if len(raw) > MAX_URL_LENGTH:
        raise BadURLError(f"The URL is longer than {MAX_URL_LENGTH} characters")
    text = raw.strip(_C0_OR_SPACE).translate(_TAB_OR_NEWLINE)
    match = _SCHEME.match(text)
    if match is None:
        raise BadURLError("The URL must be absolute, such as https://example.com/file")
    scheme = match.group(1).lower()
    if scheme not in _DEFAULT_PORTS:
        raise DisallowedSchemeError(f"The URL scheme {scheme!r} is not allowed")
    rest = text[match.end() :].lstrip("/\\")
    end = _first_of(rest, "/\\?#")
    authority, tail = rest[:end], rest[end:]
    has_userinfo = "@" in authority
    hostport = authority.rpartition("@")[2]
    host_text, port_text = _split_port(hostport)
    host, address, has_zone = _parse_host(host_text)
    port = _parse_port(port_text, _DEFAULT_PORTS[scheme])
    return ParsedURL(
        scheme=scheme,
        host=host,
        address=address,
        port=port,
        target=_target(tail),
        has_userinfo=has_userinfo,
        has_zone=has_zone,
    )


def join_url(base: str, location: str) -> str:
    """Resolve a ``Location`` header against the URL that answered with it.

    Like a browser, a backslash counts as a slash, so ``/\\evil.example`` is
    another host, not a path on this one.
    """
    text = location.strip(_C0_OR_SPACE).translate(_TAB_OR_NEWLINE)
    if _SCHEME.match(text):
        return text
    end = _first_of(text, "?#")
    text = text[:end].replace("\\", "/") + text[end:]
    if text.startswith("//"):
        return f"{parse_url(base).scheme}:{text}"
    return urljoin(base, text)


def _first_of(text: str, stops: str) -> int:
    positions = [i for i in (text.find(c) for c in stops) if i >= 0]
    return min(positions, default=len(text))


def _split_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise BadURLError("The URL's IPv6 address has no closing bracket")
        host, after = hostport[: close + 1], hostport[close + 1 :]
        if after and not after.startswith(":"):
            raise BadURLError("The URL has text after its IPv6 address")
        return host, after[1:] if after else None
    host, sep, port = hostport.partition(":")
    return host, port if sep else None


def _parse_port(text: str | None, default: int) -> int:
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 5 or not 0 < int(text) < 65536:
        raise BadURLError("The URL's port must be a number from 1 to 65535")
    return int(text)


def _target(tail: str) -> str:
    tail = tail[: _first_of(tail, "#")]
    query_at = tail.find("?")
    path, query = (tail, "") if query_at < 0 else (tail[:query_at], tail[query_at:])
    path = path.replace("\\", "/")
    return (path or "/") + query


def _parse_host(text: str) -> tuple[str, IPAddress | None, bool]:
    if not text:
        raise BadURLError("The URL has no host")
    if text.startswith("["):
        return _parse_ipv6(text)
    try:
        decoded = unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise BadURLError("The URL's host is not valid UTF-8 once percent-decoded") from None
    ascii_host = _domain_to_ascii(decoded)
    if any(c in _FORBIDDEN for c in ascii_host):
        raise BadURLError("The URL's host contains a character not allowed in host names")
    if _ends_in_number(ascii_host):
        address = _parse_ipv4(ascii_host)
        return str(address), address, False
    name = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise BadURLError("The URL's host is not a valid host name")
    return name, None, False


def _parse_ipv6(text: str) -> tuple[str, IPAddress | None, bool]:
    if not text.endswith("]"):
        raise BadURLError("The URL's IPv6 address has no closing bracket")
    inner = text[1:-1]
    literal, percent, zone = inner.partition("%")
    if zone.startswith("25"):
        zone = zone[2:]  # RFC 6874: the "%" before a zone id is written "%25"
    if percent and not zone:
        raise BadURLError("The URL's IPv6 zone id is empty")
    try:
        address = IPv6Address(literal)
    except ValueError:
        raise BadURLError("The URL's IPv6 address is malformed") from None
    return address.compressed, address, bool(percent)


def _domain_to_ascii(host: str) -> str:
    """UTS #46 processing (non-transitional), as the URL Standard's "domain to ASCII"."""
    if host.isascii():
        return host.lower()
    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
        if mapped.isascii():
            return mapped.lower()
        return ".".join(
            label if label.isascii() else idna.alabel(label).decode("ascii")
            for label in mapped.split(".")
        ).lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        raise BadURLError("The URL's host is not a valid international domain name") from None


def _ends_in_number(host: str) -> bool:
    """URL Standard "ends in a number checker": the last label is numeric."""
    labels = host.split(".")
    if labels[-1] == "":
        if len(labels) == 1:
            return False
        labels.pop()
    last = labels[-1]
    if last and last.isascii() and last.isdigit():
        return True
    return _ipv4_number(last) is not None


def _ipv4_number(part: str) -> int | None:
    """URL Standard "IPv4 number parser" (the ``inet_aton`` rules), ``None`` on failure."""
    if not part:
        return None
    radix = 10
    if part[:2] in ("0x", "0X"):
        part, radix = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, radix = part[1:], 8
    if not part:
        return 0
    digits = {10: "0123456789", 16: "0123456789abcdefABCDEF", 8: "01234567"}[radix]
    if not all(c in digits for c in part):
        return None
    return int(part, radix)


def _parse_ipv4(host: str) -> IPv4Address:
    """URL Standard "IPv4 parser": 1 to 4 numbers, the last one filling the rest."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4:
        raise BadURLError("The URL's host looks like an IPv4 address but has too many parts")
    numbers = [_ipv4_number(part) for part in parts]
    if any(n is None for n in numbers):
        raise BadURLError("The URL's host looks like an IPv4 address but is malformed")
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise BadURLError("The URL's host looks like an IPv4 address but is out of range")
    value = values[-1]
    for index, number in enumerate(values[:-1]):
        value += number * 256 ** (3 - index)
    return IPv4Address(value)
