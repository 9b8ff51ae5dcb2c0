"""``AuditMiddleware``: an access record for every HTTP request (plain ASGI).

At ``http.response.start`` -- before the status line reaches the client --
it records who (the ``identify`` hook), what (method and route template, never
the query string), and the status:

- 401 and 403 as ``access.denied`` and 429 as ``ratelimit.exceeded``, durably:
  if the trail cannot be written and refuses, the client gets a 503
  problem+json instead of the original response (a 500 when the store refused
  that one event's content: retrying would not help);
- every other status as a bulk ``access.request`` event (group-committed).

The route template comes from ``scope["route"].path`` (set by the router, so
it is known once the app has routed the request); unrouted requests record
the raw path, capped. An app can put an error ``code`` in
``scope["state"]["audit_reason"]`` to record why a request was refused.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from .. import _context
from ._events import Actor
from ._trail import AuditTrail
from .errors import AuditEventRefusedError, AuditUnavailableError

__all__ = ["AUDIT_REASON_KEY", "AuditMiddleware", "Identify"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Who made the request, from the scope (sync or async); ``None`` means anonymous.
Identify = Callable[[Scope], Actor | Awaitable[Actor | None] | None]

#: ``scope["state"]`` key where an app may leave the error code of a refusal.
AUDIT_REASON_KEY = "audit_reason"

_DURABLE = {
    401: ("access.denied", "unauthenticated"),
    403: ("access.denied", "forbidden"),
    429: ("ratelimit.exceeded", "rate_limited"),
}
_MAX_PATH = 256


class AuditMiddleware:
    """Record an audit event for every HTTP request.

    Args:
        app: The ASGI application.
        trail: Where events go.
        identify: ``identify(scope) -> Actor | None`` (may be async), called at
            response start, when authentication has run and left its result in
            ``scope["state"]``.
        exclude_paths: Exact paths not recorded (health checks).
    """

    def __init__(
        self,
        app: ASGIApp,
        trail: AuditTrail,
        *,
        identify: Identify | None = None,
        exclude_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.trail = trail
        self.identify = identify
        self.exclude_paths = frozenset(exclude_paths)
        self._unavailable_body = _problem(
            AuditUnavailableError("the audit trail is unavailable; try again later")
        )
        self._refused_body = _problem(
            AuditEventRefusedError("the audit event of this request could not be stored")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exclude_paths:
            await self.app(scope, receive, send)
            return
        started = False
        refused = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started, refused
            if message["type"] == "http.response.start" and not started:
                started = True
                try:
                    await self._record(scope, int(message["status"]))
                except AuditUnavailableError as exc:
                    refused = True
                    await self._send_unavailable(send, exc)
                    return
            if refused:
                return  # the original response is replaced by the 503
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            if not started:
                started = True
                # The app's own error matters more than a failed audit write here.
                with contextlib.suppress(AuditUnavailableError):
                    await self._record(scope, 500)
            raise

    async def _actor(self, scope: Scope) -> Actor:
        address = _context.client_address.get()
        if address is None and scope.get("client"):
            address = scope["client"][0]
        actor: Actor | None = None
        if self.identify is not None:
            result = self.identify(scope)
            actor = await result if inspect.isawaitable(result) else result
        if actor is None:
            return Actor.anonymous(address=address)
        if actor.address is None and address is not None:
            actor = Actor(actor.type, actor.id, actor.name, address)
        return actor

    async def _record(self, scope: Scope, status: int) -> None:
        method = scope.get("method", "GET")
        route = getattr(scope.get("route"), "path", None)
        template = route if isinstance(route, str) else None
        path = template or str(scope.get("path", ""))[:_MAX_PATH]
        details = {"method": method, "status": status, "route": template}
        state = scope.get("state")
        reason = state.get(AUDIT_REASON_KEY) if isinstance(state, dict) else None
        actor = await self._actor(scope)
        resource = f"{method} {path}"
        if status in _DURABLE:
            action, default_reason = _DURABLE[status]
            await self.trail.record(
                action,
                actor=actor,
                outcome="denied",
                resource=resource,
                reason=reason or default_reason,
                details=details,
            )
        else:
            await self.trail.record_access(
                actor=actor,
                outcome="success" if status < 400 else "failure",
                resource=resource,
                reason=reason,
                details=details,
            )

    async def _send_unavailable(self, send: Send, exc: AuditUnavailableError) -> None:
        refused = isinstance(exc, AuditEventRefusedError)
        body = self._refused_body if refused else self._unavailable_body
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if not refused:
            headers.append((b"retry-after", b"5"))
        status = AuditEventRefusedError.status if refused else AuditUnavailableError.status
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _problem(error: AuditUnavailableError) -> bytes:
    """The RFC 9457 body of an audit failure (fixed text: nothing of the request in it)."""
    return json.dumps(
        {
            "type": "about:blank",
            "title": error.title,
            "status": error.status,
            "detail": error.detail,
            "code": error.code,
        }
    ).encode()
