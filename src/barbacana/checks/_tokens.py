"""Token and signing-key checks (RFC 8725, RFC 7518 §3.2, DESIGN invariants 1 and 4).

Barbacana signs with asymmetric keys only and its verifier has no HMAC
algorithm on its allow-list, so an HMAC setting can only come from
elsewhere: a textbook ``SECRET_KEY``/``ALGORITHM=HS256`` pair left in the
environment, or another verifier of the same tokens. Either is reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

from ._catalogue import (
    HMAC_ALGORITHM,
    LONG_ACCESS_TTL,
    LONG_REFRESH_TTL,
    NOT_INSPECTED,
    OLD_SIGNING_KEY,
    PLAIN_KEY_URL,
    PUBLISH_DELAY,
    SHORT_SECRET,
    SYMMETRIC_SECRET,
)
from ._context import CheckContext
from ._messages import Message
from ._registry import Registry
from ._util import days, is_loopback_url, is_plain_http, when

__all__ = [
    "MAX_ACCESS_TTL",
    "MAX_REFRESH_TTL",
    "MIN_SECRET_BYTES",
    "check_hmac_environment",
    "check_key_endpoints",
    "check_key_publish_delay",
    "check_signing_key_age",
    "check_token_lifetimes",
    "register",
]

#: RFC 7518 §3.2: an HS256 key is at least as long as the SHA-256 output.
MIN_SECRET_BYTES = 32
MAX_ACCESS_TTL = timedelta(hours=1)
MAX_REFRESH_TTL = timedelta(days=30)

# Variables that hold an algorithm choice: JWT_ALGORITHM, ALGORITHM, BARBACANA_TOKENS_ALGORITHM...
_ALGORITHM_NAME = re.compile(r"(?:^|_)(?:ALG|ALGORITHMS?|JWT_ALG)$")
_HMAC = re.compile(r"\bHS(?:256|384|512)\b", re.IGNORECASE)
# Variables that can only be a JWT secret: JWT_SECRET, BARBACANA_JWT_SECRET, TOKEN_SIGNING_KEY...
_JWT_SECRET_NAME = re.compile(
    r"(?:^|_)(?:JWT|JWS|TOKENS?)_(?:SECRET|SECRET_KEY|KEY|SIGNING_KEY|SIGNING_SECRET|HMAC_KEY)$"
)
# A generic name that is a JWT secret when an HMAC algorithm is configured next to it.
_GENERIC_SECRET_NAME = re.compile(r"(?:^|_)SECRET_KEY$")


def check_hmac_environment(context: CheckContext) -> Iterator[Message]:
    """An HMAC algorithm or a symmetric JWT secret in the environment (E001, E002, W003)."""
    hmac_vars = sorted(
        name
        for name, value in context.environ.items()
        if _ALGORITHM_NAME.search(name.upper()) and _HMAC.search(value)
    )
    for name in hmac_vars:
        yield HMAC_ALGORITHM(f"{name} selects an HMAC algorithm", target=name)
    for name in sorted(context.environ):
        upper = name.upper()
        is_secret = _JWT_SECRET_NAME.search(upper) or (
            hmac_vars and _GENERIC_SECRET_NAME.search(upper)
        )
        value = context.environ[name]
        if not is_secret or not value:
            continue
        if len(value.encode()) < MIN_SECRET_BYTES:
            yield SHORT_SECRET(f"{name} holds fewer than {MIN_SECRET_BYTES} bytes", target=name)
        else:
            yield SYMMETRIC_SECRET(f"{name} looks like an HMAC signing secret", target=name)


def check_token_lifetimes(context: CheckContext) -> Iterator[Message]:
    """Access tokens over one hour (W004), refresh tokens over 30 days (W005)."""
    tokens = context.settings.tokens
    if tokens.access_ttl > MAX_ACCESS_TTL:
        yield LONG_ACCESS_TTL(
            f"tokens.access_ttl is {days(tokens.access_ttl)}", target="tokens.access_ttl"
        )
    if tokens.refresh_ttl > MAX_REFRESH_TTL:
        yield LONG_REFRESH_TTL(
            f"tokens.refresh_ttl is {days(tokens.refresh_ttl)}", target="tokens.refresh_ttl"
        )


def check_key_publish_delay(context: CheckContext) -> Iterator[Message]:
    """A next key may sign before every JWKS cache has refreshed once (E006)."""
    delay = context.settings.key.publish_delay
    refresh = context.settings.tokens.jwks_refresh_interval
    if delay < refresh:
        yield PUBLISH_DELAY(
            f"key.publish_delay is {delay.total_seconds():g} s but resource services refresh "
            f"their JWKS every {refresh.total_seconds():g} s",
            target="key.publish_delay",
        )


def check_key_endpoints(context: CheckContext) -> Iterator[Message]:
    """Keys or revocations fetched over plain HTTP off this machine, or in production (E008)."""
    tokens = context.settings.tokens
    urls = {
        "tokens.identity_url": tokens.identity_url,
        "tokens.jwks_url": tokens.endpoint("jwks"),
        "tokens.revocation_url": tokens.endpoint("revocations"),
    }
    for name, url in urls.items():
        if url and is_plain_http(url) and (context.production or not is_loopback_url(url)):
            yield PLAIN_KEY_URL(f"{name} is {url}", target=name)


def check_signing_key_age(context: CheckContext) -> Iterator[Message]:
    """The active key has signed for longer than ``key.rotation_interval`` (W007)."""
    if context.signing_keys is None:
        why = context.unread.get("signing_keys")
        if why:
            yield NOT_INSPECTED(f"signing keys: {why}", target="signing_keys")
        return
    active = [key for key in context.signing_keys if key.state == "active"]
    if not active:
        yield NOT_INSPECTED(
            "signing keys: the database holds no active key yet", target="signing_keys"
        )
        return
    interval = context.settings.key.rotation_interval
    for key in active:
        since = key.activated_at if key.activated_at is not None else key.created_at
        age = context.now - since
        if age > interval.total_seconds():
            yield OLD_SIGNING_KEY(
                f"key {key.kid} has signed since {when(since)} ({days(age)}; "
                f"key.rotation_interval is {days(interval)})",
                target=f"signing_keys/{key.kid}",
            )


def register(registry: Registry) -> None:
    """Add the token checks to ``registry``."""
    registry.register(check_hmac_environment, "tokens", "environment")
    registry.register(check_token_lifetimes, "tokens")
    registry.register(check_key_publish_delay, "tokens")
    registry.register(check_key_endpoints, "tokens")
    registry.register(check_signing_key_age, "tokens", "database")
