"""Key rotation, one step at a time (DESIGN invariant 4).

The lifecycle is ``next`` → ``active`` → ``retiring`` → ``retired``. A key is
published as ``next`` one step before it signs, so every verifier that
refreshes its JWKS in between already knows it; the key it replaces keeps
verifying as ``retiring`` for ``retire_after`` seconds, which must be at least
the access-token lifetime plus the verifiers' leeway, so no valid token fails.

Changing the signing algorithm (``RS256`` → ``Ed25519``, say) is a rotation
like any other: the next key is created for the new algorithm, published, and
promoted one step later, while tokens of the old key verify until they expire.
A ``next`` key published for the old algorithm before the change never signs:
the step that finds it retires it (it has signed nothing, so no token depends
on it) and publishes a key for the new algorithm in its place.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Literal

from ..errors import ConfigurationError
from ._keys import SigningKey, generate_signing_key
from .errors import InvalidKeyError

__all__ = ["next_to_promote", "rotate"]


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _published_alg(alg: str, ed25519_alg_name: Literal["Ed25519", "EdDSA"] = "Ed25519") -> str:
    """The ``alg`` a key generated for ``alg`` is published with.

    ``EdDSA`` stays ``EdDSA``; ``Ed25519`` keys take ``ed25519_alg_name`` (RFC
    9864 §2.2 or the deprecated RFC 8037 name); other names are unchanged.
    """
    if alg == "Ed25519":
        return ed25519_alg_name
    return alg


def next_to_promote(
    ring_keys: Iterable[SigningKey],
    *,
    alg: str,
    ed25519_alg_name: Literal["Ed25519", "EdDSA"] = "Ed25519",
) -> SigningKey | None:
    """The ``next`` key the coming :func:`rotate` step would make active, if any.

    It is the oldest ``next`` key published for ``alg`` (under the name
    :func:`generate_signing_key` gives it). ``None`` means the step promotes nothing: it
    publishes a new key, so it cannot sign with a key verifiers do not know yet
    and needs no publication delay.
    """
    wanted = _published_alg(alg, ed25519_alg_name)
    waiting = [key for key in ring_keys if key.state == "next" and key.alg == wanted]
    return min(waiting, key=lambda key: key.created_at) if waiting else None


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
    - ``next`` keys published for another algorithm than ``alg`` (the setting
      changed since) become ``retired`` at once: they never signed;
    - if there is no ``next`` key for ``alg``, a new one is created (published,
      not yet signing);
    - otherwise the oldest ``next`` key becomes ``active`` and the active key
      becomes ``retiring`` until ``now + retire_after``, whatever its algorithm.

    A fresh deployment calls it twice: the first call creates a key, the second
    makes it sign; so does an algorithm change. Persisting the result and
    swapping it into the :class:`~barbacana.tokens.KeyRing` is the caller's job.

    Raises:
        ConfigurationError: ``retire_after`` is negative.
        InvalidKeyError: ``alg`` is not an algorithm new keys can have, or the
            ``next`` key to promote has no private part.
    """
    grace = _seconds(retire_after)
    if grace < 0:
        raise ConfigurationError("retire_after must not be negative")
    wanted = _published_alg(alg, ed25519_alg_name)
    keys: list[SigningKey] = []
    for key in ring_keys:
        if key.state == "retiring" and key.retire_at is not None and key.retire_at <= now:
            keys.append(key.with_state("retired"))
        elif key.state == "next" and key.alg != wanted:
            keys.append(key.with_state("retired", retire_at=now))
        else:
            keys.append(key)
    promoted = next_to_promote(keys, alg=alg, ed25519_alg_name=ed25519_alg_name)
    if promoted is None:
        keys.append(
            generate_signing_key(alg, now=now, ed25519_alg_name=ed25519_alg_name, state="next")
        )
        return keys
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
