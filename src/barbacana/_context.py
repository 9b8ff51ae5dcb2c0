"""Per-request context shared by logs, audit events and outbound calls.

The web layer sets these at the start of each request; anything running inside
that request (a log line, an audit event, an outbound call) reads them.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["client_address", "request_id", "traceparent"]

#: The request's correlation id (``X-Request-ID``), as the client sent it or generated.
request_id: ContextVar[str | None] = ContextVar("barbacana_request_id", default=None)
#: The W3C ``traceparent`` header of the request, when present and well-formed.
traceparent: ContextVar[str | None] = ContextVar("barbacana_traceparent", default=None)
#: The client's address as resolved by the trusted-proxy rules.
client_address: ContextVar[str | None] = ContextVar("barbacana_client_address", default=None)
