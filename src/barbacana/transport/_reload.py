"""Reload a renewed certificate into a live server context, dropping no connection.

``SSLContext.load_cert_chain`` on the context a server already listens with
changes what *new* connections present: OpenSSL copies the context's
certificate into each connection object when it is created, so connections
already open, or accepted and still handshaking, keep the old one. Two traps
are avoided here:

* loading a certificate whose key does not match empties the context's key
  (OpenSSL drops the old key when the new certificate arrives, then refuses the
  mismatched key), so every later handshake would fail. The pair is read once,
  checked in memory, and only a matching pair is loaded, from a private copy;
* no connection may be created half-way through a load (new certificate, key
  not yet replaced): :meth:`check` is meant to run on the server's event-loop
  thread, where connections are created too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .errors import TLSContextError

__all__ = ["CertificateReloader"]

_log = structlog.get_logger("barbacana.transport")

_Signature = tuple[tuple[int, int, int], ...]


class CertificateReloader:
    """Watch a certificate and key pair and load each renewal into ``context``.

    Args:
        context: the live server context (the very object the server listens with).
        cert_file, key_file: the files a :class:`~barbacana.transport.Pki` renews.
        key_password: the key's passphrase, if it is encrypted.
        on_reload: called with the new certificate after each successful reload.
    """

    def __init__(
        self,
        context: ssl.SSLContext,
        cert_file: str | os.PathLike[str],
        key_file: str | os.PathLike[str],
        *,
        key_password: str | None = None,
        on_reload: Callable[[x509.Certificate], None] | None = None,
    ) -> None:
        self.context = context
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self._password = key_password
        self._on_reload = on_reload
        self._signature = self._stat()
        self._failed: _Signature | None = None
        self.certificate = self._read_pair()[0]
        #: How many renewals were loaded.
        self.reloads = 0

    def _stat(self) -> _Signature:
        signature = []
        for path in (self.cert_file, self.key_file):
            try:
                st = path.stat()
            except FileNotFoundError:
                signature.append((0, 0, 0))
            else:
                signature.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(signature)

    def _read_pair(self) -> tuple[x509.Certificate, bytes, bytes]:
        try:
            cert_pem = self.cert_file.read_bytes()
            key_pem = self.key_file.read_bytes()
        except OSError as exc:
            raise TLSContextError(f"cannot read {self.cert_file.name} or its key") from exc
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            key = serialization.load_pem_private_key(
                key_pem, self._password.encode() if self._password else None
            )
        except (ValueError, TypeError) as exc:
            raise TLSContextError(f"{self.cert_file.name} or its key is unreadable") from exc
        if key.public_key() != cert.public_key():
            raise TLSContextError(
                f"{self.cert_file.name} does not match its key (a renewal in progress?)"
            )
        return cert, cert_pem, key_pem

    def reload(self) -> x509.Certificate:
        """Load the current files into the context now.

        Raises:
            TLSContextError: the files are unreadable or do not match; the context
                keeps its previous certificate.
        """
        cert, cert_pem, key_pem = self._read_pair()
        # The pair checked above is loaded from a private copy, so a renewal
        # landing between the check and the load cannot mix two pairs.
        fd, tmp = tempfile.mkstemp(dir=self.key_file.parent, prefix=".reload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(key_pem + b"\n" + cert_pem)
            try:
                self.context.load_cert_chain(tmp, password=self._password)
            except (OSError, ssl.SSLError) as exc:
                raise TLSContextError(f"cannot load {self.cert_file.name}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.certificate = cert
        self.reloads += 1
        if self._on_reload is not None:
            self._on_reload(cert)
        return cert

    def check(self) -> bool:
        """Reload if the files changed since the last look; return whether it did.

        A pair caught half-written is skipped and retried at the next check.
        """
        signature = self._stat()
        if signature in (self._signature, self._failed):
            return False
        try:
            cert = self.reload()
        except TLSContextError as exc:
            # Remember the bad state so it is reported once, not at every check.
            self._failed = signature
            _log.warning("certificate_reload_skipped", file=str(self.cert_file), reason=str(exc))
            return False
        self._signature = signature
        _log.info(
            "certificate_reloaded",
            file=str(self.cert_file),
            serial=format(cert.serial_number, "x"),
            not_after=cert.not_valid_after_utc.isoformat(),
        )
        return True

    async def run(self, interval: float = 1.0) -> None:
        """Check every ``interval`` seconds until cancelled (for servers other than uvicorn)."""
        while True:
            await asyncio.sleep(interval)
            self.check()
