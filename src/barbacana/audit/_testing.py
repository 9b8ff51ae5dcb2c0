"""``capture_audit()``: see the audit events your code records, without a database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ._events import AuditEvent

__all__ = ["capture_audit"]

_captures: list[list[AuditEvent]] = []


def publish(event: AuditEvent) -> None:
    """Hand a processed event to every active :func:`capture_audit` block."""
    for captured in _captures:
        captured.append(event)


@contextmanager
def capture_audit() -> Iterator[list[AuditEvent]]:
    """Collect every event any trail records inside the block, after redaction.

    Like :func:`structlog.testing.capture_logs`: the list fills as events are
    recorded (durable or bulk), already stamped and redacted, so a test can
    assert both what was recorded and that no secret was::

        with capture_audit() as events:
            await client.post("/token", data=...)
        assert events[-1].action == "auth.login.failed"

    Events still go to the trail's store as usual; use
    ``AuditTrail.in_memory()`` for a trail without a database.
    """
    captured: list[AuditEvent] = []
    _captures.append(captured)
    try:
        yield captured
    finally:
        _captures.remove(captured)
