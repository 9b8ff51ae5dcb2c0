"""The immutable certificate builder and the certificate profile it produces."""

from __future__ import annotations

import ipaddress
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from barbacana.transport import CertificateBuilder, CertificateBuilderError, spiffe_id
from tests.transport.conftest import need_tool

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        CertificateBuilder()
        .certificate_authority("Test CA")
        .public_key(key.public_key())
        .validity(NOW, timedelta(days=365))
        .signed_by(key)
        .build()
    )
    return cert, key


def leaf_builder(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], not_before: datetime = NOW
) -> CertificateBuilder:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        CertificateBuilder()
        .service("orders")
        .trust_domain("barbacana.internal")
        .dns_names(["orders", "localhost"])
        .ip_addresses(["127.0.0.1", "::1"])
        .public_key(key.public_key())
        .validity(not_before, timedelta(days=7))
        .signed_by(ca[1], ca[0])
    )


class TestImmutability:
    def test_each_call_returns_a_new_builder(self) -> None:
        empty = CertificateBuilder()
        named = empty.service("orders")
        assert named is not empty
        # The original is untouched: it can still be given a different kind.
        assert empty.client("batch") is not named

    def test_field_set_twice_is_refused(self) -> None:
        builder = CertificateBuilder().service("orders")
        with pytest.raises(CertificateBuilderError, match="'kind' is already set"):
            builder.client("other")
        with pytest.raises(CertificateBuilderError, match="'dns_names' is already set"):
            builder.dns_names(["a"]).dns_names(["b"])

    @pytest.mark.parametrize(
        ("drop", "field"),
        [
            ("kind", "kind"),
            ("public_key", "public_key"),
            ("validity", "validity"),
            ("signed_by", "signing_key"),
            ("trust_domain", "trust_domain"),
        ],
    )
    def test_missing_field_is_named(
        self, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], drop: str, field: str
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        steps = {
            "kind": lambda b: b.service("orders"),
            "trust_domain": lambda b: b.trust_domain("barbacana.internal"),
            "public_key": lambda b: b.public_key(key.public_key()),
            "validity": lambda b: b.validity(NOW, timedelta(days=1)),
            "signed_by": lambda b: b.signed_by(ca[1], ca[0]),
        }
        builder = CertificateBuilder()
        for name, step in steps.items():
            if name != drop:
                builder = step(builder)
        with pytest.raises(CertificateBuilderError, match=f"'{field}' is missing"):
            builder.build()


class TestValues:
    @pytest.mark.parametrize("name", ["Orders", "../etc", "a_b", "-x", "x" * 64, ""])
    def test_bad_service_name(self, name: str) -> None:
        with pytest.raises(CertificateBuilderError, match="not a valid name"):
            CertificateBuilder().service(name)

    @pytest.mark.parametrize("dns", ["*.example.com", "a..b", "bad name", "x;y"])
    def test_bad_dns_name(self, dns: str) -> None:
        with pytest.raises(CertificateBuilderError, match="not a DNS name"):
            CertificateBuilder().dns_names([dns])

    def test_bad_ip(self) -> None:
        with pytest.raises(CertificateBuilderError, match="not an IP address"):
            CertificateBuilder().ip_addresses(["300.1.1.1"])

    def test_only_p256_keys(self) -> None:
        with pytest.raises(CertificateBuilderError, match="P-256"):
            CertificateBuilder().public_key(ec.generate_private_key(ec.SECP384R1()).public_key())
        with pytest.raises(CertificateBuilderError, match="P-256"):
            CertificateBuilder().public_key(
                rsa.generate_private_key(65537, 2048).public_key()  # type: ignore[arg-type]
            )

    def test_naive_datetime_refused(self) -> None:
        with pytest.raises(CertificateBuilderError, match="timezone-aware"):
            CertificateBuilder().validity(datetime(2030, 1, 1), timedelta(days=1))

    def test_signing_key_must_match_issuer(
        self, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
    ) -> None:
        with pytest.raises(CertificateBuilderError, match="does not belong"):
            CertificateBuilder().signed_by(ec.generate_private_key(ec.SECP256R1()), ca[0])

    def test_ca_takes_no_names(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            CertificateBuilder()
            .certificate_authority("CA")
            .dns_names(["x"])
            .public_key(key.public_key())
            .validity(NOW, timedelta(days=1))
            .signed_by(key)
        )
        with pytest.raises(CertificateBuilderError, match="no trust domain, DNS"):
            builder.build()


class TestProfile:
    """RFC 5280 / SPIFFE X509-SVID profile of what is built."""

    def test_service_certificate(
        self, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
    ) -> None:
        cert = leaf_builder(ca).build()
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert san.critical is False  # sslyze rejects a critical SAN; the subject is not empty
        assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
            spiffe_id("barbacana.internal", "orders")
        ]
        assert san.value.get_values_for_type(x509.DNSName) == ["orders", "localhost"]
        assert san.value.get_values_for_type(x509.IPAddress) == [
            ipaddress.ip_address("127.0.0.1"),
            ipaddress.ip_address("::1"),
        ]
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert basic.critical
        assert basic.value.ca is False
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical
        assert usage.value.digital_signature
        assert not usage.value.key_cert_sign
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = ca[0].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ski.digest
        assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
        assert cert.not_valid_after_utc == NOW + timedelta(days=7)
        cert.verify_directly_issued_by(ca[0])

    def test_client_certificate_is_client_only(
        self, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            CertificateBuilder()
            .client("batch")
            .trust_domain("barbacana.internal")
            .public_key(key.public_key())
            .validity(NOW, timedelta(days=1))
            .signed_by(ca[1], ca[0])
            .build()
        )
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]

    def test_ca_certificate(self, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> None:
        basic = ca[0].extensions.get_extension_for_class(x509.BasicConstraints)
        assert basic.critical
        assert basic.value.ca
        assert basic.value.path_length == 0
        usage = ca[0].extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.key_cert_sign
        assert usage.crl_sign

    def test_serials_are_random_and_positive(
        self, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
    ) -> None:
        serials = {leaf_builder(ca).build().serial_number for _ in range(5)}
        assert len(serials) == 5
        assert all(0 < s < 2**159 for s in serials)

    def test_openssl_strict_verification(self, tmp_path: Path) -> None:
        """OpenSSL's strict mode accepts the chain for both TLS purposes."""
        openssl = need_tool("openssl")
        now = datetime.now(UTC)  # openssl verify checks dates against the real clock
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (
            CertificateBuilder()
            .certificate_authority("Test CA")
            .public_key(ca_key.public_key())
            .validity(now, timedelta(days=1))
            .signed_by(ca_key)
            .build()
        )
        leaf = leaf_builder((ca_cert, ca_key), not_before=now).build()
        ca_file, leaf_file = tmp_path / "ca.pem", tmp_path / "leaf.pem"
        ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        leaf_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        for purpose in ("sslserver", "sslclient"):
            command = [openssl, "verify", "-x509_strict", "-purpose", purpose]
            command += ["-CAfile", str(ca_file), str(leaf_file)]
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=20, check=False
            )
            assert result.returncode == 0, result.stdout + result.stderr
