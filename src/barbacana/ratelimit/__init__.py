"""Rate limiting: five algorithms, in-process and Redis stores, policies, headers.

The core (algorithms, stores, policies, the login guard) imports neither
FastAPI nor Starlette. The ASGI layer is :class:`RateLimitMiddleware`; the
per-route dependency :class:`RateLimit` and ``rate_limit_exception_handler``
load Starlette when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._algorithms import (
    ALGORITHMS,
    Algorithm,
    AlgorithmName,
    FixedWindow,
    LeakyBucket,
    SlidingWindowCounter,
    SlidingWindowLog,
    TokenBucket,
)
from ._base import Decision, FailureMode, Store, StoreHealth, store_from_url
from ._guard import Lockout, LoginGuard, MemoryLoginGuard, Verdict, login_guard_from_url
from ._headers import quota_headers
from ._limits import Limit, Meter, parse_limit
from ._policy import Identity, Plan, Policies, address_key, charge, identity_chain
from ._settings import DEFAULT_TIERS, LoginGuardSettings, PolicySettings, RateLimitSettings
from .errors import QUOTA_EXCEEDED_TYPE, LimiterUnavailable, QuotaExceeded
from .memory import MemoryStore

if TYPE_CHECKING:
    from ._dependency import RateLimit, rate_limit_exception_handler
    from ._guard_redis import RedisLoginGuard
    from ._middleware import Identify, RateLimitMiddleware
    from .redis import RedisStore

__all__ = [
    "ALGORITHMS",
    "DEFAULT_TIERS",
    "QUOTA_EXCEEDED_TYPE",
    "Algorithm",
    "AlgorithmName",
    "Decision",
    "FailureMode",
    "FixedWindow",
    "Identify",
    "Identity",
    "LeakyBucket",
    "Limit",
    "LimiterUnavailable",
    "Lockout",
    "LoginGuard",
    "LoginGuardSettings",
    "MemoryLoginGuard",
    "MemoryStore",
    "Meter",
    "Plan",
    "Policies",
    "PolicySettings",
    "QuotaExceeded",
    "RateLimit",
    "RateLimitMiddleware",
    "RateLimitSettings",
    "RedisLoginGuard",
    "RedisStore",
    "SlidingWindowCounter",
    "SlidingWindowLog",
    "Store",
    "StoreHealth",
    "TokenBucket",
    "Verdict",
    "address_key",
    "charge",
    "identity_chain",
    "login_guard_from_url",
    "parse_limit",
    "quota_headers",
    "rate_limit_exception_handler",
    "store_from_url",
]

_LAZY = {
    "RateLimit": "._dependency",
    "rate_limit_exception_handler": "._dependency",
    "RateLimitMiddleware": "._middleware",
    "Identify": "._middleware",
    "RedisStore": ".redis",
    "RedisLoginGuard": "._guard_redis",
}


def __getattr__(name: str) -> Any:
    """Load the ASGI layer and the Redis backends on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module, __name__), name)
