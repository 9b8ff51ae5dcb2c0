"""CORS checks (Fetch Standard §3.2; DESIGN invariant 7).

The policy is validated exactly as the service validates it at start-up
(:meth:`~barbacana.web.cors.CorsPolicy.from_settings`), so a configuration
this check passes is one the service accepts; what the service accepts but a
reviewer should not is reported on top.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import ConfigurationError
from ..web.cors import CorsPolicy
from ._catalogue import (
    CORS_HTTP_CREDENTIALS,
    CORS_INVALID,
    CORS_MANY_ORIGINS,
    CORS_WILDCARD,
    CORS_WILDCARD_CREDENTIALS,
)
from ._context import CheckContext
from ._messages import Message
from ._registry import Registry
from ._util import is_plain_http

__all__ = ["MAX_CREDENTIALED_ORIGINS", "check_cors", "register"]

#: More origins than this receiving credentials is reported (W034).
MAX_CREDENTIALED_ORIGINS = 10


def check_cors(context: CheckContext) -> Iterator[Message]:
    """Wildcards (E030, W031), refused entries (E032), broad credentialed origins (E033, W034)."""
    cors = context.settings.cors
    if not cors.origins:
        return
    try:
        policy = CorsPolicy.from_settings(cors)
    except ConfigurationError as exc:
        if "*" in cors.origins and cors.allow_credentials:
            yield CORS_WILDCARD_CREDENTIALS(
                "cors.origins contains '*' and cors.allow_credentials is true",
                target="cors.origins",
            )
        else:
            yield CORS_INVALID(exc.detail, target="cors.origins")
        return
    if policy.any_origin:
        yield CORS_WILDCARD("cors.origins is '*'", target="cors.origins")
        return
    if not policy.allow_credentials:
        return
    if context.production:
        for origin in sorted(policy.origins):
            if is_plain_http(origin):
                yield CORS_HTTP_CREDENTIALS(f"{origin} is allowed", target="cors.origins")
    if len(policy.origins) > MAX_CREDENTIALED_ORIGINS:
        yield CORS_MANY_ORIGINS(
            f"{len(policy.origins)} origins (more than {MAX_CREDENTIALED_ORIGINS})",
            target="cors.origins",
        )


def register(registry: Registry) -> None:
    """Add the CORS check to ``registry``."""
    registry.register(check_cors, "web", "cors")
