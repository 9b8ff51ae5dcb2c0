"""Revocation state a verifier consults on every token, cached or not.

Three kinds of entry, all cheap to test (DESIGN invariant 1):

- a revoked ``jti``: that one token is void;
- a revoked ``sid``: every access token of that refresh-token family is void
  (RFC 9068 §2.2.1 ``sid``; reuse detection revokes whole families);
- a subject cut-off: tokens of that ``sub`` issued before a time are void
  (password change, account disabled, "log out everywhere").

``until`` says when a jti or sid entry may be forgotten: once every token it
could match has expired. ``None`` keeps it until :meth:`RevocationState.forget`.
"""

from __future__ import annotations

import math

from .._clock import Clock, system_clock
from ._claims import AccessClaims

__all__ = ["RevocationState"]


def _until(value: float | None) -> float:
    if value is None:
        return math.inf
    if not math.isfinite(value):
        raise ValueError("a revocation time must be a finite UNIX time")
    return float(value)


class RevocationState:
    """In-process revocation sets, fed by the issuer or a :class:`RevocationFollower`."""

    __slots__ = ("_clock", "_jtis", "_sids", "_subjects")

    def __init__(self, *, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._jtis: dict[str, float] = {}
        self._sids: dict[str, float] = {}
        self._subjects: dict[str, float] = {}

    def __repr__(self) -> str:
        return (
            f"RevocationState(jtis={len(self._jtis)}, sids={len(self._sids)}, "
            f"subjects={len(self._subjects)})"
        )

    def __len__(self) -> int:
        return len(self._jtis) + len(self._sids) + len(self._subjects)

    def revoke_jti(self, jti: str, until: float | None = None) -> None:
        """Void the token with this ``jti``; forget the entry after ``until`` (its ``exp``)."""
        self._jtis[jti] = max(self._jtis.get(jti, -math.inf), _until(until))

    def revoke_sid(self, sid: str, until: float | None = None) -> None:
        """Void every token of the refresh-token family ``sid`` until ``until``."""
        self._sids[sid] = max(self._sids.get(sid, -math.inf), _until(until))

    def revoke_subject(self, sub: str, before: float) -> None:
        """Void every token of ``sub`` whose ``iat`` is earlier than ``before``."""
        cut_off = _until(before)
        if cut_off > self._subjects.get(sub, -math.inf):
            self._subjects[sub] = cut_off

    def is_revoked(self, claims: AccessClaims) -> bool:
        """True when any entry voids the token; three dictionary look-ups."""
        if claims.jti in self._jtis:
            return True
        if claims.sid is not None and claims.sid in self._sids:
            return True
        cut_off = self._subjects.get(claims.sub)
        return cut_off is not None and claims.iat < cut_off

    def prune(self, now: float | None = None) -> int:
        """Forget jti and sid entries whose ``until`` has passed; returns how many.

        Subject cut-offs stay: they are one entry per subject and cannot be
        proven useless without knowing the longest token lifetime.
        """
        moment = self._clock() if now is None else now
        removed = 0
        for table in (self._jtis, self._sids):
            stale = [key for key, until in list(table.items()) if until <= moment]
            for key in stale:
                del table[key]
            removed += len(stale)
        return removed

    def forget(
        self, *, jti: str | None = None, sid: str | None = None, sub: str | None = None
    ) -> None:
        """Drop entries explicitly (an operator undoing a mistaken revocation)."""
        if jti is not None:
            self._jtis.pop(jti, None)
        if sid is not None:
            self._sids.pop(sid, None)
        if sub is not None:
            self._subjects.pop(sub, None)
