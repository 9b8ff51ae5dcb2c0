"""Errors of ``barbacana.crypto`` (envelope encryption of keys at rest).

A blob that cannot be opened is a :class:`~barbacana.errors.SecretsError`: the
key it protects is unavailable. The subclass says why, so an operator can tell
a wrong key from a damaged file. Messages name key ids (public hash prefixes),
never key material or plaintext::

    SecretsError (barbacana.errors)
     └── EnvelopeError                       any envelope failure
          ├── EnvelopeFormatError            not an envelope, truncated, unknown version
          ├── UnknownKeyEncryptionKeyError   sealed under a KEK id that was not given
          └── EnvelopeAuthenticationError    the tag does not verify: changed bytes,
                                             wrong associated data, or another key
    ConfigurationError (barbacana.errors)
     └── InvalidKeyEncryptionKeyError        a KEK that is not 32 bytes, or a bad id
"""

from __future__ import annotations

from ..errors import ConfigurationError, SecretsError

__all__ = [
    "EnvelopeAuthenticationError",
    "EnvelopeError",
    "EnvelopeFormatError",
    "InvalidKeyEncryptionKeyError",
    "UnknownKeyEncryptionKeyError",
]


class EnvelopeError(SecretsError):
    """A sealed blob could not be opened or rewrapped."""

    code = "envelope_error"
    status = 500
    title = "Sealed data unavailable"


class EnvelopeFormatError(EnvelopeError):
    """The bytes are not a Barbacana envelope, are truncated, or have an unknown version."""

    code = "envelope_malformed"
    title = "Malformed sealed data"


class UnknownKeyEncryptionKeyError(EnvelopeError):
    """The blob was sealed under a key-encryption key whose id is not among those given."""

    code = "envelope_unknown_kek"
    title = "Unknown key-encryption key"


class EnvelopeAuthenticationError(EnvelopeError):
    """AES-GCM authentication failed: tampered bytes, wrong associated data, or wrong key."""

    code = "envelope_tampered"
    title = "Sealed data failed authentication"


class InvalidKeyEncryptionKeyError(ConfigurationError):
    """The key-encryption key is not 32 random bytes, or its id is unusable."""

    code = "kek_invalid"
    title = "Invalid key-encryption key"
