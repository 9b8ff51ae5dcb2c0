"""The audit keys: an Ed25519 key that signs checkpoints, and an HMAC key.

Both live in files of the data directory (``<data_dir>/audit/``, mode 0600),
never in the database: an attacker who can write the database cannot forge a
checkpoint signature or an event MAC. The signing key is separate from the
token-signing keys so that rotating or leaking one never touches the other.

The HMAC key is the root of two derived keys (HMAC-SHA256 with a label):

- the *event MAC* key: each stored row carries ``HMAC(seq || leaf hash)``, so
  the verifier names the exact event that was changed even when the attacker
  recomputed its leaf hash;
- the *blind index* key: values kept only as keyed HMACs (e-mail addresses...),
  searchable by whoever holds the key, unreadable to whoever reads the database.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import AuditKeyError

__all__ = [
    "AuditKey",
    "key_id",
    "load_public_key",
    "public_key_file",
]

_MAC_LABEL = b"barbacana/audit/event-mac/v1"
_BLIND_LABEL = b"barbacana/audit/blind-index/v1"
_HMAC_PREFIX = "barbacana-audit-hmac-v1:"


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short stable name for a public key: the first 16 hex digits of SHA-256(raw key)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_file(key_path: Path) -> Path:
    """Where the public half of a signing key file is written (``*.pub.pem``)."""
    return key_path.with_name(key_path.name.removesuffix(".pem") + ".pub.pem")


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """Load an Ed25519 public key from PEM (SubjectPublicKeyInfo).

    Raises:
        AuditKeyError: ``data`` is not an Ed25519 public key.
    """
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise AuditKeyError("not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError("the audit public key must be an Ed25519 key")
    return key


def verify_signature(public_key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s Ed25519 signature of ``data``."""
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def _check_private_file(path: Path) -> None:
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuditKeyError(
            f"{path.name} is readable by other users (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )


def _write_new(path: Path, data: bytes, mode: int) -> bool:
    """Write ``data`` to ``path`` unless it exists; ``False`` if another process won.

    The content goes to a private temporary file first and is published with
    ``link()``, which fails if the name exists: a concurrent reader sees either
    nothing or the whole key, never half of one.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return True


class AuditKey:
    """The audit signing key and HMAC key of one trail.

    Build with :meth:`load`, :meth:`create`, :meth:`load_or_create`, or
    :meth:`generate` (in memory, for tests).
    """

    def __init__(self, signing_key: Ed25519PrivateKey, hmac_key: bytes) -> None:
        if len(hmac_key) < 32:
            raise AuditKeyError("the audit HMAC key must be at least 32 bytes")
        self._signing_key = signing_key
        self.public_key: Ed25519PublicKey = signing_key.public_key()
        #: Name of the public key, recorded in the trail and in every checkpoint.
        self.key_id: str = key_id(self.public_key)
        self._mac_key = hmac.new(hmac_key, _MAC_LABEL, hashlib.sha256).digest()
        self._blind_key = hmac.new(hmac_key, _BLIND_LABEL, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r})"

    @classmethod
    def generate(cls) -> AuditKey:
        """A fresh key pair and HMAC key, held in memory only."""
        return cls(Ed25519PrivateKey.generate(), secrets.token_bytes(32))

    # -- operations -----------------------------------------------------------------------

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature (RFC 8032) of ``data``."""
        return self._signing_key.sign(data)

    @property
    def mac_key(self) -> bytes:
        """The derived key of event MACs (needed to verify them)."""
        return self._mac_key

    def event_mac(self, seq: int, leaf: bytes) -> bytes:
        """``HMAC-SHA256(seq as 8 bytes || leaf hash)``: binds an event to its position."""
        return event_mac(self._mac_key, seq, leaf)

    def blind_index(self, value: str) -> str:
        """The searchable keyed hash of a value (trimmed and case-folded first)."""
        digest = hmac.new(
            self._blind_key, value.strip().casefold().encode("utf-8"), hashlib.sha256
        ).hexdigest()
        return f"hmac-sha256:{digest}"

    def public_pem(self) -> bytes:
        """The public half, PEM (SubjectPublicKeyInfo), safe to publish."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # -- files ---------------------------------------------------------------------------

    @classmethod
    def load(cls, key_path: Path, hmac_path: Path, *, passphrase: bytes | None = None) -> AuditKey:
        """Read both keys from their files.

        Raises:
            AuditKeyError: A file is missing, unreadable, readable by others,
                encrypted without a passphrase, or not an audit key.
        """
        for path in (key_path, hmac_path):
            if not path.is_file():
                raise AuditKeyError(f"the audit key file {path} does not exist")
            _check_private_file(path)
        try:
            private = serialization.load_pem_private_key(key_path.read_bytes(), passphrase)
        except TypeError:
            raise AuditKeyError(
                "the audit signing key is encrypted: set BARBACANA_AUDIT_KEY_PASSPHRASE"
                if passphrase is None
                else "the audit signing key is not encrypted but a passphrase was given"
            ) from None
        except (ValueError, UnsupportedAlgorithm):
            raise AuditKeyError(
                f"{key_path} is not a PEM private key, or the passphrase is wrong"
            ) from None
        if not isinstance(private, Ed25519PrivateKey):
            raise AuditKeyError(f"{key_path} is not an Ed25519 key")
        return cls(private, _parse_hmac(hmac_path.read_text(encoding="ascii", errors="replace")))

    @classmethod
    def create(
        cls, key_path: Path, hmac_path: Path, *, passphrase: bytes | None = None
    ) -> AuditKey:
        """Create both key files (mode 0600) and the public key file beside the signing key.

        When another process created a file first, its key is kept and loaded.
        """
        fresh = cls.generate()
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        pem = fresh._signing_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        hmac_text = _HMAC_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() + "\n"
        _write_new(key_path, pem, 0o600)
        _write_new(hmac_path, hmac_text.encode("ascii"), 0o600)
        loaded = cls.load(key_path, hmac_path, passphrase=passphrase)
        _write_new(public_key_file(key_path), loaded.public_pem(), 0o644)
        return loaded

    @classmethod
    def load_or_create(
        cls,
        key_path: Path,
        hmac_path: Path,
        *,
        passphrase: bytes | None = None,
        create: bool = True,
    ) -> AuditKey:
        """Load the keys, creating them first if neither exists and ``create`` is true.

        Raises:
            AuditKeyError: Only one of the two files exists, or they are unusable.
        """
        present = key_path.exists(), hmac_path.exists()
        if present == (False, False) and create:
            return cls.create(key_path, hmac_path, passphrase=passphrase)
        if present == (True, True):
            return cls.load(key_path, hmac_path, passphrase=passphrase)
        missing = key_path if not present[0] else hmac_path
        raise AuditKeyError(
            f"the audit key file {missing} is missing; restore it from backup "
            "(a new key cannot continue an existing trail)"
        )


def event_mac(mac_key: bytes, seq: int, leaf: bytes) -> bytes:
    """The MAC of the event at ``seq`` with leaf hash ``leaf``."""
    return hmac.new(mac_key, seq.to_bytes(8, "big") + leaf, hashlib.sha256).digest()


def _parse_hmac(text: str) -> bytes:
    text = text.strip()
    if not text.startswith(_HMAC_PREFIX):
        raise AuditKeyError("the audit HMAC key file is not in the expected format")
    try:
        key = base64.urlsafe_b64decode(text.removeprefix(_HMAC_PREFIX))
    except ValueError:
        raise AuditKeyError("the audit HMAC key file is not valid base64") from None
    return key


def load_mac_key(hmac_path: Path) -> bytes:
    """The derived event-MAC key from an HMAC key file (for the verifier).

    Raises:
        AuditKeyError: The file is missing, readable by others, or malformed.
    """
    if not hmac_path.is_file():
        raise AuditKeyError(f"the audit HMAC key file {hmac_path} does not exist")
    _check_private_file(hmac_path)
    root = _parse_hmac(hmac_path.read_text(encoding="ascii", errors="replace"))
    return hmac.new(root, _MAC_LABEL, hashlib.sha256).digest()
