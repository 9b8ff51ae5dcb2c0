"""The verified claims of an access token (RFC 9068 §2.2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AccessClaims"]


@dataclass(frozen=True)
class AccessClaims:
    """What a verified access token says, already type-checked.

    ``scope`` is the space-separated ``scope`` claim as a set (RFC 8693 §4.2),
    ``aud`` is always a tuple, and ``raw`` is a read-only view of the whole
    payload for claims Barbacana does not model. Instances may be shared
    between requests through the verified-token cache: treat them as read-only.
    """

    sub: str
    scope: frozenset[str]
    roles: tuple[str, ...]
    client_id: str
    jti: str
    sid: str | None
    iat: float
    exp: float
    iss: str
    aud: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _trusted(cls, values: dict[str, Any]) -> AccessClaims:
        """Build from already validated values without the per-field frozen setattr.

        The dataclass ``__init__`` of a frozen class pays one ``object.__setattr__``
        per field; on the verification hot path that is a third of the claim
        checks. ``values`` must hold exactly the fields above.
        """
        claims = object.__new__(cls)
        object.__setattr__(claims, "__dict__", values)
        return claims
