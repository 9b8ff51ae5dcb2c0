"""Envelope encryption for keys at rest: AES-256-GCM data keys wrapped by a key-encryption key.

The identity service seals its signing keys (and TOTP seeds) with
:func:`seal` before storing them, and opens them with :func:`open_sealed`. The
key-encryption key (KEK) comes from a secret source (``SecretsSettings.kek_ref``,
``file://kek`` by default) through :meth:`KeyEncryptionKey.from_secret`; after
the KEK rotates, :func:`rewrap` moves each blob to the new key without
re-encrypting its payload::

    kek = KeyEncryptionKey.from_secret(await resolver.get(settings.secrets.kek_ref))
    blob = seal(private_key_pem, kek, aad=b"barbacana/signing-key/" + kid.encode())
    pem = open_sealed(blob, [kek], aad=b"barbacana/signing-key/" + kid.encode())

:class:`Sealer` bundles the current KEK with the previous ones for services:
``Sealer(kek, previous=[old]).open(blob, aad=...)``.
"""

from ._envelope import ENVELOPE_MAGIC, ENVELOPE_VERSION, kek_id_of, open_sealed, rewrap, seal
from ._kek import KEK_BYTES, KeyEncryptionKey, derive_kek_id
from ._sealer import KeySealer, Rewrapper, Sealer
from .errors import (
    EnvelopeAuthenticationError,
    EnvelopeError,
    EnvelopeFormatError,
    InvalidKeyEncryptionKeyError,
    UnknownKeyEncryptionKeyError,
)

__all__ = [
    "ENVELOPE_MAGIC",
    "ENVELOPE_VERSION",
    "KEK_BYTES",
    "EnvelopeAuthenticationError",
    "EnvelopeError",
    "EnvelopeFormatError",
    "InvalidKeyEncryptionKeyError",
    "KeyEncryptionKey",
    "KeySealer",
    "Rewrapper",
    "Sealer",
    "UnknownKeyEncryptionKeyError",
    "derive_kek_id",
    "kek_id_of",
    "open_sealed",
    "rewrap",
    "seal",
]
