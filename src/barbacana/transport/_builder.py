"""An immutable builder for the internal CA, service and client certificates.

Each call returns a new builder; setting a field twice is refused, and
:meth:`CertificateBuilder.build` names the first missing field. The profile
follows RFC 5280 and the SPIFFE X509-SVID spec:

* the subject is never empty, so the subjectAltName extension is *not* critical
  (RFC 5280 §4.2.1.6; scanners such as sslyze reject a critical SAN);
* a leaf carries exactly one URI SAN, ``spiffe://<trust-domain>/svc/<name>``
  (X509-SVID §2), plus the DNS names and IP addresses it is reached by;
* basicConstraints and keyUsage are critical (RFC 5280 §4.2.1.9, §4.2.1.3);
  the CA has ``pathLen=0``, so it can sign leaves only;
* extendedKeyUsage: services are both TLS servers and TLS clients (mTLS), a
  client certificate is ``clientAuth`` only (RFC 5280 §4.2.1.12);
* subject and authority key identifiers link leaf and CA (RFC 5280 §4.2.1.1-2),
  which OpenSSL's strict verification mode requires.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import CertificateBuilderError

__all__ = ["CertificateBuilder", "CertificateKind", "spiffe_id"]

CertificateKind = Literal["ca", "service", "client"]

#: A service name: a DNS label (RFC 1123 §2.1), lowercase; also a safe file name.
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# An RFC 1123 host name: dot-separated labels, 253 characters at most; no wildcard.
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
#: Clocks of different machines disagree; a certificate is valid from a little before now.
_BACKDATE = timedelta(minutes=5)


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid service name, else raise :class:`CertificateBuilderError`.

    Names become file names and SPIFFE path segments, so they are DNS labels:
    lowercase letters, digits and inner dashes, at most 63 characters.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CertificateBuilderError(
            f"{name!r} is not a valid name: use lowercase letters, digits and inner dashes "
            "(a DNS label, at most 63 characters)"
        )
    return name


def spiffe_id(trust_domain: str, name: str) -> str:
    """The SPIFFE ID of service ``name``: ``spiffe://<trust-domain>/svc/<name>``."""
    return f"spiffe://{trust_domain}/svc/{name}"


@dataclasses.dataclass(frozen=True)
class _Fields:
    kind: CertificateKind | None = None
    name: str | None = None
    trust_domain: str | None = None
    dns_names: tuple[str, ...] | None = None
    ip_addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] | None = None
    public_key: ec.EllipticCurvePublicKey | None = None
    not_before: datetime | None = None
    lifetime: timedelta | None = None
    signing_key: ec.EllipticCurvePrivateKey | None = None
    issuer: x509.Certificate | None = None
    serial_number: int | None = None


