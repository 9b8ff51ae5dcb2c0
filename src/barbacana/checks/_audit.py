"""Audit checks (OWASP A09:2021 "Security logging and monitoring failures")."""

from __future__ import annotations

from collections.abc import Iterator

from ._catalogue import AUDIT_CONTINUE, AUDIT_OFF
from ._context import CheckContext
from ._messages import Message
from ._registry import Registry

__all__ = ["check_audit", "register"]


def check_audit(context: CheckContext) -> Iterator[Message]:
    """The trail is off (E050), or actions proceed when it cannot be written (W051)."""
    audit = context.settings.audit
    if not audit.enabled:
        yield AUDIT_OFF("audit.enabled is false", target="audit.enabled")
        return
    if audit.on_failure == "continue":
        yield AUDIT_CONTINUE("audit.on_failure is continue", target="audit.on_failure")


def register(registry: Registry) -> None:
    """Add the audit check to ``registry``."""
    registry.register(check_audit, "audit")
