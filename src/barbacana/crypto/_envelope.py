"""AES-256-GCM envelope encryption: a fresh data key per blob, wrapped by a key-encryption key.

Layout of version 1 (all lengths in bytes)::

    magic "BRBE" (4) | version 0x01 (1) | id length n (1) | KEK id (n)
    | wrap nonce (12) | wrapped data key (32 + 16-byte tag)
    | payload nonce (12) | payload ciphertext + 16-byte tag

The data key is a random 256-bit AES key used for this blob only. It is
encrypted ("wrapped") under the KEK with AES-GCM (NIST SP 800-38D), whose
associated data is the header — magic, version and KEK id — followed by the
caller's ``aad``: changing the id, the version or the context makes unwrapping
fail. The payload is encrypted under the data key with the caller's ``aad``
as associated data, so :func:`rewrap` can replace the wrapped key (a KEK
rotation) without touching the payload. Nonces are 96 random bits; the NIST
bound of 2**32 random-nonce encryptions per key is far beyond the number of
keys a KEK will ever wrap, and each data key encrypts exactly once.

``aad`` should name what the blob is and whom it belongs to (for example
``b"barbacana/signing-key/" + kid``) so that a blob moved to another record
does not open there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._kek import KEK_BYTES, KeyEncryptionKey
from .errors import (
    EnvelopeAuthenticationError,
    EnvelopeFormatError,
    InvalidKeyEncryptionKeyError,
    UnknownKeyEncryptionKeyError,
)

__all__ = ["ENVELOPE_MAGIC", "ENVELOPE_VERSION", "kek_id_of", "open_sealed", "rewrap", "seal"]

ENVELOPE_MAGIC = b"BRBE"
ENVELOPE_VERSION = 1
_NONCE = 12
_TAG = 16
_WRAPPED = KEK_BYTES + _TAG
_WRAP_LABEL = b"barbacana/envelope/v1/wrap\x00"
_PAYLOAD_LABEL = b"barbacana/envelope/v1/payload\x00"

KeyLike = KeyEncryptionKey | bytes
KeySet = Mapping[bytes, bytes] | Mapping[bytes, KeyEncryptionKey] | Iterable[KeyEncryptionKey]


@dataclass(frozen=True)
class _Parsed:
    header: bytes
    kek_id: bytes
    wrap_nonce: bytes
    wrapped_key: bytes
    payload: bytes  # payload nonce + ciphertext + tag


def _as_kek(kek: KeyLike, kek_id: bytes | str | None = None) -> KeyEncryptionKey:
    if isinstance(kek, KeyEncryptionKey):
        return kek if kek_id is None else KeyEncryptionKey(kek.material(), kek_id=kek_id)
    if isinstance(kek, bytes | bytearray):
        return KeyEncryptionKey(bytes(kek), kek_id=kek_id)
    raise InvalidKeyEncryptionKeyError("a KEK must be a KeyEncryptionKey or 32 bytes")


def _header(kek_id: bytes) -> bytes:
    return ENVELOPE_MAGIC + bytes([ENVELOPE_VERSION, len(kek_id)]) + kek_id


def _wrap(kek: KeyEncryptionKey, data_key: bytes, aad: bytes) -> bytes:
    header = _header(kek.kek_id)
    nonce = os.urandom(_NONCE)
    wrapped = AESGCM(kek.material()).encrypt(nonce, data_key, _WRAP_LABEL + header + aad)
    return header + nonce + wrapped


def _parse(blob: bytes) -> _Parsed:
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise EnvelopeFormatError("sealed data must be bytes")
    blob = bytes(blob)
    if len(blob) < 6 or blob[:4] != ENVELOPE_MAGIC:
        raise EnvelopeFormatError("these bytes are not a Barbacana envelope (bad magic)")
    if blob[4] != ENVELOPE_VERSION:
        raise EnvelopeFormatError(
            f"envelope version {blob[4]} is not supported (this Barbacana reads {ENVELOPE_VERSION})"
        )
    id_length = blob[5]
    header_end = 6 + id_length
    wrapped_end = header_end + _NONCE + _WRAPPED
    if id_length == 0 or len(blob) < wrapped_end + _NONCE + _TAG:
        raise EnvelopeFormatError("the envelope is truncated")
    return _Parsed(
        header=blob[:header_end],
        kek_id=blob[6:header_end],
        wrap_nonce=blob[header_end : header_end + _NONCE],
        wrapped_key=blob[header_end + _NONCE : wrapped_end],
        payload=blob[wrapped_end:],
    )


def _unwrap(parsed: _Parsed, kek: KeyEncryptionKey, aad: bytes) -> bytes:
    try:
        return AESGCM(kek.material()).decrypt(
            parsed.wrap_nonce, parsed.wrapped_key, _WRAP_LABEL + parsed.header + aad
        )
    except InvalidTag:
        raise EnvelopeAuthenticationError(
            f"the data key sealed under KEK {parsed.kek_id.hex()} does not authenticate: "
            "the envelope was changed, the associated data differs, or this is another key "
            "with the same id"
        ) from None


def _keyring(keks: KeySet | KeyEncryptionKey) -> dict[bytes, KeyEncryptionKey]:
    if isinstance(keks, KeyEncryptionKey):
        return {keks.kek_id: keks}
    ring: dict[bytes, KeyEncryptionKey] = {}
    if isinstance(keks, Mapping):
        for kek_id, kek in keks.items():
            key = _as_kek(bytes(kek), kek_id=kek_id) if isinstance(kek, bytes | bytearray) else kek
            if not isinstance(key, KeyEncryptionKey):
                raise InvalidKeyEncryptionKeyError("KEK ring values must be 32-byte keys")
            ring[bytes(kek_id)] = key
        return ring
    for kek in keks:
        ring[kek.kek_id] = kek
    return ring


def seal(plaintext: bytes, kek: KeyLike, *, aad: bytes, kek_id: bytes | str | None = None) -> bytes:
    """Encrypt ``plaintext`` under a fresh data key, and wrap that key under ``kek``.

    Args:
        plaintext: The secret to protect (a private key in PKCS #8, a TOTP seed).
        kek: The key-encryption key (32 bytes, or a :class:`KeyEncryptionKey`).
        aad: Associated data naming the blob's purpose and owner; needed again to open it.
        kek_id: Overrides the key's id (rarely needed; ids normally derive from the key).

    Returns:
        The self-describing envelope (version 1 layout above).
    """
    key = _as_kek(kek, kek_id)
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(_NONCE)
    ciphertext = AESGCM(data_key).encrypt(nonce, bytes(plaintext), _PAYLOAD_LABEL + bytes(aad))
    return _wrap(key, data_key, bytes(aad)) + nonce + ciphertext


def open_sealed(blob: bytes, keks: KeySet | KeyEncryptionKey, *, aad: bytes) -> bytes:
    """Decrypt an envelope with whichever of ``keks`` it names.

    Args:
        blob: An envelope from :func:`seal` or :func:`rewrap`.
        keks: The keys that may have sealed it: a mapping from KEK id to key, an
            iterable of :class:`KeyEncryptionKey`, or one key.
        aad: The associated data given to :func:`seal`.

    Raises:
        EnvelopeFormatError: not an envelope, truncated, or an unknown version.
        UnknownKeyEncryptionKeyError: the envelope names a KEK id not in ``keks``.
        EnvelopeAuthenticationError: the envelope or ``aad`` was changed, or the key is wrong.
    """
    parsed = _parse(blob)
    ring = _keyring(keks)
    kek = ring.get(parsed.kek_id)
    if kek is None:
        given = ", ".join(sorted(k.hex() for k in ring)) or "none"
        raise UnknownKeyEncryptionKeyError(
            f"sealed under KEK {parsed.kek_id.hex()}, which is not among the keys given "
            f"({given}); supply that key (the previous one, after a rotation)"
        )
    data_key = _unwrap(parsed, kek, bytes(aad))
    nonce, ciphertext = parsed.payload[:_NONCE], parsed.payload[_NONCE:]
    try:
        return AESGCM(data_key).decrypt(nonce, ciphertext, _PAYLOAD_LABEL + bytes(aad))
    except InvalidTag:
        raise EnvelopeAuthenticationError(
            "the sealed payload does not authenticate: its bytes were changed"
        ) from None


def rewrap(blob: bytes, old_kek: KeyLike, new_kek: KeyLike, *, aad: bytes) -> bytes:
    """Re-encrypt only the data key, from ``old_kek`` to ``new_kek`` (a KEK rotation).

    The payload bytes are kept as they are; the old key can be retired once
    every blob has been rewrapped.

    Raises:
        EnvelopeFormatError: not an envelope.
        UnknownKeyEncryptionKeyError: the envelope was not sealed under ``old_kek``.
        EnvelopeAuthenticationError: the envelope or ``aad`` was changed.
    """
    parsed = _parse(blob)
    old = _as_kek(old_kek)
    if parsed.kek_id != old.kek_id:
        raise UnknownKeyEncryptionKeyError(
            f"sealed under KEK {parsed.kek_id.hex()}, not under the old key "
            f"{old.kek_id.hex()} given to rewrap"
        )
    data_key = _unwrap(parsed, old, bytes(aad))
    return _wrap(_as_kek(new_kek), data_key, bytes(aad)) + parsed.payload


def kek_id_of(blob: bytes) -> bytes:
    """The id of the KEK an envelope was sealed under (to find the blobs left to rewrap).

    Raises:
        EnvelopeFormatError: not an envelope.
    """
    return _parse(blob).kek_id
