"""Generated high-entropy credentials and their hashes.

Refresh tokens, client secrets and API keys are 256-bit random values made
here, so a fast SHA-256 digest is enough to store them (a slow password hash
protects *low*-entropy secrets; OWASP Password Storage Cheat Sheet). Comparison
is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["digest", "matches", "new_secret"]


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random string with ``nbytes`` of entropy."""
    return secrets.token_urlsafe(nbytes)


def digest(value: str) -> str:
    """SHA-256 hex digest of a generated secret."""
    return hashlib.sha256(value.encode()).hexdigest()


def matches(value: str, stored_digest: str | None) -> bool:
    """Constant-time comparison of ``value`` with a stored digest."""
    if stored_digest is None:
        return False
    return hmac.compare_digest(digest(value), stored_digest)