class CertificateBuilder:
    """Build a CA, service or client certificate, one field per call.

    Example::

        cert = (
            CertificateBuilder()
            .service("orders")
            .trust_domain("barbacana.internal")
            .dns_names(["orders", "localhost"])
            .ip_addresses(["127.0.0.1"])
            .public_key(key.public_key())
            .validity(now, timedelta(days=7))
            .signed_by(ca_key, ca_cert)
            .build()
        )

    Raises:
        CertificateBuilderError: a field set twice, a bad value, or (from
            :meth:`build`) a missing field, named in the message.
    """

    __slots__ = ("_fields",)

    def __init__(self) -> None:
        self._fields = _Fields()

    def _with(self, field: str, value: Any) -> CertificateBuilder:
        if getattr(self._fields, field) is not None:
            raise CertificateBuilderError(f"the certificate field {field!r} is already set")
        clone = CertificateBuilder()
        clone._fields = dataclasses.replace(self._fields, **{field: value})
        return clone

    def _kind(self, kind: CertificateKind, name: str) -> CertificateBuilder:
        if self._fields.kind is not None:
            raise CertificateBuilderError("the certificate field 'kind' is already set")
        return self._with("kind", kind)._with("name", name)

    def certificate_authority(self, common_name: str) -> CertificateBuilder:
        """A self-signed CA whose subject common name is ``common_name``."""
        if not common_name or len(common_name) > 64:
            raise CertificateBuilderError("a CA common name must be 1 to 64 characters")
        return self._kind("ca", common_name)

    def service(self, name: str) -> CertificateBuilder:
        """A service certificate (TLS server and client) for service ``name``."""
        return self._kind("service", check_name(name))

    def client(self, name: str) -> CertificateBuilder:
        """A client-only certificate for a program or test named ``name``."""
        return self._kind("client", check_name(name))

    def trust_domain(self, trust_domain: str) -> CertificateBuilder:
        """The SPIFFE trust domain of the leaf's URI identity."""
        if not re.fullmatch(r"[a-z0-9._-]{1,255}", trust_domain):
            raise CertificateBuilderError(f"{trust_domain!r} is not a SPIFFE trust domain")
        return self._with("trust_domain", trust_domain)

    def dns_names(self, names: Iterable[str]) -> CertificateBuilder:
        """DNS names the certificate is valid for (no wildcards)."""
        checked = tuple(dict.fromkeys(names))
        for name in checked:
            if not _DNS.fullmatch(name):
                raise CertificateBuilderError(f"{name!r} is not a DNS name")
        return self._with("dns_names", checked)

    def ip_addresses(self, addresses: Iterable[str]) -> CertificateBuilder:
        """IP addresses the certificate is valid for."""
        checked: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        for address in addresses:
            try:
                checked.append(ipaddress.ip_address(address))
            except ValueError:
                raise CertificateBuilderError(f"{address!r} is not an IP address") from None
        return self._with("ip_addresses", tuple(dict.fromkeys(checked)))

    def public_key(self, key: ec.EllipticCurvePublicKey) -> CertificateBuilder:
        """The subject's public key: ECDSA on P-256."""
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise CertificateBuilderError("the public key must be ECDSA on P-256")
        return self._with("public_key", key)

    def validity(self, not_before: datetime, lifetime: timedelta) -> CertificateBuilder:
        """Valid from a few minutes before ``not_before`` (clock skew) for ``lifetime``."""
        if not_before.tzinfo is None:
            raise CertificateBuilderError("not_before must be timezone-aware")
        if lifetime <= timedelta(0):
            raise CertificateBuilderError("the lifetime must be positive")
        return self._with("not_before", not_before)._with("lifetime", lifetime)

    def signed_by(
        self, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None = None
    ) -> CertificateBuilder:
        """The signing key, and the issuing CA certificate (``None`` for the self-signed CA)."""
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateBuilderError("the signing key must be an ECDSA private key")
        clone = self._with("signing_key", key)
        if issuer is not None:
            if issuer.public_key() != key.public_key():
                raise CertificateBuilderError("the signing key does not belong to the issuer")
            clone = clone._with("issuer", issuer)
        return clone

    def serial_number(self, serial: int) -> CertificateBuilder:
        """An explicit serial number (default: 159 random bits, RFC 5280 §4.1.2.2)."""
        if not 0 < serial < 2**159:
            raise CertificateBuilderError("a serial number must be positive and under 2**159")
        return self._with("serial_number", serial)

    def build(self) -> x509.Certificate:
        """Sign and return the certificate.

        Raises:
            CertificateBuilderError: a required field is missing (named), or the
                field set does not fit the certificate kind.
        """
        f = self._fields
        if f.kind is None or f.name is None:
            raise _missing("kind")
        if f.public_key is None:
            raise _missing("public_key")
        if f.not_before is None or f.lifetime is None:
            raise _missing("validity")
        if f.signing_key is None:
            raise _missing("signing_key")
        start = f.not_before.astimezone(UTC)
        base = (
            x509.CertificateBuilder()
            .public_key(f.public_key)
            .serial_number(f.serial_number or x509.random_serial_number())
            .not_valid_before(start - _BACKDATE)
            .not_valid_after(start + f.lifetime)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(f.public_key), critical=False)
        )
        if f.kind == "ca":
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Barbacana"),
                    x509.NameAttribute(NameOID.COMMON_NAME, f.name),
                ]
            )
            return self._build_ca(f, base, subject, f.public_key, f.signing_key)
        if f.trust_domain is None:
            raise _missing("trust_domain")
        if f.issuer is None:
            raise _missing("issuer")
        return self._build_leaf(f, base, f.name, f.trust_domain, f.issuer, f.signing_key)

    @staticmethod
    def _build_ca(
        f: _Fields,
        base: x509.CertificateBuilder,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        signing_key: ec.EllipticCurvePrivateKey,
    ) -> x509.Certificate:
        if f.issuer is not None:
            raise CertificateBuilderError("a CA certificate is self-signed: give no issuer")
        if f.dns_names or f.ip_addresses or f.trust_domain:
            raise CertificateBuilderError(
                "a CA certificate carries no trust domain, DNS names or IP addresses"
            )
        if signing_key.public_key() != public_key:
            raise CertificateBuilderError("a self-signed CA must be signed by its own key")
        builder = (
            base.subject_name(subject)
            .issuer_name(subject)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
        )
        return builder.sign(signing_key, hashes.SHA256())

    @staticmethod
    def _build_leaf(
        f: _Fields,
        base: x509.CertificateBuilder,
        name: str,
        trust_domain: str,
        issuer: x509.Certificate,
        signing_key: ec.EllipticCurvePrivateKey,
    ) -> x509.Certificate:
        alt_names: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(spiffe_id(trust_domain, name))
        ]
        alt_names += [x509.DNSName(name) for name in f.dns_names or ()]
        alt_names += [x509.IPAddress(address) for address in f.ip_addresses or ()]
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if f.kind == "service":
            usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
        try:
            ca_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:
            raise CertificateBuilderError("the issuer has no subject key identifier") from None
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Barbacana"),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        builder = (
            base.subject_name(subject)
            .issuer_name(issuer.subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            # Not critical: the subject is not empty (RFC 5280 §4.2.1.6).
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
        )
        return builder.sign(signing_key, hashes.SHA256())


def _missing(field: str) -> CertificateBuilderError:
    return CertificateBuilderError(f"the certificate field {field!r} is missing")


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    # ECDSA keys sign only: digitalSignature for TLS; the CA also signs certificates and CRLs.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
