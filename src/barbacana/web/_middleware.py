"""The outermost ASGI layer of a secured app.

It owns what must hold for *every* response, errors included: the request id,
the security headers, the body-size limit, and a generic problem+json 500 when
something below fails unexpectedly (Starlette's own 500 would bypass the headers).

It also makes the app's methods honest (RFC 9110): ``HEAD`` is served for every
``GET`` route, and a 405's ``Allow`` lists every method of every route matching
the path, wherever the 405 came from (Starlette and FastAPI list only the route
they happened to try first).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import _context
from ._forwarded import client_address
from ._problem import PROBLEM_CONTENT_TYPE, internal_error_body, log_unexpected, problem_body
from ._routing import allow_header, route_serves, served_methods

__all__ = ["SecurityMiddleware"]

# A client-supplied request id is kept only if it is short and plain, so it can
# be logged and echoed without header or log injection.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# W3C Trace Context: version-traceid-parentid-flags, lowercase hex.
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _encode(pairs: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


class SecurityMiddleware:
    """Request id, security headers, body limit and last-resort 500, as plain ASGI.

    Args:
        app: The wrapped ASGI app.
        max_body_bytes: Larger bodies get 413 before the app sees them.
        hsts_max_age: ``Strict-Transport-Security`` max-age on HTTPS responses (0: off).
        trusted_proxies: Peers whose ``X-Forwarded-Proto`` is believed.
        frame_ancestors: CSP ``frame-ancestors`` value (``'none'`` forbids framing).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        hsts_max_age: int = 63_072_000,
        trusted_proxies: Iterable[IPv4Network | IPv6Network] = (),
        content_security_policy: str = "default-src 'none'; frame-ancestors 'none'",
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.trusted_proxies = tuple(trusted_proxies)
        headers = [
            # Stops MIME sniffing of JSON into HTML (OWASP secure headers).
            ("X-Content-Type-Options", "nosniff"),
            # Legacy clickjacking guard; CSP frame-ancestors is the modern one.
            ("X-Frame-Options", "DENY"),
            ("Content-Security-Policy", content_security_policy),
            # API answers carry nothing a referrer should leak to third parties.
            ("Referrer-Policy", "no-referrer"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
            ("Cross-Origin-Resource-Policy", "same-origin"),
        ]
        self._headers = _encode(headers)
        # RFC 6797 §7.2: HSTS is sent only over secure transport.
        self._hsts = (
            _encode([("Strict-Transport-Security", f"max-age={hsts_max_age}; includeSubDomains")])
            if hsts_max_age > 0
            else []
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        token = _context.request_id.set(request_id)
        trace_token = _context.traceparent.set(self._traceparent(scope))
        address_token = _context.client_address.set(client_address(scope, self.trusted_proxies))
        try:
            await self._handle(scope, receive, send, request_id)
        finally:
            _context.request_id.reset(token)
            _context.traceparent.reset(trace_token)
            _context.client_address.reset(address_token)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        scope.setdefault("state", {})["request_id"] = request_id
        extra = list(self._headers)
        extra.append((b"x-request-id", request_id.encode()))
        if self._is_https(scope):
            extra.extend(self._hsts)
        # Routing rewrites the scope in place (root_path, path_params): keep the
        # request as it arrived, to ask the routes again for a 405's Allow.
        routes = getattr(getattr(scope.get("app"), "router", None), "routes", None)
        probe: Scope = {
            "type": "http",
            "method": scope.get("method", ""),
            "path": scope.get("path", ""),
            "root_path": scope.get("root_path", ""),
            "headers": scope.get("headers", []),
        }

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                if message.get("status") == 405 and routes is not None:
                    headers = _with_allow(headers, routes, probe)
                present = {name for name, _ in headers}
                message = dict(message)
                message["headers"] = headers + [
                    (name, value) for name, value in extra if name not in present
                ]
            await send(message)

        too_large, receive = await self._limit_body(scope, receive)
        if too_large:
            await self._send_problem(send_with_headers, 413, "body_too_large", scope)
            return
        app_send: Send = send_with_headers
        if probe["method"] == "HEAD" and routes is not None and _head_as_get(routes, probe):
            # RFC 9110 §9.3.2: HEAD is GET without the content. Everything below
            # (routing, access, limits, audit) sees the GET it stands for.
            scope = {**scope, "method": "GET"}
            probe["method"] = "GET"
            app_send = _without_content(send_with_headers)
        try:
            await self.app(scope, receive, app_send)
        except Exception as exc:  # noqa: BLE001 -- last resort: a generic 500, details to the log only
            log_unexpected(exc)
            if not started:
                await self._send_raw(send_with_headers, 500, internal_error_body())

    async def _limit_body(self, scope: Scope, receive: Receive) -> tuple[bool, Receive]:
        length = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return True, receive
        if length is not None:
            # The server enforces that the body matches Content-Length.
            return length > self.max_body_bytes, receive
        if scope.get("method") not in _BODY_METHODS:
            return False, receive
        # Chunked body: read it up to the limit before the app runs, then replay it.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return False, _replay([message])
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body_bytes:
                return True, receive
            chunks.append(body)
            if not message.get("more_body", False):
                break
        return False, _replay(
            [{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive
        )

    async def _send_problem(self, send: Send, status: int, code: str, scope: Scope) -> None:
        import json

        title = "Content too large" if status == 413 else None
        body = problem_body(
            status,
            code=code,
            title=title,
            detail=f"The request body exceeds {self.max_body_bytes} bytes."
            if status == 413
            else None,
            instance=scope.get("path"),
        )
        await self._send_raw(send, status, json.dumps(body, separators=(",", ":")).encode())

    @staticmethod
    async def _send_raw(send: Send, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close") if status == 413 else (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _request_id(scope: Scope) -> str:
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                candidate: str = value.decode("latin-1")
                if _REQUEST_ID.match(candidate):
                    return candidate
                break
        return secrets.token_hex(16)

    @staticmethod
    def _traceparent(scope: Scope) -> str | None:
        for name, value in scope.get("headers", []):
            if name == b"traceparent":
                candidate = value.decode("latin-1").strip()
                return candidate if _TRACEPARENT.match(candidate) else None
        return None

    def _is_https(self, scope: Scope) -> bool:
        if scope.get("scheme") == "https":
            return True
        # Behind a TLS-terminating proxy, believe X-Forwarded-Proto from trusted peers only.
        if not self.trusted_proxies or not _from_trusted(scope, self.trusted_proxies):
            return False
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-proto":
                proto: bytes = value.split(b",")[-1].strip().lower()
                return proto == b"https"
        return False


def _with_allow(
    headers: list[tuple[bytes, bytes]], routes: Sequence[Any], probe: Scope
) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``Allow`` naming every method the path is served with (RFC 9110 §10.2.1).

    A 405 from a handler that did match the method (it refused for its own
    reasons) keeps its own ``Allow``, and so does a path whose routes cannot tell.
    """
    if route_serves(routes, probe):
        return headers
    methods = served_methods(routes, probe)
    if not methods:
        return headers
    allow = allow_header(methods).encode("latin-1")
    return [(name, value) for name, value in headers if name.lower() != b"allow"] + [
        (b"allow", allow)
    ]


def _head_as_get(routes: Sequence[Any], probe: Scope) -> bool:
    """True when no route serves ``HEAD`` at the path but one serves ``GET``."""
    if route_serves(routes, probe):
        return False
    return route_serves(routes, {**probe, "method": "GET"})


def _without_content(send: Send) -> Send:
    """A ``send`` that keeps the response's status and headers and drops its content."""

    async def send_head(message: Message) -> None:
        if message["type"] != "http.response.body":
            await send(message)
        elif not message.get("more_body", False):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return send_head


def _from_trusted(scope: Scope, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        peer = ip_address(client[0])
    except ValueError:
        return False
    return any(peer in network for network in networks)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
