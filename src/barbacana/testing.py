"""Helpers for users' own tests: captured audit events, throwaway keys, a fixed clock."""

from __future__ import annotations

import time

from .audit import capture_audit
from .tokens import KeyRing, SigningKey, generate_signing_key

__all__ = ["FixedClock", "capture_audit", "throwaway_ring"]


class FixedClock:
    """A clock that stands still until a test moves it (``clock.now += 60``)."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


def throwaway_ring(alg: str = "Ed25519", *, now: float | None = None) -> KeyRing:
    """A key ring with one active key, for signing test tokens (never for production)."""
    key: SigningKey = generate_signing_key(
        alg, now=time.time() if now is None else now, state="active"
    )
    return KeyRing([key])
