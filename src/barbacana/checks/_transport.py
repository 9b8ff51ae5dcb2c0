"""Transport checks: TLS to clients, HSTS, and the internal CA's certificates.

RFC 6797 (HSTS): browsers keep the HTTPS-only rule for ``max-age`` seconds,
and §11.2 recommends a long one; RFC 8996 retired TLS before 1.2, which the
transport settings already refuse to configure.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from ..errors import BarbacanaError
from ..transport import Pki
from ._catalogue import (
    CA_KEY_CLEAR,
    CERT_EXPIRED,
    CERT_EXPIRING,
    HSTS_OFF,
    HSTS_SHORT,
    NOT_INSPECTED,
    PLAIN_HTTP,
    PLAIN_HTTP_BEHIND_PROXY,
)
from ._context import CheckContext
from ._messages import Message
from ._registry import Registry
from ._util import days, is_loopback_url, is_plain_http, truthy

__all__ = [
    "EXPIRY_WINDOW",
    "MIN_HSTS_MAX_AGE",
    "check_certificates",
    "check_hsts",
    "check_plain_http",
    "register",
]

#: One year (RFC 6797 §11.2; the HSTS preload list asks for at least this).
MIN_HSTS_MAX_AGE = 31_536_000
#: A certificate is "expiring soon" within ``transport.renew_before`` or this, whichever is longer.
EXPIRY_WINDOW = timedelta(days=2)


def check_plain_http(context: CheckContext) -> Iterator[Message]:
    """Clients talk plain HTTP (E010), or the listener does behind a proxy (W011)."""
    if context.url and is_plain_http(context.url):
        yield PLAIN_HTTP(f"the service answers at {context.url}", target=context.url)
    public = context.settings.public_url
    if public and is_plain_http(public) and (context.production or not is_loopback_url(public)):
        yield PLAIN_HTTP(f"public_url is {public}", target="public_url")
    env_flag = truthy(context.environ.get("BARBACANA_PLAIN_HTTP"))
    if context.plain_http or env_flag:
        source = "--plain-http" if context.plain_http else "BARBACANA_PLAIN_HTTP"
        if context.settings.web.trusted_proxies:
            yield PLAIN_HTTP_BEHIND_PROXY(
                f"{source} is set and web.trusted_proxies names the proxies", target=source
            )
        else:
            yield PLAIN_HTTP(
                f"{source} is set and no TLS-terminating proxy is configured", target=source
            )


def check_hsts(context: CheckContext) -> Iterator[Message]:
    """HSTS off (W012) or shorter than a year (W013)."""
    max_age = context.settings.web.hsts_max_age
    if max_age == 0:
        yield HSTS_OFF("web.hsts_max_age is 0", target="web.hsts_max_age")
    elif max_age < MIN_HSTS_MAX_AGE:
        yield HSTS_SHORT(
            f"web.hsts_max_age is {max_age} s ({days(max_age)})", target="web.hsts_max_age"
        )


def check_certificates(context: CheckContext) -> Iterator[Message]:
    """Expired (E014) or expiring (W015) certificates; a clear CA key in production (W016)."""
    transport = context.settings.transport
    pki = Pki(context.settings.data_dir / "pki", settings=transport)
    try:
        infos = pki.list()
    except BarbacanaError as exc:
        yield NOT_INSPECTED(f"certificates: {exc.detail}", target=str(pki.directory))
        return
    now = datetime.fromtimestamp(context.now, UTC)
    window = max(transport.renew_before, EXPIRY_WINDOW)
    for info in infos:
        left = info.not_after - now
        if left <= timedelta(0):
            yield CERT_EXPIRED(
                f"{info.name} expired on {info.not_after.isoformat(timespec='seconds')}",
                target=str(info.path),
                hint=_rotate_hint(info.name),
            )
        elif left <= window:
            yield CERT_EXPIRING(
                f"{info.name} expires on {info.not_after.isoformat(timespec='seconds')}, "
                f"in {days(left)}",
                target=str(info.path),
                hint=_rotate_hint(info.name),
            )
    if context.production and pki.ca_key_file.is_file() and not _encrypted(pki):
        yield CA_KEY_CLEAR(
            "ca-key.pem holds an unencrypted private key", target=str(pki.ca_key_file)
        )


def _rotate_hint(name: str) -> str | None:
    if name != "ca":
        return None
    return (
        "the CA is not rotated in place: create a new pki directory (`barbacana pki init`), "
        "re-issue every certificate and distribute the new ca.pem"
    )


def _encrypted(pki: Pki) -> bool:
    try:
        with pki.ca_key_file.open("rb") as handle:
            first = handle.readline(128)
    except OSError:
        return True  # unreadable to us: nothing to say about its contents
    return b"ENCRYPTED" in first


def register(registry: Registry) -> None:
    """Add the transport checks to ``registry``."""
    registry.register(check_plain_http, "transport")
    registry.register(check_hsts, "transport")
    registry.register(check_certificates, "transport", "files")
