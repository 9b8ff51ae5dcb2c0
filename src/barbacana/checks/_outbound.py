"""Outbound checks: the SSRF guard's test-only openings and plain HTTP (DESIGN invariant 11)."""

from __future__ import annotations

from collections.abc import Iterator

from ._catalogue import OUTBOUND_HTTP, OUTBOUND_TEST_ONLY, OUTBOUND_TEST_ONLY_PRODUCTION
from ._context import CheckContext
from ._messages import Message
from ._registry import Registry

__all__ = ["check_outbound", "register"]


def check_outbound(context: CheckContext) -> Iterator[Message]:
    """Test-only allowances (E080 in production, else W081); ``allow_http`` in production (W082)."""
    outbound = context.settings.outbound
    opened = [
        f"{name}={values}"
        for name, values in (
            ("outbound.test_only_allowed_cidrs", outbound.test_only_allowed_cidrs),
            ("outbound.test_only_allowed_ports", outbound.test_only_allowed_ports),
        )
        if values
    ]
    if opened:
        finding = OUTBOUND_TEST_ONLY_PRODUCTION if context.production else OUTBOUND_TEST_ONLY
        yield finding("; ".join(opened), target="outbound.test_only_allowed_cidrs")
    if context.production and outbound.allow_http:
        yield OUTBOUND_HTTP("outbound.allow_http is true", target="outbound.allow_http")


def register(registry: Registry) -> None:
    """Add the outbound check to ``registry``."""
    registry.register(check_outbound, "outbound")
