"""The audit keys: an Ed25519 key that signs checkpoints, and an HMAC key.

Both live in files of the data directory (``<data_dir>/audit/``, mode 0600),
never in the database: an attacker who can write the database cannot forge a
checkpoint signature or an event MAC. The signing key is separate from the
token-signing keys so that rotating or leaking one never touches the other.

At rest both files are *sealed* (AES-256-GCM envelope, :mod:`barbacana.crypto`)
under the key-encryption key, which comes from a secret source and never from
the database or the data directory's backups alone. A sealed file is text::

    -----BEGIN BARBACANA SEALED AUDIT SIGNING KEY-----
    <base64 of the envelope: PKCS #8 DER of the Ed25519 key>
    -----END BARBACANA SEALED AUDIT SIGNING KEY-----

(``... AUDIT HMAC KEY`` for the HMAC key, whose payload is the raw key). The
envelope's associated data names the file's purpose, so the two files cannot
stand in for each other. Files written by earlier versions (plain or
passphrase-protected PKCS #8 PEM, ``barbacana-audit-hmac-v1:`` text) still
load, and are sealed in place the first time a sealer is given. The public
key (``*.pub.pem``) stays plain: verifying the trail needs no secret.

The HMAC key is the root of two derived keys (HMAC-SHA256 with a label):

- the *event MAC* key: each stored row carries ``HMAC(seq || leaf hash)``, so
  the verifier names the exact event that was changed even when the attacker
  recomputed its leaf hash;
- the *blind index* key: values kept only as keyed HMACs (e-mail addresses...),
  searchable by whoever holds the key, unreadable to whoever reads the database.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..crypto import (
    EnvelopeError,
    EnvelopeFormatError,
    KeySealer,
    Rewrapper,
    Sealer,
    UnknownKeyEncryptionKeyError,
    kek_id_of,
)
from .errors import AuditKeyError, AuditKeyLockedError

__all__ = [
    "AuditKey",
    "key_id",
    "load_public_key",
    "public_key_file",
]

_MAC_LABEL = b"barbacana/audit/event-mac/v1"
_BLIND_LABEL = b"barbacana/audit/blind-index/v1"
_HMAC_PREFIX = "barbacana-audit-hmac-v1:"
_SEALED_BEGIN = b"-----BEGIN BARBACANA SEALED "

_log = structlog.get_logger("barbacana.audit")


@dataclass(frozen=True, slots=True)
class _Kind:
    """One of the two key files: what it is called, its armour label, its envelope context."""

    name: str
    label: str
    aad: bytes


_SIGNING = _Kind(
    "audit signing key", "BARBACANA SEALED AUDIT SIGNING KEY", b"barbacana/audit/signing-key/v1"
)
_HMAC = _Kind("audit HMAC key", "BARBACANA SEALED AUDIT HMAC KEY", b"barbacana/audit/hmac-key/v1")


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


def _read_private(path: Path) -> bytes:
    if not path.is_file():
        raise AuditKeyError(f"the audit key file {path} does not exist")
    _check_private_file(path)
    return path.read_bytes()


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


def _replace(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` (mode 0600) atomically: readers see the old or the new."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    if os.name == "posix":
        # The rename itself must reach the disk, or a crash could bring back the old file.
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# -- sealed files ---------------------------------------------------------------------------


def _is_sealed(data: bytes) -> bool:
    return data.lstrip().startswith(_SEALED_BEGIN)


def _armour(kind: _Kind, blob: bytes) -> bytes:
    body = base64.b64encode(blob).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    text = "\n".join([f"-----BEGIN {kind.label}-----", *lines, f"-----END {kind.label}-----"])
    return (text + "\n").encode("ascii")


def _unarmour(kind: _Kind, path: Path, data: bytes) -> bytes:
    """The envelope inside a sealed file, checking that the file is the expected kind."""
    try:
        lines = data.decode("ascii").strip().splitlines()
    except UnicodeDecodeError:
        raise AuditKeyError(f"{path} is not a sealed audit key file (not text)") from None
    first = lines[0].strip() if lines else ""
    if first != f"-----BEGIN {kind.label}-----":
        found = first.removeprefix("-----BEGIN ").removesuffix("-----").lower()
        raise AuditKeyError(f"{path} holds a {found}, not the {kind.name}")
    if len(lines) < 3 or lines[-1].strip() != f"-----END {kind.label}-----":
        raise AuditKeyError(f"{path} is cut short (no END line): restore it from backup")
    try:
        return base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise AuditKeyError(f"{path} is damaged (invalid base64): restore it from backup") from None


def _kek_of(sealer: KeySealer) -> str | None:
    """The id of the key a sealer seals under, when it says (ids are public)."""
    return sealer.kek.kek_id_hex if isinstance(sealer, Sealer) else None


def _open_sealed(kind: _Kind, path: Path, data: bytes, sealer: KeySealer | None) -> bytes:
    blob = _unarmour(kind, path, data)
    try:
        sealed_under = kek_id_of(blob).hex()
    except EnvelopeFormatError as exc:
        raise AuditKeyError(f"{path} is damaged (not an envelope): restore it from backup") from exc
    if sealer is None:
        raise AuditKeyLockedError(
            f"{path} is sealed under key-encryption key {sealed_under}, and no "
            "key-encryption key was given to open it",
            sealed_kek_id=sealed_under,
        )
    given = _kek_of(sealer)
    try:
        return sealer.open(blob, aad=kind.aad)
    except UnknownKeyEncryptionKeyError as exc:
        raise AuditKeyLockedError(
            f"{path} is sealed under key-encryption key {sealed_under}, but the "
            f"key-encryption key given is {given or 'another one'}",
            sealed_kek_id=sealed_under,
            given_kek_id=given,
        ) from exc
    except EnvelopeError as exc:
        raise AuditKeyError(
            f"{path} does not open under key-encryption key {sealed_under}: the file was "
            f"changed, or it is not the {kind.name}; restore it from backup"
        ) from exc


def _seal_file(kind: _Kind, path: Path, plaintext: bytes, sealer: KeySealer) -> None:
    """Replace a plain key file by its sealed form (an upgrade from an earlier version)."""
    _replace(path, _armour(kind, sealer.seal(plaintext, aad=kind.aad)))
    # The file name and the KEK id only: never the key.
    _log.warning(
        "audit_key_sealed",
        file=str(path),
        kek_id=_kek_of(sealer),
        note="the plain key file was replaced by its sealed form; backups taken before "
        "now still hold the key in clear",
    )


# -- the two payloads -----------------------------------------------------------------------


def _private_der(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _signing_from_der(path: Path, der: bytes) -> Ed25519PrivateKey:
    try:
        private = serialization.load_der_private_key(der, None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise AuditKeyError(f"{path} does not hold a private key") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise AuditKeyError(f"{path} is not an Ed25519 key")
    return private


def _signing_from_pem(path: Path, pem: bytes, passphrase: bytes | None) -> Ed25519PrivateKey:
    """A signing key file of an earlier version: PKCS #8 PEM, maybe passphrase-protected."""
    try:
        private = serialization.load_pem_private_key(pem, passphrase)
    except TypeError:
        raise AuditKeyError(
            "the audit signing key is encrypted with a passphrase: set "
            "BARBACANA_AUDIT_KEY_PASSPHRASE (once: with a key-encryption key it is then sealed)"
            if passphrase is None
            else "the audit signing key is not encrypted but a passphrase was given"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise AuditKeyError(
            f"{path} is not a PEM private key, or the passphrase is wrong"
        ) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise AuditKeyError(f"{path} is not an Ed25519 key")
    return private


def _hmac_text(root: bytes) -> bytes:
    return (_HMAC_PREFIX + base64.urlsafe_b64encode(root).decode("ascii") + "\n").encode("ascii")


def _read_signing(
    path: Path, sealer: KeySealer | None, passphrase: bytes | None
) -> tuple[Ed25519PrivateKey, bool]:
    """The signing key in ``path``, and whether the file was sealed."""
    data = _read_private(path)
    if _is_sealed(data):
        return _signing_from_der(path, _open_sealed(_SIGNING, path, data, sealer)), True
    return _signing_from_pem(path, data, passphrase), False


def _read_hmac(path: Path, sealer: KeySealer | None) -> tuple[bytes, bool]:
    """The HMAC root key in ``path``, and whether the file was sealed."""
    data = _read_private(path)
    if _is_sealed(data):
        return _open_sealed(_HMAC, path, data, sealer), True
    return _parse_hmac(data.decode("ascii", errors="replace")), False


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

    @staticmethod
    def is_sealed(path: Path) -> bool:
        """Whether ``path`` exists and holds a sealed key (rather than an earlier plain one)."""
        try:
            with path.open("rb") as handle:
                return _is_sealed(handle.read(len(_SEALED_BEGIN) + 16))
        except (FileNotFoundError, IsADirectoryError):
            return False

    @classmethod
    def load(
        cls,
        key_path: Path,
        hmac_path: Path,
        *,
        sealer: KeySealer | None = None,
        passphrase: bytes | None = None,
    ) -> AuditKey:
        """Read both keys from their files.

        With a ``sealer``, a file still in an earlier version's plain form is
        sealed in place (and a log line says so); ``passphrase`` is needed only
        to read a passphrase-protected signing key of an earlier version.

        Raises:
            AuditKeyLockedError: A file is sealed under a key-encryption key
                that ``sealer`` does not hold (or no sealer was given).
            AuditKeyError: A file is missing, unreadable, readable by others,
                changed, encrypted without a passphrase, or not an audit key.
        """
        private, signing_sealed = _read_signing(key_path, sealer, passphrase)
        root, hmac_sealed = _read_hmac(hmac_path, sealer)
        key = cls(private, root)
        if sealer is not None:
            if not signing_sealed:
                _seal_file(_SIGNING, key_path, _private_der(private), sealer)
            if not hmac_sealed:
                _seal_file(_HMAC, hmac_path, root, sealer)
            _write_new(public_key_file(key_path), key.public_pem(), 0o644)
        return key

    @classmethod
    def create(
        cls,
        key_path: Path,
        hmac_path: Path,
        *,
        sealer: KeySealer | None = None,
        passphrase: bytes | None = None,
    ) -> AuditKey:
        """Create both key files (mode 0600) and the public key file beside the signing key.

        With a ``sealer`` (what every Barbacana service passes) both files are
        sealed under its key-encryption key. Without one they are written as
        earlier versions wrote them: PKCS #8 PEM, encrypted when ``passphrase``
        is given, and the HMAC key as text. When another process created a
        file first, its key is kept and loaded.
        """
        private = Ed25519PrivateKey.generate()
        root = secrets.token_bytes(32)
        if sealer is not None:
            signing_file = _armour(_SIGNING, sealer.seal(_private_der(private), aad=_SIGNING.aad))
            hmac_file = _armour(_HMAC, sealer.seal(root, aad=_HMAC.aad))
        else:
            encryption: serialization.KeySerializationEncryption = (
                serialization.BestAvailableEncryption(passphrase)
                if passphrase
                else serialization.NoEncryption()
            )
            signing_file = private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
            hmac_file = _hmac_text(root)
        _write_new(key_path, signing_file, 0o600)
        _write_new(hmac_path, hmac_file, 0o600)
        loaded = cls.load(key_path, hmac_path, sealer=sealer, passphrase=passphrase)
        _write_new(public_key_file(key_path), loaded.public_pem(), 0o644)
        return loaded

    @classmethod
    def load_or_create(
        cls,
        key_path: Path,
        hmac_path: Path,
        *,
        sealer: KeySealer | None = None,
        passphrase: bytes | None = None,
        create: bool = True,
    ) -> AuditKey:
        """Load the keys, creating them first if neither exists and ``create`` is true.

        Raises:
            AuditKeyLockedError: A file is sealed under another key-encryption key.
            AuditKeyError: Only one of the two files exists, or they are unusable.
        """
        present = key_path.exists(), hmac_path.exists()
        if present == (False, False) and create:
            return cls.create(key_path, hmac_path, sealer=sealer, passphrase=passphrase)
        if present == (True, True):
            return cls.load(key_path, hmac_path, sealer=sealer, passphrase=passphrase)
        missing = key_path if not present[0] else hmac_path
        raise AuditKeyError(
            f"the audit key file {missing} is missing; restore it from backup "
            "(a new key cannot continue an existing trail)"
        )

    @classmethod
    def rewrap(
        cls,
        key_path: Path,
        hmac_path: Path,
        sealer: Rewrapper,
        *,
        passphrase: bytes | None = None,
    ) -> int:
        """Move both key files to ``sealer``'s current key-encryption key; how many changed.

        Only each envelope's data key is re-encrypted (the key itself is never
        written in clear); files already under the current KEK are left alone,
        and plain files of an earlier version are sealed. Both files missing
        (no trail yet) moves nothing.

        Raises:
            AuditKeyLockedError: A file is sealed under a KEK ``sealer`` does not know.
            AuditKeyError: Only one file exists, or a file is unusable.
        """
        present = key_path.exists(), hmac_path.exists()
        if present == (False, False):
            return 0
        if present != (True, True):
            missing = key_path if not present[0] else hmac_path
            raise AuditKeyError(f"the audit key file {missing} is missing; restore it from backup")
        moved = 0
        plain = 0
        for kind, path in ((_SIGNING, key_path), (_HMAC, hmac_path)):
            data = _read_private(path)
            if not _is_sealed(data):
                plain += 1
                continue
            blob = _unarmour(kind, path, data)
            # Open first: a file that does not open is reported as load() reports it.
            _open_sealed(kind, path, data, sealer)
            if sealer.needs_rewrap(blob):
                _replace(path, _armour(kind, sealer.rewrap(blob, aad=kind.aad)))
                moved += 1
        # Plain files (an earlier version) are sealed by load(); it also checks the result.
        cls.load(key_path, hmac_path, sealer=sealer, passphrase=passphrase)
        return moved + plain


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


def load_mac_key(hmac_path: Path, *, sealer: KeySealer | None = None) -> bytes:
    """The derived event-MAC key from an HMAC key file (for the verifier).

    Raises:
        AuditKeyLockedError: The file is sealed and ``sealer`` does not open it.
        AuditKeyError: The file is missing, readable by others, or malformed.
    """
    root, _ = _read_hmac(hmac_path, sealer)
    return hmac.new(root, _MAC_LABEL, hashlib.sha256).digest()
