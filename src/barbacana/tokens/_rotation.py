"""Key rotation, one step at a time (DESIGN invariant 4).

The lifecycle is ``next`` → ``active`` → ``retiring`` → ``retired``. A key is
published as ``next`` one step before it signs, so every verifier that
refreshes its JWKS in between already knows it; the key it replaces keeps
verifying as ``retiring`` for ``retire_after`` seconds, which must be at least
the access-token lifetime plus the verifiers' leeway, so no valid token fails.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Literal

from ..errors import ConfigurationError
from ._keys import SigningKey, generate_signing_key
from .errors import InvalidKeyError

__all__ = ["rotate"]


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def rotate(
    ring_keys: Iterable[SigningKey],
    *,
    now: float,
    alg: str,
    retire_after: float | timedelta,
    ed25519_alg_name: Literal["Ed25519", "EdDSA"] = "Ed25519",
) -> list[SigningKey]:
    """One rotation step; returns the new key list and changes nothing else.

    - ``retiring`` keys whose ``retire_at`` has come become ``retired``;
    - if there is no ``next`` key, a new one for ``alg`` is created (published,
      not yet signing);
    - otherwise the oldest ``next`` key becomes ``active`` and the active key
      becomes ``retiring`` until ``now + retire_after``.

    A fresh deployment calls it twice: the first call creates a key, the second
    makes it sign. Persisting the result and swapping it into the
    :class:`~barbacana.tokens.KeyRing` is the caller's job.

    Raises:
        ConfigurationError: ``retire_after`` is negative.
        InvalidKeyError: the ``next`` key to promote has no private part.
    """
    grace = _seconds(retire_after)
    if grace < 0:
        raise ConfigurationError("retire_after must not be negative")
    keys = [
        key.with_state("retired")
        if key.state == "retiring" and key.retire_at is not None and key.retire_at <= now
        else key
        for key in ring_keys
    ]
    waiting = [key for key in keys if key.state == "next"]
    if not waiting:
        keys.append(
            generate_signing_key(alg, now=now, ed25519_alg_name=ed25519_alg_name, state="next")
        )
        return keys
    promoted = min(waiting, key=lambda key: key.created_at)
    if promoted.private_key is None:
        raise InvalidKeyError("the next key has no private part, so it cannot become active")
    result: list[SigningKey] = []
    for key in keys:
        if key is promoted:
            result.append(key.with_state("active", activated_at=now))
        elif key.state == "active":
            result.append(key.with_state("retiring", retire_at=now + grace))
        else:
            result.append(key)
    return result
