"""Small helpers shared by the checks."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

__all__ = ["days", "is_loopback_url", "is_plain_http", "truthy", "when"]


def is_plain_http(url: str) -> bool:
    """``url`` is an ``http://`` URL."""
    return urlsplit(url).scheme.lower() == "http"


def is_loopback_url(url: str) -> bool:
    """``url``'s host is ``localhost`` or a loopback address (traffic never leaves the machine)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def truthy(value: str | None) -> bool:
    """An environment flag that is set to a true value (``1``, ``true``, ``yes``, ``on``)."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def days(value: timedelta | float) -> str:
    """A duration in days, for messages (``"14 days"``, ``"1.5 days"``, ``"2 hours"``)."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if abs(seconds) < 86_400:
        return f"{seconds / 3600:.3g} hours"
    return f"{seconds / 86_400:.3g} days"


def when(seconds: float) -> str:
    """UNIX seconds as an ISO 8601 UTC time."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
