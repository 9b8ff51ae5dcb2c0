"""Checks of a running service's answers (``barbacana check --url``).

They read :attr:`CheckContext.probe`: the headers of one response, and
whether the documentation paths answer. Plain HTTP itself is reported by the
transport checks (``BRB-E010``), from the URL alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ._catalogue import (
    LIVE_DOCS,
    LIVE_HEADERS_MISSING,
    LIVE_HSTS_SHORT,
    LIVE_NO_HSTS,
    LIVE_SERVER_HEADER,
    LIVE_UNREACHABLE,
    LIVE_UNTRUSTED,
)
from ._context import CheckContext
from ._messages import Message
from ._registry import Registry
from ._transport import MIN_HSTS_MAX_AGE

__all__ = ["SECURITY_HEADERS", "check_live", "register"]

#: Headers every response of a secured service carries (OWASP Secure Headers Project,
#: REST Security Cheat Sheet), with the value required, if any.
SECURITY_HEADERS: dict[str, str | None] = {
    "x-content-type-options": "nosniff",
    "x-frame-options": None,
    "content-security-policy": None,
    "referrer-policy": None,
}
#: Headers that name the software serving the response.
_REVEALING = ("server", "x-powered-by", "x-aspnet-version")
_MAX_AGE = re.compile(r"(?:^|;)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


def check_live(context: CheckContext) -> Iterator[Message]:
    """What the service at ``--url`` answered (W090 to W094, E095, E096)."""
    probe = context.probe
    if probe is None:
        return
    if probe.error is not None:
        finding = LIVE_UNTRUSTED if probe.untrusted_certificate else LIVE_UNREACHABLE
        yield finding(probe.error, target=probe.url)
        return
    headers = probe.headers
    if probe.is_https:
        hsts = headers.get("strict-transport-security")
        if hsts is None:
            yield LIVE_NO_HSTS(f"{probe.url} answered without it", target=probe.url)
        else:
            match = _MAX_AGE.search(hsts)
            if match is None or int(match[1]) < MIN_HSTS_MAX_AGE:
                yield LIVE_HSTS_SHORT(f"Strict-Transport-Security: {hsts}", target=probe.url)
    if context.production:
        for path in probe.exposed_docs:
            yield LIVE_DOCS(f"{path} answers 200", target=probe.url.rstrip("/") + path)
    for name in _REVEALING:
        if headers.get(name):
            yield LIVE_SERVER_HEADER(f"{name}: {headers[name]}", target=probe.url)
    missing = [
        name
        for name, required in SECURITY_HEADERS.items()
        if name not in headers or (required and headers[name].strip().lower() != required)
    ]
    if missing:
        yield LIVE_HEADERS_MISSING(", ".join(missing), target=probe.url)


def register(registry: Registry) -> None:
    """Add the live check to ``registry``."""
    registry.register(check_live, "live")
