"""The internal CA: a directory of PEM files and the operations on it.

Layout (every private key is mode 0600; the directory is 0700)::

    ca.pem            the CA certificate: what every service and client trusts
    ca-key.pem        the CA private key, optionally encrypted with a passphrase
    <name>.pem        a service or client certificate
    <name>-key.pem    its private key

Writes are atomic (a temporary file renamed over the old one), the key before
its certificate, so a reader never sees half a file; a running server that
reloads its certificate checks that the pair matches before using it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import ipaddress
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import SecretStr

from .._clock import Clock, system_clock
from ._builder import CertificateBuilder, CertificateKind, check_name
from ._settings import TransportSettings
from .errors import (
    CertificateBuilderError,
    CertificateError,
    CertificateExistsError,
    CertificateNotFoundError,
    KeyPassphraseError,
)

__all__ = ["CertificateInfo", "Pki", "ServiceCredentials", "keep_renewed"]

_log = structlog.get_logger("barbacana.transport")

_CA = "ca"
_RESERVED = frozenset({_CA})


@dataclasses.dataclass(frozen=True)
class ServiceCredentials:
    """The three files a TLS endpoint needs: its certificate, its key, and the CA to trust."""

    cert_file: Path
    key_file: Path
    ca_file: Path


@dataclasses.dataclass(frozen=True)
class CertificateInfo:
    """What ``barbacana pki list`` shows about one certificate."""

    name: str
    kind: CertificateKind
    serial_number: int
    not_before: datetime
    not_after: datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    spiffe_id: str | None
    #: SHA-256 of the DER certificate, hex.
    fingerprint: str
    path: Path

    @classmethod
    def from_certificate(cls, name: str, cert: x509.Certificate, path: Path) -> CertificateInfo:
        """Describe ``cert``, stored at ``path`` under ``name``."""
        dns: tuple[str, ...] = ()
        ips: tuple[str, ...] = ()
        uris: list[str] = []
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            pass
        else:
            dns = tuple(san.get_values_for_type(x509.DNSName))
            ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
            uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        return cls(
            name=name,
            kind=_kind_of(cert),
            serial_number=cert.serial_number,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            dns_names=dns,
            ip_addresses=ips,
            spiffe_id=next((uri for uri in uris if uri.startswith("spiffe://")), None),
            fingerprint=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
            path=path,
        )


def _kind_of(cert: x509.Certificate) -> CertificateKind:
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return "ca"
    except x509.ExtensionNotFound:
        pass
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return "service"
    return "service" if ExtendedKeyUsageOID.SERVER_AUTH in usages else "client"


class Pki:
    """An internal certificate authority stored in ``directory``.

    Args:
        directory: where the PEM files live (created 0700 by :meth:`init`).
        settings: trust domain, lifetimes and the CA passphrase.
        passphrase: overrides ``settings.ca_passphrase``; encrypts the CA key.
        clock: the time, injected (issue "in the past" to test expiry).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        settings: TransportSettings | None = None,
        passphrase: str | bytes | SecretStr | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.directory = Path(directory)
        self.settings = settings or TransportSettings()
        secret = passphrase if passphrase is not None else self.settings.ca_passphrase
        if isinstance(secret, SecretStr):
            secret = secret.get_secret_value()
        self._passphrase = secret.encode() if isinstance(secret, str) else secret
        self._clock = clock

    def __repr__(self) -> str:
        return f"Pki({str(self.directory)!r}, trust_domain={self.settings.trust_domain!r})"

    # Paths

    @property
    def ca_file(self) -> Path:
        """The CA certificate every endpoint trusts."""
        return self.directory / "ca.pem"

    @property
    def ca_key_file(self) -> Path:
        """The CA private key (0600, optionally encrypted)."""
        return self.directory / "ca-key.pem"

    def cert_file(self, name: str) -> Path:
        """Where the certificate ``name`` is stored."""
        return self.directory / f"{_leaf_name(name)}.pem"

    def key_file(self, name: str) -> Path:
        """Where the private key of ``name`` is stored."""
        return self.directory / f"{_leaf_name(name)}-key.pem"

    def credentials(self, name: str) -> ServiceCredentials:
        """The files of ``name`` and the CA.

        Raises:
            CertificateNotFoundError: ``name`` or the CA has not been issued.
        """
        creds = ServiceCredentials(self.cert_file(name), self.key_file(name), self.ca_file)
        for path in (creds.ca_file, creds.cert_file, creds.key_file):
            if not path.is_file():
                raise CertificateNotFoundError(f"{path.name} does not exist in {self.directory}")
        return creds

    # The CA

    def exists(self) -> bool:
        """Whether the CA has been created."""
        return self.ca_file.is_file() and self.ca_key_file.is_file()

    def init(self, *, common_name: str = "Barbacana internal CA") -> CertificateInfo:
        """Create the CA: an ECDSA P-256 key and a self-signed certificate.

        Raises:
            CertificateExistsError: a CA already exists here (issued certificates
                would no longer verify against a new one).
        """
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._locked():
            if self.ca_file.exists() or self.ca_key_file.exists():
                raise CertificateExistsError(f"a CA already exists in {self.directory}")
            key = ec.generate_private_key(ec.SECP256R1())
            cert = (
                CertificateBuilder()
                .certificate_authority(common_name)
                .public_key(key.public_key())
                .validity(self._now(), self.settings.ca_lifetime)
                .signed_by(key)
                .build()
            )
            self._write_key(self.ca_key_file, key, encrypt=True)
            self._write_cert(self.ca_file, cert)
        return CertificateInfo.from_certificate(_CA, cert, self.ca_file)

    def ensure_ca(self) -> CertificateInfo:
        """Create the CA unless it exists; return it."""
        if not self.exists():
            with contextlib.suppress(CertificateExistsError):
                return self.init()
        return self.info(_CA)

    # Leaves

    def issue(
        self,
        name: str,
        *,
        dns: Iterable[str] = (),
        ips: Iterable[str] = (),
        days: float | None = None,
        kind: CertificateKind = "service",
    ) -> CertificateInfo:
        """Issue (or replace) the certificate ``name`` with a new key.

        Its SAN carries ``spiffe://<trust-domain>/svc/<name>``, the DNS names and
        the IP addresses. ``days`` defaults to ``settings.cert_lifetime``.

        Raises:
            CertificateNotFoundError: the CA does not exist (run :meth:`init`).
            KeyPassphraseError: the CA key is encrypted and the passphrase is wrong.
            CertificateBuilderError: a bad name, DNS name or IP address.
        """
        if kind == "ca":
            raise CertificateBuilderError("use init() to create the CA")
        _leaf_name(name)
        lifetime = self.settings.cert_lifetime if days is None else timedelta(days=days)
        with self._locked():
            ca_cert, ca_key = self._load_ca()
            key = ec.generate_private_key(ec.SECP256R1())
            builder = CertificateBuilder()
            builder = builder.service(name) if kind == "service" else builder.client(name)
            cert = (
                builder.trust_domain(self.settings.trust_domain)
                .dns_names(dns)
                .ip_addresses(ips)
                .public_key(key.public_key())
                .validity(self._now(), lifetime)
                .signed_by(ca_key, ca_cert)
                .build()
            )
            # Key first: a reader that sees the new certificate also finds its key.
            self._write_key(self.key_file(name), key, encrypt=False)
            self._write_cert(self.cert_file(name), cert)
        return CertificateInfo.from_certificate(name, cert, self.cert_file(name))

    def issue_client(self, name: str, *, days: float | None = None) -> CertificateInfo:
        """Issue a client-only certificate (``clientAuth``) for a program or a test."""
        return self.issue(name, days=days, kind="client")

    def info(self, name: str) -> CertificateInfo:
        """Describe the certificate ``name`` (``"ca"`` for the CA).

        Raises:
            CertificateNotFoundError: no such certificate.
        """
        path = self.ca_file if name == _CA else self.cert_file(name)
        return CertificateInfo.from_certificate(name, _read_cert(path), path)

    def list(self) -> list[CertificateInfo]:
        """Every certificate, the CA first, then by name."""
        if not self.directory.is_dir():
            return []
        found: list[CertificateInfo] = []
        if self.ca_file.is_file():
            found.append(self.info(_CA))
        for path in sorted(self.directory.glob("*.pem")):
            name = path.name.removesuffix(".pem")
            if name == _CA or name.endswith("-key") or path.name.startswith("."):
                continue
            found.append(CertificateInfo.from_certificate(name, _read_cert(path), path))
        return found

    def rotate(self, name: str, *, days: float | None = None) -> CertificateInfo:
        """Re-issue ``name`` with a new key, the same kind and the same SAN entries.

        Raises:
            CertificateNotFoundError: ``name`` has never been issued.
        """
        if name == _CA:
            raise CertificateBuilderError(
                "the CA is not rotated in place: every certificate it signed would stop "
                "verifying; create a new PKI directory and re-issue instead"
            )
        current = self.info(name)
        return self.issue(
            name,
            dns=current.dns_names,
            ips=current.ip_addresses,
            days=days,
            kind=current.kind,
        )

    def needs_renewal(self, name: str, within: timedelta | None = None) -> bool:
        """Whether ``name`` expires within ``within`` (default ``settings.renew_before``).

        Raises:
            CertificateNotFoundError: ``name`` has never been issued.
        """
        window = self.settings.renew_before if within is None else within
        return self.info(name).not_after - window <= self._now()

    def ensure_service(
        self,
        name: str,
        *,
        dns: Iterable[str] = (),
        ips: Iterable[str] = (),
        days: float | None = None,
    ) -> ServiceCredentials:
        """Issue ``name`` if it is missing, expiring soon, from another CA, or lacks a SAN.

        Creates the CA first when there is none. Call it at start-up and then
        periodically: a running server picks up the new files itself
        (:class:`~barbacana.transport.CertificateReloader`).
        """
        dns, ips = tuple(dns), tuple(ips)
        self.ensure_ca()
        if self._is_current(name, dns, ips):
            return self.credentials(name)
        self.issue(name, dns=dns, ips=ips, days=days)
        return self.credentials(name)

    def _is_current(self, name: str, dns: tuple[str, ...], ips: tuple[str, ...]) -> bool:
        try:
            info = self.info(name)
            cert = _read_cert(info.path)
            key = _read_key(self.key_file(name), None)
        except CertificateError:
            return False
        ca = _read_cert(self.ca_file)
        ip_set = {ipaddress.ip_address(ip) for ip in ips}
        return (
            info.kind == "service"
            and info.spiffe_id is not None
            and info.spiffe_id.startswith(f"spiffe://{self.settings.trust_domain}/")
            and cert.issuer == ca.subject
            and _signed_by(cert, ca)
            and key.public_key() == cert.public_key()
            and set(dns) <= set(info.dns_names)
            and ip_set <= {ipaddress.ip_address(ip) for ip in info.ip_addresses}
            and not self.needs_renewal(name)
        )

    # Internals

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if not self.exists():
            raise CertificateNotFoundError(
                f"no CA in {self.directory}: create one first (barbacana pki init)"
            )
        return _read_cert(self.ca_file), _read_key(self.ca_key_file, self._passphrase)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # One writer at a time, across processes (``barbacana up`` starts several).
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write_key(self, path: Path, key: ec.EllipticCurvePrivateKey, *, encrypt: bool) -> None:
        algorithm: serialization.KeySerializationEncryption = serialization.NoEncryption()
        if encrypt and self._passphrase:
            algorithm = serialization.BestAvailableEncryption(self._passphrase)
        data = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algorithm
        )
        _atomic_write(path, data, 0o600)

    @staticmethod
    def _write_cert(path: Path, cert: x509.Certificate) -> None:
        _atomic_write(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


async def keep_renewed(
    pki: Pki,
    name: str,
    *,
    dns: Iterable[str] = (),
    ips: Iterable[str] = (),
    interval: float = 3600.0,
) -> None:
    """Run :meth:`Pki.ensure_service` every ``interval`` seconds, until cancelled.

    Run it as a background task next to a server built with
    :func:`~barbacana.transport.serve_config`: this renews the files before they
    expire, and the server's reloader loads them. A failed renewal is logged and
    retried at the next interval (the current certificate is still valid for
    ``renew_before``, days by default), rather than stopping the service.
    """
    dns, ips = tuple(dns), tuple(ips)
    while True:
        try:
            await asyncio.to_thread(pki.ensure_service, name, dns=dns, ips=ips)
        except CertificateError as exc:
            _log.warning("certificate_renewal_failed", name=name, reason=exc.detail)
        await asyncio.sleep(interval)


def _leaf_name(name: str) -> str:
    check_name(name)
    if name in _RESERVED or name.endswith("-key"):
        raise CertificateBuilderError(f"{name!r} is reserved for the PKI's own files")
    return name


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_cert(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CertificateNotFoundError(f"{path.name} does not exist in {path.parent}") from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CertificateError(f"{path.name} is not a PEM certificate") from None


def _read_key(path: Path, passphrase: bytes | None) -> ec.EllipticCurvePrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CertificateNotFoundError(f"{path.name} does not exist in {path.parent}") from None
    try:
        key = serialization.load_pem_private_key(data, passphrase)
    except TypeError:
        if passphrase:
            raise KeyPassphraseError(
                f"{path.name} is not encrypted, but a passphrase was given"
            ) from None
        raise KeyPassphraseError(
            f"{path.name} is encrypted: give its passphrase "
            "(BARBACANA_TRANSPORT_CA_PASSPHRASE or --passphrase-file)"
        ) from None
    except ValueError:
        if passphrase:
            raise KeyPassphraseError(f"wrong passphrase for {path.name}") from None
        raise CertificateError(f"{path.name} is not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{path.name} is not an ECDSA key")
    return key
