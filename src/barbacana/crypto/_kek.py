"""The key-encryption key (KEK): 32 random bytes, read from a secret, never shown."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from typing import Any

from pydantic import SecretBytes, SecretStr

from .errors import InvalidKeyEncryptionKeyError

__all__ = ["KEK_BYTES", "KeyEncryptionKey", "derive_kek_id"]

#: AES-256: the only KEK size accepted.
KEK_BYTES = 32
_ID_LABEL = b"barbacana/kek-id/v1\x00"
_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
_B64 = re.compile(r"^[A-Za-z0-9+/_-]{43}={0,1}$")
_GENERATE_HINT = (
    'generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))" '
    "(43 base64url characters), or openssl rand -hex 32 (64 hex digits)"
)


def derive_kek_id(material: bytes) -> bytes:
    """The default KEK id: the first 8 bytes of SHA-256 over a label and the key.

    The label keeps the id from being the plain hash of the key that other
    software might publish; 8 bytes tell apart the few keys an operator keeps
    during a rotation, and the GCM tag still decides whether a key is right.
    """
    return hashlib.sha256(_ID_LABEL + material).digest()[:8]


def _decode_text(text: str) -> bytes:
    """Decode 64 hex digits or 43/44 base64 (url-safe or standard) characters."""
    text = text.strip()
    if _HEX.match(text):
        return bytes.fromhex(text)
    if _B64.match(text):
        padded = text.rstrip("=") + "="
        try:
            if "+" in text or "/" in text:
                return base64.b64decode(padded, validate=True)
            return base64.urlsafe_b64decode(padded)
        except (binascii.Error, ValueError):
            pass
    raise InvalidKeyEncryptionKeyError(
        "the key-encryption key must be 32 random bytes written as 43 base64url "
        f"characters or 64 hex digits (got {len(text)} characters); {_GENERATE_HINT}"
    )


class KeyEncryptionKey:
    """A 256-bit AES key that wraps data keys (see :func:`barbacana.crypto.seal`).

    Args:
        material: Exactly 32 bytes from a cryptographically secure generator.
        kek_id: An explicit id (1 to 64 bytes or characters); by default derived
            from the key with :func:`derive_kek_id`.

    Raises:
        InvalidKeyEncryptionKeyError: the key is not 32 bytes, or the id is unusable.
    """

    __slots__ = ("_material", "kek_id")

    def __init__(self, material: bytes, *, kek_id: bytes | str | None = None) -> None:
        if not isinstance(material, bytes | bytearray) or len(material) != KEK_BYTES:
            size = len(material) if isinstance(material, bytes | bytearray) else "?"
            raise InvalidKeyEncryptionKeyError(
                f"a key-encryption key must be exactly {KEK_BYTES} bytes (got {size}); "
                + _GENERATE_HINT
            )
        self._material = bytes(material)
        #: Public identifier stored in every envelope sealed with this key.
        self.kek_id: bytes = (
            _normalise_id(kek_id) if kek_id is not None else derive_kek_id(self._material)
        )

    @classmethod
    def generate(cls, *, kek_id: bytes | str | None = None) -> KeyEncryptionKey:
        """A new random key (``secrets.token_bytes``)."""
        return cls(secrets.token_bytes(KEK_BYTES), kek_id=kek_id)

    @classmethod
    def from_secret(
        cls,
        value: SecretStr | SecretBytes | str | bytes,
        *,
        kek_id: bytes | str | None = None,
    ) -> KeyEncryptionKey:
        """Read a key from its text form (43 base64url characters or 64 hex digits).

        Raw 32-byte values (``SecretBytes`` or ``bytes`` of that length) are taken
        as they are.

        Raises:
            InvalidKeyEncryptionKeyError: the value does not decode to exactly 32
                bytes; the message says how to generate a key and never shows the value.
        """
        if isinstance(value, SecretStr):
            return cls(_decode_text(value.get_secret_value()), kek_id=kek_id)
        if isinstance(value, SecretBytes):
            value = value.get_secret_value()
        if isinstance(value, bytes | bytearray):
            if len(value) == KEK_BYTES:
                return cls(bytes(value), kek_id=kek_id)
            try:
                text = bytes(value).decode("ascii")
            except UnicodeDecodeError:
                raise InvalidKeyEncryptionKeyError(
                    f"a key-encryption key must be {KEK_BYTES} raw bytes or its text form; "
                    + _GENERATE_HINT
                ) from None
            return cls(_decode_text(text), kek_id=kek_id)
        return cls(_decode_text(value), kek_id=kek_id)

    @classmethod
    def from_text(
        cls, text: SecretStr | str, *, kek_id: bytes | str | None = None
    ) -> KeyEncryptionKey:
        """Read a key from 43 base64url characters or 64 hex digits (surrounding space ignored).

        Raises:
            InvalidKeyEncryptionKeyError: not a 32-byte key; the message says how to make one.
        """
        raw = text.get_secret_value() if isinstance(text, SecretStr) else text
        return cls(_decode_text(raw), kek_id=kek_id)

    def export(self) -> SecretStr:
        """The key's text form (unpadded base64url), to store it in a secret store."""
        text = base64.urlsafe_b64encode(self._material).rstrip(b"=").decode("ascii")
        return SecretStr(text)

    def material(self) -> bytes:
        """The raw key bytes; for the AEAD only, never for logs."""
        return self._material

    @property
    def kek_id_hex(self) -> str:
        """The id as hex (ids are public: safe to log and show)."""
        return self.kek_id.hex()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyEncryptionKey):
            return NotImplemented
        return self.kek_id == other.kek_id and hmac.compare_digest(self._material, other._material)

    def __hash__(self) -> int:
        return hash(self.kek_id)

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(kek_id={self.kek_id_hex!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a KeyEncryptionKey cannot be pickled; store export() in a secret store")


def _normalise_id(kek_id: bytes | str) -> bytes:
    raw = kek_id.encode("utf-8") if isinstance(kek_id, str) else bytes(kek_id)
    if not 1 <= len(raw) <= 64:
        raise InvalidKeyEncryptionKeyError("a KEK id must be 1 to 64 bytes")
    return raw
