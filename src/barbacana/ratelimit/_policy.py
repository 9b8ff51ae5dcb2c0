"""Who is limited, and by which limits: identities, tiers and compiled policies.

The identity is a key chain: the authenticated principal's subject, else the
API key's id, else the client's address (an IPv6 client by its /64, the
block one subscriber usually holds, so rotating addresses inside it does not
reset a count). Its tier (``anonymous`` < ``user`` < ``admin``, or plan names)
picks the limits.

:class:`Policies` compiles :class:`RateLimitSettings` once; ``plan(route,
method, tier)`` then answers from a cache which meters a request charges.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import ConfigurationError
from ._algorithms import ALGORITHMS, Algorithm
from ._base import Decision, FailureMode, Store
from ._limits import Limit, Meter, parse_limit
from ._settings import DEFAULT_TIERS, PolicySettings, RateLimitSettings

__all__ = [
    "UNMATCHED",
    "Identity",
    "Part",
    "Plan",
    "Policies",
    "address_key",
    "charge",
    "identity_chain",
]

#: The route template of requests that match no route: they share one bucket.
UNMATCHED = "unmatched"

#: Methods cached by :meth:`Policies.plan`; any other method is planned on each request.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request is counted against, and at which tier."""

    key: str
    tier: str = "anonymous"


