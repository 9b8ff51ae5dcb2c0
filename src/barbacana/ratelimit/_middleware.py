"""The ASGI layer: a plain middleware that limits every HTTP request.

It runs before routing, so it limits what a dependency could not: 404s,
405s and requests that fail validation. It finds the route template itself,
asking the Starlette/FastAPI app in ``scope["app"]`` which route matches
(the same ``route.matches(scope)`` the router will call next), so a limit
attaches to ``/orders/{order_id}`` and ``GET``, not to the raw path: ``/orders/``,
``//orders``, ``/ORDERS`` or ``/orders?x=1`` either match the same template or
match none, and every unmatched path shares one ``unmatched`` bucket.

Every limited response, errors included, carries ``RateLimit-Policy``,
``RateLimit`` and ``X-RateLimit-*``; a refusal is a 429 problem+json (RFC 9457)
of type ``quota-exceeded`` with ``Retry-After``; a store outage under a
``closed`` policy is a 503 problem+json with ``Retry-After``, never a 500.

This module imports neither Starlette nor FastAPI: routes are duck-typed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from ..web._forwarded import Network, client_address, parse_trusted_proxies
from ..web._routing import concrete_routes
from ._base import Decision, Store
from ._headers import quota_headers
from ._policy import UNMATCHED, Identity, Policies, address_key, charge
from ._settings import RateLimitSettings
from .errors import QUOTA_EXCEEDED_TYPE, LimiterUnavailable, QuotaExceeded

__all__ = ["Identify", "RateLimitMiddleware", "problem_body", "route_template"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The access layer's hook: who is calling? An :class:`Identity`, a key string
#: (counted at the ``user`` tier), or ``None`` for "anonymous, use the address".
Identify = Callable[[Scope], Awaitable[Identity | str | None]]

#: ``scope["state"]`` entry where the decision is left for handlers.
STATE_KEY = "barbacana.ratelimit"

_FULL, _PARTIAL = 2, 1  # starlette.routing.Match values


def route_template(scope: Scope) -> str:
    """The template of the route that will serve ``scope``, or ``"unmatched"``.

    A full match wins; else the first partial match (right path, wrong method:
    the app will answer 405 and that answer is limited under the route too).
    Mounted apps are searched with the mount's path as prefix.
    """
    router = getattr(scope.get("app"), "router", None)
    routes = getattr(router, "routes", None)
    if routes is None:
        return UNMATCHED
    return _match(routes, scope, "") or UNMATCHED


def _match(routes: Sequence[Any], scope: Scope, prefix: str) -> str | None:
    partial = None
    for route in concrete_routes(routes):
        match, child = route.matches(scope)
        if match.value == _FULL:
            path = prefix + getattr(route, "path", "")
            nested = getattr(route, "routes", None)
            if nested is None:
                return path
            return _match(nested, {**scope, **child}, path) or f"{path}/{{path}}"
        if match.value == _PARTIAL and partial is None:
            partial = prefix + getattr(route, "path", "")
    return partial


def problem_body(exc: QuotaExceeded | LimiterUnavailable, instance: str) -> bytes:
    """The RFC 9457 problem+json body for a refusal or an outage."""
    problem = {
        "type": QUOTA_EXCEEDED_TYPE if isinstance(exc, QuotaExceeded) else "about:blank",
        "title": exc.title if isinstance(exc, QuotaExceeded) else "Service Unavailable",
        "status": exc.status,
        "detail": exc.detail,
        "instance": instance,
        "code": exc.code,
    }
    return json.dumps(problem, separators=(",", ":")).encode()


def refusal(decision: Decision) -> QuotaExceeded:
    """The error for a refused decision, naming the meter that refused."""
    names = [m.name for m, r in zip(decision.meters, decision.retry_ms, strict=True) if r > 0]
    names = names or [m.name for m in decision.meters]
    seconds = decision.retry_after
    return QuotaExceeded(
        f"Quota {names[0]!r} is exhausted; retry after {seconds} second{'s' * (seconds != 1)}.",
        retry_after=seconds,
        headers=dict(quota_headers(decision)),
    )


class RateLimitMiddleware:
    """Limit every HTTP request by the configured policies.

    Args:
        app: the ASGI app to protect.
        policies: compiled :class:`Policies`, or the settings to compile.
        store: where counts live (:class:`MemoryStore`, :class:`RedisStore`).
        identify: the access layer's hook naming the principal; without it,
            or when it answers ``None``, requests count against the client address.
        trusted_proxies: proxies whose ``X-Forwarded-For`` is believed (CIDRs).

    Raises:
        ConfigurationError: a trusted proxy is not an address or CIDR block.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        policies: Policies | RateLimitSettings,
        store: Store,
        identify: Identify | None = None,
        trusted_proxies: Sequence[str | Network] = (),
    ) -> None:
        self.app = app
        self.policies = policies if isinstance(policies, Policies) else Policies(policies)
        self.store = store
        self._identify = identify
        self._trusted: tuple[Network, ...] = tuple(
            p for p in trusted_proxies if not isinstance(p, str)
        ) + parse_trusted_proxies(p for p in trusted_proxies if isinstance(p, str))
        self._anonymous = self.policies.tiers[0]
        self._user = self.policies.tiers[1] if len(self.policies.tiers) > 1 else self._anonymous

    async def identity(self, scope: Scope) -> Identity:
        """Who ``scope`` counts against: the hook's answer, else the client address."""
        if self._identify is not None:
            who = await self._identify(scope)
            if isinstance(who, Identity):
                return who
            if who:
                return Identity(who, self._user)
        return Identity(address_key(client_address(scope, self._trusted)), self._anonymous)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        who = await self.identity(scope)
        plan = self.policies.plan(route_template(scope), scope["method"], who.tier)
        if not plan.parts:
            await self.app(scope, receive, send)
            return
        try:
            decision = await charge(self.store, who.key, plan)
        except LimiterUnavailable as exc:
            policy = [(k, v) for k, v in quota_headers(_unknown(plan.meters)) if k != "Retry-After"]
            await _problem(send, exc, scope, [*policy, *exc.headers.items()])
            return
        if not decision.allowed:
            refused = refusal(decision)
            await _problem(send, refused, scope, list(refused.headers.items()))
            return
        scope.setdefault("state", {})[STATE_KEY] = decision
        extra = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in quota_headers(decision)
        ]

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_quota)


def _unknown(meters: tuple[Any, ...]) -> Decision:
    return Decision(True, meters, (), (), (), "open")


async def _problem(
    send: Send,
    exc: QuotaExceeded | LimiterUnavailable,
    scope: Scope,
    headers: list[tuple[str, str]],
) -> None:
    body = problem_body(exc, scope.get("path", ""))
    raw = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers),
    ]
    await send({"type": "http.response.start", "status": exc.status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
