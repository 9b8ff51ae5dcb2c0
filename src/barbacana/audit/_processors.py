"""The processor chain of the audit trail (like structlog's processors).

Each processor is a callable from event to event::

    stamp  → time, service, request id, traceparent, client address
    redact → secrets cut out of details and strings; blind-index fields HMAC'ed
    ─── then, inside the store's locked append ───
    number → hash (RFC 6962 leaf hash, :func:`barbacana.audit.hash_event`) → store

Stamping and redaction run in ``record()`` itself, in the caller's context, so
the request id and client address are those of the request being audited.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import _context
from .._clock import Clock
from ._events import Actor, AuditEvent, format_timestamp
from ._redact import Redactor

__all__ = ["Processor", "Redact", "Stamp"]

#: One step of the chain.
Processor = Callable[[AuditEvent], AuditEvent]

#: The kind before the first ``:`` of a resource (``user``, ``apikey``, ``secret``...).
_RESOURCE_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")

_LIMITS = {"resource": 512, "reason": 256, "request_id": 128, "traceparent": 128, "id": 256}


def _cap(value: str | None, limit: int) -> str | None:
    if value is None or len(value) <= limit:
        return value
    return value[:limit] + "…"


class Stamp:
    """Set the timestamp (from the injected clock), service and correlation ids.

    Values already on the event win over the request context.
    """

    def __init__(self, clock: Clock, service: str) -> None:
        self._clock = clock
        self._service = service

    def __call__(self, event: AuditEvent) -> AuditEvent:
        actor = event.actor
        if actor.address is None:
            address = _context.client_address.get()
            if address is not None:
                actor = Actor(actor.type, actor.id, actor.name, address)
        return event.evolve(
            timestamp=event.timestamp or format_timestamp(round(self._clock() * 1_000_000)),
            service=event.service or self._service,
            request_id=event.request_id or _context.request_id.get(),
            traceparent=event.traceparent or _context.traceparent.get(),
            actor=actor,
        )


class Redact:
    """Cut secrets out of the event; keep blind-index fields only as keyed HMACs.

    Args:
        redactor: The redaction rules (shared with the logs).
        blind_index: The keyed hash for ``blind_fields`` (``AuditKey.blind_index``).
        blind_fields: Detail field names (any depth) stored only as HMACs.
    """

    def __init__(
        self,
        redactor: Redactor,
        *,
        blind_index: Callable[[str], str] | None = None,
        blind_fields: Iterable[str] = (),
    ) -> None:
        self._redactor = redactor
        self._blind_index = blind_index
        self._blind_fields = frozenset(f.casefold() for f in blind_fields)

    def _blind(self, value: Any) -> Any:
        if self._blind_index is None or not self._blind_fields:
            return value
        if isinstance(value, Mapping):
            return {
                k: (
                    self._blind_index(str(v))
                    if isinstance(k, str) and k.casefold() in self._blind_fields and v is not None
                    else self._blind(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._blind(v) for v in value]
        return value

    def __call__(self, event: AuditEvent) -> AuditEvent:
        text = self._redactor.redact_text

        def clean(value: str | None, limit: int) -> str | None:
            return None if value is None else _cap(text(value), limit)

        def clean_resource(value: str | None) -> str | None:
            # "apikey:<id>" and "secret:<ref>" name a kind, not a secret: only what
            # follows the kind is redacted (a credential there is still cut out).
            if value is None:
                return None
            kind, colon, rest = value.partition(":")
            if colon and _RESOURCE_KIND.fullmatch(kind):
                return _cap(f"{kind}:{text(rest)}", _LIMITS["resource"])
            return clean(value, _LIMITS["resource"])

        actor = event.actor
        actor = Actor(
            actor.type,
            clean(actor.id, _LIMITS["id"]),
            clean(actor.name, _LIMITS["id"]),
            clean(actor.address, _LIMITS["id"]),
        )
        return event.evolve(
            actor=actor,
            resource=clean_resource(event.resource),
            reason=clean(event.reason, _LIMITS["reason"]),
            request_id=clean(event.request_id, _LIMITS["request_id"]),
            traceparent=clean(event.traceparent, _LIMITS["traceparent"]),
            details=self._redactor.mapping(self._blind(event.details)),
        )