def address_key(address: str) -> str:
    """The identity key of a client address: ``addr:<IPv4>`` or ``addr:<IPv6 /64>``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"addr:{address}"
    if isinstance(ip, ipaddress.IPv6Address):
        return f"addr:{ipaddress.IPv6Network((int(ip) >> 64 << 64, 64))}"
    return f"addr:{ip}"


def identity_chain(
    *,
    address: str,
    subject: str | None = None,
    api_key_id: str | None = None,
    roles: Iterable[str] = (),
    tiers: Sequence[str] = DEFAULT_TIERS,
) -> Identity:
    """The identity of a request: subject, else API key id, else address.

    The tier is the highest of ``tiers`` found among ``roles``; an authenticated
    caller with none of them gets the second tier (``user``), an anonymous one
    the first.
    """
    held = set(roles)
    ranked = [t for t in tiers if t in held]
    if subject:
        key = f"sub:{subject}"
    elif api_key_id:
        key = f"apikey:{api_key_id}"
    else:
        return Identity(address_key(address), ranked[-1] if ranked else tiers[0])
    default = tiers[1] if len(tiers) > 1 else tiers[0]
    return Identity(key, ranked[-1] if ranked else default)


@dataclass(frozen=True, slots=True)
class Part:
    """Meters charged together, atomically, with one algorithm."""

    algorithm: type[Algorithm]
    failure_mode: FailureMode
    meters: tuple[Meter, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """What one request charges: parts (usually one), and its cost."""

    parts: tuple[Part, ...]
    cost: int

    @property
    def meters(self) -> tuple[Meter, ...]:
        return tuple(m for p in self.parts for m in p.meters)


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    route: str | None
    methods: frozenset[str] | None
    default: tuple[Limit, ...]
    by_tier: dict[str, tuple[Limit, ...]]
    cost: int
    algorithm: type[Algorithm]
    failure_mode: FailureMode

    def applies(self, route: str, method: str) -> bool:
        return (self.route is None or self.route == route) and (
            self.methods is None or method in self.methods
        )

    def meters(self, scope: str, tier: str) -> tuple[Meter, ...]:
        limits = self.by_tier.get(tier, self.default)
        return tuple(
            Meter(self.name if len(limits) == 1 else f"{self.name}-{_label(limit)}", scope, limit)
            for limit in limits
        )


def _label(limit: Limit) -> str:
    w = limit.window
    for size, unit in ((86_400, "d"), (3600, "h"), (60, "m")):
        if w >= size and w % size == 0:
            return f"{int(w // size)}{unit}"
    return f"{w:g}s"


def _limits(texts: Sequence[str]) -> tuple[Limit, ...]:
    """Parsed limits without repeats (two equal limits on one scope are one counter)."""
    return tuple(dict.fromkeys(parse_limit(t) for t in texts))


def _compile(
    policy: PolicySettings, algorithm: str, failure_mode: FailureMode, *, scoped: bool
) -> _Rule:
    methods = None if "*" in policy.methods else frozenset(policy.methods)
    return _Rule(
        name=policy.name,
        route=None if policy.route == "*" or not scoped else policy.route,
        methods=methods,
        default=_limits(policy.limits),
        by_tier={tier: _limits(ts) for tier, ts in policy.tiers.items()},
        cost=policy.cost,
        algorithm=ALGORITHMS[policy.algorithm or algorithm],
        failure_mode=policy.failure_mode or failure_mode,
    )


class Policies:
    """Compiled policies: which meters a (route, method, tier) charges.

    Raises:
        ConfigurationError: a policy's cost exceeds the global policy's amounts.
    """

    def __init__(self, settings: RateLimitSettings) -> None:
        alg, mode = settings.algorithm, settings.failure_mode
        self.tiers = tuple(settings.tiers)
        self._rules = [_compile(p, alg, mode, scoped=True) for p in settings.policies]
        self._global = (
            _compile(settings.global_policy, alg, mode, scoped=False)
            if settings.global_policy is not None
            else None
        )
        if self._global is not None:
            every = [self._global.default, *self._global.by_tier.values()]
            smallest = min((limit.amount for group in every for limit in group), default=None)
            for rule in self._rules:
                if smallest is not None and rule.cost > smallest:
                    raise ConfigurationError(
                        f"policy {rule.name!r} costs {rule.cost}, more than the global "
                        f"policy allows ({smallest})"
                    )
        self._cache: dict[tuple[str, str, str], Plan] = {}

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> Policies:
        """Compile settings (the same as the constructor)."""
        return cls(settings)

    def plan(self, route: str, method: str, tier: str) -> Plan:
        """The meters a request to ``route`` (its template) with ``method`` charges."""
        cache_key = (route, method, tier)
        plan = self._cache.get(cache_key)
        if plan is None:
            plan = self._plan(route, method, tier)
            if method in _KNOWN_METHODS and len(self._cache) < 65_536:
                self._cache[cache_key] = plan
        return plan

    def _plan(self, route: str, method: str, tier: str) -> Plan:
        rule = next((r for r in self._rules if r.applies(route, method)), None)
        groups: dict[tuple[type[Algorithm], FailureMode], list[Meter]] = {}
        cost = 1
        if rule is not None:
            cost = rule.cost
            meters = rule.meters(f"{rule.name}|{method}|{route}", tier)
            if meters:
                groups.setdefault((rule.algorithm, rule.failure_mode), []).extend(meters)
        if self._global is not None:
            meters = self._global.meters(self._global.name, tier)
            if meters:
                groups.setdefault((self._global.algorithm, self._global.failure_mode), []).extend(
                    meters
                )
        return Plan(tuple(Part(a, f, tuple(ms)) for (a, f), ms in groups.items()), cost)


async def charge(store: Store, identity: str, plan: Plan) -> Decision:
    """Charge a plan's parts in order; stop at the first refusal (later parts are not charged).

    Raises:
        LimiterUnavailable: the store is down and a part fails closed.
    """
    if len(plan.parts) == 1:
        part = plan.parts[0]
        return await store.hit(
            identity,
            part.meters,
            algorithm=part.algorithm,
            cost=plan.cost,
            failure_mode=part.failure_mode,
        )
    decisions: list[Decision] = []
    for part in plan.parts:
        decision = await store.hit(
            identity,
            part.meters,
            algorithm=part.algorithm,
            cost=plan.cost,
            failure_mode=part.failure_mode,
        )
        decisions.append(decision)
        if not decision.allowed:
            break
    known = all(d.remaining for d in decisions)
    return Decision(
        all(d.allowed for d in decisions),
        tuple(m for d in decisions for m in d.meters),
        tuple(r for d in decisions for r in d.remaining) if known else (),
        tuple(r for d in decisions for r in d.reset_ms) if known else (),
        tuple(r for d in decisions for r in d.retry_ms) if known else (),
        decisions[-1].source,
    )
