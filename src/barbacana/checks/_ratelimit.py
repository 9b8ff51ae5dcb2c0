"""Rate-limit checks (OWASP API4:2023 "Unrestricted resource consumption"; ASVS 2.2.1).

Whether the login route is limited is decided by the limiter's own policy
matching (:class:`~barbacana.ratelimit.Policies`), for an anonymous caller
posting to the token route: the global policy alone does not count, as its
limits are sized for all traffic, not for password guessing.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from ..ratelimit import Policies
from ._catalogue import LOGIN_UNLIMITED, RATELIMIT_FAIL_OPEN, RATELIMIT_INVALID, RATELIMIT_OFF
from ._context import CheckContext
from ._messages import Message
from ._registry import Registry

__all__ = ["check_failure_mode", "check_login_limit", "register"]


def check_login_limit(context: CheckContext) -> Iterator[Message]:
    """Limiter off (W040), policies refused (E042), or POST on the token route unlimited (W041)."""
    settings = context.settings.ratelimit
    if not settings.enabled:
        yield RATELIMIT_OFF("ratelimit.enabled is false", target="ratelimit.enabled")
        return
    try:
        policies = Policies(settings)
    except ConfigurationError as exc:
        yield RATELIMIT_INVALID(exc.detail, target="ratelimit.policies")
        return
    route = urlsplit(context.settings.tokens.token_url).path or "/token"
    global_scope = settings.global_policy.name if settings.global_policy else None
    plan = policies.plan(route, "POST", settings.tiers[0])
    if not any(meter.scope != global_scope for meter in plan.meters):
        yield LOGIN_UNLIMITED(
            f"no policy limits POST {route} for the {settings.tiers[0]!r} tier",
            target="ratelimit.policies",
        )


def check_failure_mode(context: CheckContext) -> Iterator[Message]:
    """A shared store whose outage lifts the limits, in production (W043)."""
    settings = context.settings.ratelimit
    if not (context.production and settings.enabled and settings.store_url is not None):
        return
    policies = [*settings.policies, *([settings.global_policy] if settings.global_policy else [])]
    open_names = [p.name for p in policies if (p.failure_mode or settings.failure_mode) == "open"]
    if open_names:
        yield RATELIMIT_FAIL_OPEN(
            f"policies {', '.join(open_names)} admit every request while the store is down",
            target="ratelimit.failure_mode",
        )


def register(registry: Registry) -> None:
    """Add the rate-limit checks to ``registry``."""
    registry.register(check_login_limit, "ratelimit")
    registry.register(check_failure_mode, "ratelimit")
