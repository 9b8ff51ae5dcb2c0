"""Issuing RFC 9068 access tokens."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from .._clock import Clock, system_clock
from ..errors import ConfigurationError
from ._b64 import b64url_encode
from ._ring import KeyRing

__all__ = ["IssuedToken", "TokenIssuer"]

# Claims the issuer sets itself; ``extra`` may not replace them.
_RESERVED = frozenset(
    {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "roles", "sid"}
)


@dataclass(frozen=True)
class IssuedToken:
    """A signed access token, its claims, and its lifetime in seconds (RFC 6749 §5.1)."""

    token: str = field(repr=False)
    claims: Mapping[str, Any]
    expires_in: int


def _compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class TokenIssuer:
    """Signs access tokens with the ring's active key (RFC 9068 §2).

    The header is ``{"alg", "kid", "typ": "at+jwt"}``; the claims are ``iss``,
    ``sub``, ``aud``, ``exp``, ``iat``, ``nbf``, ``jti`` (128 random bits),
    ``client_id``, ``scope`` (space-separated), ``roles`` and, for tokens that
    come from a refresh-token family, ``sid``. Times are whole seconds.

    The ring is read on every call, so a rotation swapped into it with
    :meth:`KeyRing.replace` takes effect on the next token.

    Raises:
        ConfigurationError: ``issuer`` or ``audience`` is empty, or ``access_ttl``
            is not positive.
    """

    def __init__(
        self,
        ring: KeyRing,
        *,
        issuer: str,
        audience: str | Sequence[str],
        access_ttl: float | timedelta,
        clock: Clock = system_clock,
    ) -> None:
        ttl = access_ttl.total_seconds() if isinstance(access_ttl, timedelta) else access_ttl
        if int(ttl) < 1:
            raise ConfigurationError("access_ttl must be at least one second")
        if not isinstance(issuer, str) or not issuer:
            raise ConfigurationError("issuer must be a non-empty string")
        audiences = [audience] if isinstance(audience, str) else list(audience)
        if not audiences or not all(isinstance(item, str) and item for item in audiences):
            raise ConfigurationError("audience must be a non-empty string or list of strings")
        self._ring = ring
        self._issuer = issuer
        self._audience: str | list[str] = audiences[0] if len(audiences) == 1 else audiences
        self._ttl = int(ttl)
        self._clock = clock
        self._headers: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"TokenIssuer(issuer={self._issuer!r}, audience={self._audience!r}, ttl={self._ttl})"

    def issue_access(
        self,
        sub: str,
        *,
        scope: Sequence[str],
        roles: Sequence[str],
        client_id: str,
        sid: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> IssuedToken:
        """Sign a new access token for ``sub``.

        Raises:
            NoSigningKeyError: the ring has no active key with a private part.
            ConfigurationError: an argument is malformed, or ``extra`` tries to
                set a claim the issuer owns.
        """
        if not isinstance(sub, str) or not sub:
            raise ConfigurationError("sub must be a non-empty string")
        if not isinstance(client_id, str) or not client_id:
            raise ConfigurationError("client_id must be a non-empty string")
        if isinstance(scope, str) or not all(
            isinstance(item, str) and item and " " not in item for item in scope
        ):
            raise ConfigurationError("scope must be a list of scope names without spaces")
        if isinstance(roles, str) or not all(isinstance(item, str) and item for item in roles):
            raise ConfigurationError("roles must be a list of non-empty strings")
        if sid is not None and (not isinstance(sid, str) or not sid):
            raise ConfigurationError("sid must be a non-empty string when given")
        if extra is not None and _RESERVED.intersection(extra):
            raise ConfigurationError(
                f"extra claims may not set {', '.join(sorted(_RESERVED.intersection(extra)))}"
            )

        key = self._ring.signing_key()
        now = int(self._clock())
        claims: dict[str, Any] = {
            **(extra or {}),
            "iss": self._issuer,
            "sub": sub,
            "aud": self._audience,
            "exp": now + self._ttl,
            "iat": now,
            "nbf": now,
            "jti": b64url_encode(secrets.token_bytes(16)),
            "client_id": client_id,
            "scope": " ".join(dict.fromkeys(scope)),
            "roles": list(dict.fromkeys(roles)),
        }
        if sid is not None:
            claims["sid"] = sid
        header = self._headers.get(key.kid)
        if header is None:
            header = b64url_encode(
                _compact_json({"alg": key.alg, "kid": key.kid, "typ": "at+jwt"})
            ).encode("ascii")
            self._headers = {key.kid: header}
        try:
            payload = _compact_json(claims)
        except (TypeError, ValueError):
            raise ConfigurationError("extra claims must be finite JSON values") from None
        signing_input = header + b"." + b64url_encode(payload).encode("ascii")
        token = signing_input + b"." + b64url_encode(key.sign(signing_input)).encode("ascii")
        return IssuedToken(token.decode("ascii"), MappingProxyType(claims), self._ttl)
