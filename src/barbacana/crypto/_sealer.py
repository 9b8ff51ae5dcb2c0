"""A sealer: the current KEK seals, the current and previous KEKs open."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from ._envelope import kek_id_of, open_sealed, rewrap, seal
from ._kek import KeyEncryptionKey
from .errors import UnknownKeyEncryptionKeyError

__all__ = ["KeySealer", "Rewrapper", "Sealer"]


@runtime_checkable
class KeySealer(Protocol):
    """Seals and opens secrets at rest (the shape of :class:`Sealer` that key stores need).

    ``open`` raises :class:`~barbacana.crypto.EnvelopeError` when the blob does
    not open (another key, changed bytes, other associated data).
    """

    def seal(self, plaintext: bytes, *, aad: bytes) -> bytes: ...

    def open(self, blob: bytes, *, aad: bytes) -> bytes: ...


@runtime_checkable
class Rewrapper(KeySealer, Protocol):
    """A sealer that also moves blobs from a previous key-encryption key to the current one."""

    def needs_rewrap(self, blob: bytes) -> bool: ...

    def rewrap(self, blob: bytes, *, aad: bytes) -> bytes: ...


class Sealer:
    """Seals blobs under the current key-encryption key; opens those of earlier keys too.

    During a KEK rotation the new key becomes ``kek`` and the old one goes in
    ``previous``: everything keeps opening, and :meth:`rewrap` moves each blob to
    the new key until :meth:`needs_rewrap` is false for all and the old key can go.

    Args:
        kek: The key new blobs are sealed under.
        previous: Keys that may still have sealed stored blobs.
    """

    def __init__(self, kek: KeyEncryptionKey, *, previous: Iterable[KeyEncryptionKey] = ()) -> None:
        self.kek = kek
        self._ring = {key.kek_id: key for key in previous}
        self._ring[kek.kek_id] = kek

    def seal(self, plaintext: bytes, *, aad: bytes) -> bytes:
        """Seal ``plaintext`` under the current key (see :func:`barbacana.crypto.seal`)."""
        return seal(plaintext, self.kek, aad=aad)

    def open(self, blob: bytes, *, aad: bytes) -> bytes:
        """Open a blob sealed under the current or a previous key.

        Raises:
            EnvelopeError: malformed, unknown key, or failed authentication.
        """
        return open_sealed(blob, self._ring, aad=aad)

    def needs_rewrap(self, blob: bytes) -> bool:
        """Whether ``blob`` was sealed under a key other than the current one."""
        return kek_id_of(blob) != self.kek.kek_id

    def rewrap(self, blob: bytes, *, aad: bytes) -> bytes:
        """Move ``blob`` to the current key (unchanged if it is already there).

        Raises:
            EnvelopeError: malformed, unknown key, or failed authentication.
        """
        old_id = kek_id_of(blob)
        if old_id == self.kek.kek_id:
            return blob
        old = self._ring.get(old_id)
        if old is None:
            raise UnknownKeyEncryptionKeyError(
                f"sealed under KEK {old_id.hex()}, which is neither the current key nor a "
                "previous one; add it to previous= to rewrap"
            )
        return rewrap(blob, old, self.kek, aad=aad)

    def __repr__(self) -> str:
        previous = sorted(k.hex() for k in self._ring if k != self.kek.kek_id)
        return f"Sealer(kek_id={self.kek.kek_id_hex!r}, previous={previous!r})"
