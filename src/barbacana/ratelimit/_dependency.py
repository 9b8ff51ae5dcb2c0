"""Rate limiting for a single FastAPI route, as a dependency.

::

    limiter = RateLimit("5/minute", "50/hour", store=store, name="export")

    @app.post("/exports", dependencies=[Depends(limiter)])
    async def export() -> ...: ...

    app.add_exception_handler(RateLimitError, rate_limit_exception_handler)

The dependency counts per identity, method and route template, sets the quota
fields on the response, and raises :class:`QuotaExceeded` (429) or
:class:`LimiterUnavailable` (503); ``rate_limit_exception_handler`` turns
those into problem+json with their ``Retry-After`` and quota fields.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from ..errors import ConfigurationError, RateLimitError
from ..web._forwarded import Network, client_address, parse_trusted_proxies
from ._algorithms import ALGORITHMS, AlgorithmName
from ._base import Decision, FailureMode, Store, check_cost
from ._headers import quota_headers
from ._limits import Limit, Meter, parse_limit
from ._middleware import Identify, problem_body, refusal
from ._policy import UNMATCHED, Identity, address_key
from .errors import LimiterUnavailable, QuotaExceeded

__all__ = ["RateLimit", "rate_limit_exception_handler"]


class RateLimit:
    """A dependency that limits one route; see the module docstring.

    Args:
        limits: ``"5/minute"``-style strings or :class:`Limit` objects (all apply).
        store: where counts live.
        name: quota policy name shown to clients.
        algorithm: one of the five algorithms.
        cost: units one request costs.
        failure_mode: what a store outage does.
        identify: the access layer's hook (as for the middleware).
        trusted_proxies: proxies whose ``X-Forwarded-For`` is believed.

    Raises:
        ConfigurationError: a limit, the cost or a proxy is invalid.
    """

    def __init__(
        self,
        *limits: str | Limit,
        store: Store,
        name: str = "route",
        algorithm: AlgorithmName = "sliding_window_counter",
        cost: int = 1,
        failure_mode: FailureMode = "fallback",
        identify: Identify | None = None,
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        parsed = list(dict.fromkeys(parse_limit(x) if isinstance(x, str) else x for x in limits))
        if not parsed:
            raise ConfigurationError("RateLimit needs at least one limit, e.g. '5/minute'")
        check_cost([Meter(name, "check", limit) for limit in parsed], cost)
        self._limits = parsed
        self._name = name
        self._store = store
        self._algorithm = ALGORITHMS[algorithm]
        self._cost = cost
        self._failure_mode = failure_mode
        self._identify = identify
        self._trusted: tuple[Network, ...] = parse_trusted_proxies(trusted_proxies)
        self._meters: dict[str, tuple[Meter, ...]] = {}

    def _meters_for(self, scope: str) -> tuple[Meter, ...]:
        meters = self._meters.get(scope)
        if meters is None:
            one = len(self._limits) == 1
            meters = tuple(
                Meter(self._name if one else f"{self._name}-{i}", scope, limit)
                for i, limit in enumerate(self._limits, 1)
            )
            if len(self._meters) < 4096:
                self._meters[scope] = meters
        return meters

    async def __call__(self, request: Request, response: Response) -> Decision:
        scope = request.scope
        key: str | None = None
        if self._identify is not None:
            who = await self._identify(scope)
            key = who.key if isinstance(who, Identity) else who
        if not key:
            key = address_key(client_address(scope, self._trusted))
        route = getattr(scope.get("route"), "path", UNMATCHED)
        meters = self._meters_for(f"{self._name}|{request.method}|{route}")
        decision = await self._store.hit(
            key, meters, algorithm=self._algorithm, cost=self._cost, failure_mode=self._failure_mode
        )
        if not decision.allowed:
            raise refusal(decision)
        for field, value in quota_headers(decision):
            response.headers.append(field, value)
        return decision


async def rate_limit_exception_handler(request: Request, exc: Exception) -> Response:
    """Answer a :class:`~barbacana.errors.RateLimitError` as problem+json with its fields.

    Register it with ``app.add_exception_handler(RateLimitError, ...)``.
    """
    if not isinstance(exc, QuotaExceeded | LimiterUnavailable):
        exc = LimiterUnavailable(exc.detail if isinstance(exc, RateLimitError) else None)
    return Response(
        problem_body(exc, request.url.path),
        status_code=exc.status,
        headers={**exc.headers, "Cache-Control": "no-store"},
        media_type="application/problem+json",
    )
