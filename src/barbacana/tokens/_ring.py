"""The key ring: which keys sign, which verify, and what the JWKS publishes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ._keys import SigningKey, key_from_jwk
from .errors import InvalidKeyError, NoSigningKeyError

__all__ = ["KeyRing", "RefreshableRingProvider", "RingProvider"]

#: Largest JWKS document accepted, in bytes.
MAX_JWKS_BYTES = 65_536
#: Most keys accepted in one JWKS document.
MAX_JWKS_KEYS = 32

# Published order: the signing key first, then the one that will sign next.
_PUBLISHED = {"active": 0, "next": 1, "retiring": 2}


@runtime_checkable
class RingProvider(Protocol):
    """Anything a :class:`~barbacana.tokens.TokenVerifier` can ask for keys.

    ``verification_key`` must be cheap and synchronous (a dictionary look-up): it
    runs on every verification. It returns ``None`` for an unknown ``kid`` and
    for keys that may not verify (``retired``).
    """

    def verification_key(self, kid: str) -> SigningKey | None:
        """The key named ``kid`` if it may verify, else ``None``."""
        ...


@runtime_checkable
class RefreshableRingProvider(RingProvider, Protocol):
    """A provider that can learn new keys, such as :class:`~barbacana.tokens.JWKSCache`."""

    async def refresh_for(self, kid: str) -> bool:
        """Try to learn ``kid``; True when it is now known. Never raises for fetch failures."""
        ...


class _Snapshot(NamedTuple):
    keys: tuple[SigningKey, ...]
    verifiers: dict[str, SigningKey]
    signer: SigningKey | None


def _snapshot(keys: Iterable[SigningKey]) -> _Snapshot:
    ordered = tuple(keys)
    seen: set[str] = set()
    signer: SigningKey | None = None
    for key in ordered:
        if not isinstance(key, SigningKey):
            raise InvalidKeyError("a key ring holds SigningKey objects only")
        if key.kid in seen:
            raise InvalidKeyError("two keys in the ring share a kid")
        seen.add(key.kid)
        if key.can_sign:
            if signer is not None:
                raise InvalidKeyError("a key ring has at most one active key with a private part")
            signer = key
    verifiers = {key.kid: key for key in ordered if key.can_verify}
    return _Snapshot(ordered, verifiers, signer)


class KeyRing:
    """An immutable-by-swap set of keys.

    Readers see one consistent snapshot: :meth:`replace` builds the new one
    first and swaps it in with a single assignment, so a concurrent verification
    never sees a half-updated ring.

    Raises:
        InvalidKeyError: two keys share a ``kid``, or more than one active key
            can sign.
    """

    __slots__ = ("_snap",)

    def __init__(self, keys: Iterable[SigningKey] = ()) -> None:
        self._snap = _snapshot(keys)

    def __repr__(self) -> str:
        states = ", ".join(f"{key.kid[:8]}…:{key.alg}:{key.state}" for key in self._snap.keys)
        return f"KeyRing([{states}])"

    def __len__(self) -> int:
        return len(self._snap.keys)

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """Every key, in the order given."""
        return self._snap.keys

    def signing_key(self) -> SigningKey:
        """The active key that signs new tokens.

        Raises:
            NoSigningKeyError: no active key holds a private part (a verification-only
                ring, or a ring whose first ``next`` key has not been promoted yet).
        """
        signer = self._snap.signer
        if signer is None:
            raise NoSigningKeyError(
                "the key ring has no active key with a private part; rotate to promote one"
            )
        return signer

    def verification_key(self, kid: str) -> SigningKey | None:
        """The ``next``, ``active`` or ``retiring`` key named ``kid``; retired keys never verify."""
        return self._snap.verifiers.get(kid)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The RFC 7517 §5 key set to publish: next, active and retiring public keys."""
        published = sorted(
            (key for key in self._snap.keys if key.state in _PUBLISHED),
            key=lambda key: _PUBLISHED[key.state],
        )
        return {"keys": [key.public_jwk() for key in published]}

    def replace(self, keys: Iterable[SigningKey]) -> None:
        """Swap in a new set of keys atomically.

        Raises:
            InvalidKeyError: the new set is invalid; the ring is left unchanged.
        """
        self._snap = _snapshot(keys)

    @classmethod
    def from_jwks(
        cls,
        doc: Mapping[str, Any] | str | bytes,
        *,
        max_bytes: int = MAX_JWKS_BYTES,
        max_keys: int = MAX_JWKS_KEYS,
    ) -> KeyRing:
        """A verification-only ring from a JWKS document (JSON text or parsed).

        Every key must be acceptable to :func:`~barbacana.tokens.key_from_jwk`;
        one bad key rejects the whole document, since a key set that carries a
        private member or an unexpected key type is a misconfigured issuer.

        Raises:
            InvalidKeyError: the document is too large, not a JSON object with a
                ``keys`` array, has too many keys, or holds an unacceptable key.
        """
        if isinstance(doc, str | bytes):
            if len(doc) > max_bytes:
                raise InvalidKeyError(f"the JWKS document is larger than {max_bytes} bytes")
            try:
                doc = json.loads(doc)
            except (ValueError, RecursionError):
                raise InvalidKeyError("the JWKS document is not valid JSON") from None
        if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
            raise InvalidKeyError("a JWKS document is a JSON object with a 'keys' array")
        entries: list[Any] = doc["keys"]
        if len(entries) > max_keys:
            raise InvalidKeyError(f"the JWKS document has more than {max_keys} keys")
        return cls(key_from_jwk(entry, state="active") for entry in entries)
