"""Argon2id password hashing (pwdlib), with named cost profiles.

Profiles, as in argon2-cffi's ``profiles`` module:

* ``rfc9106_low_memory`` — RFC 9106 §4, second recommended option:
  t=3 iterations, m=64 MiB, p=4 lanes. The default.
* ``test_only_cheap`` — t=1, m=64 KiB, p=1. Fast enough for
  test suites; never for real passwords.

Legacy bcrypt hashes still verify and are re-hashed with Argon2id on login.
Hashing runs in a worker thread so it never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import secrets

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

__all__ = ["PROFILES", "Passwords"]

#: (time_cost, memory_cost in KiB, parallelism) per profile.
PROFILES: dict[str, tuple[int, int, int]] = {
    "rfc9106_low_memory": (3, 65536, 4),
    "test_only_cheap": (1, 64, 1),
}


class Passwords:
    """Hash and verify passwords with constant work whether the user exists or not."""

    def __init__(self, profile: str = "rfc9106_low_memory") -> None:
        time_cost, memory_cost, parallelism = PROFILES[profile]
        argon2 = Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
        self._hash = PasswordHash((argon2, BcryptHasher()))
        # Verified against when the user does not exist, so that both paths cost
        # one Argon2id verification (DESIGN invariant 3: no user enumeration by time).
        self._dummy = self._hash.hash(secrets.token_urlsafe(16))

    def __repr__(self) -> str:
        return "Passwords()"

    async def hash(self, password: str) -> str:
        """A new Argon2id hash of ``password``."""
        return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """Check ``password`` against ``stored`` (``None``: no such user).

        Returns:
            ``(ok, new_hash)``: ``new_hash`` is set when the stored hash should be
            replaced (legacy bcrypt, or older Argon2 parameters).
        """
        if stored is None:
            await asyncio.to_thread(self._hash.verify, password, self._dummy)
            return False, None
        try:
            return await asyncio.to_thread(self._hash.verify_and_update, password, stored)
        except Exception:  # noqa: BLE001 -- an unparsable stored hash is a failed login
            await asyncio.to_thread(self._hash.verify, password, self._dummy)
            return False, None
