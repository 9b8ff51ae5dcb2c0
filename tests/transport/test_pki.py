"""The internal CA on disk: files, modes, passphrase, issue, list, rotate, renewal."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from barbacana.transport import (
    CertificateBuilderError,
    CertificateExistsError,
    CertificateNotFoundError,
    KeyPassphraseError,
    Pki,
    TransportSettings,
    keep_renewed,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestInit:
    def test_files_and_modes(self, tmp_path: Path) -> None:
        pki = Pki(tmp_path / "pki")
        info = pki.init()
        assert info.kind == "ca"
        assert mode(pki.directory) == 0o700
        assert mode(pki.ca_key_file) == 0o600
        assert mode(pki.ca_file) == 0o644
        key = serialization.load_pem_private_key(pki.ca_key_file.read_bytes(), None)
        assert (
            key.public_key()
            == x509.load_pem_x509_certificate(pki.ca_file.read_bytes()).public_key()
        )

    def test_second_init_refused(self, tmp_path: Path) -> None:
        pki = Pki(tmp_path)
        pki.init()
        before = pki.ca_file.read_bytes()
        with pytest.raises(CertificateExistsError):
            pki.init()
        assert pki.ca_file.read_bytes() == before

    def test_issue_without_ca(self, tmp_path: Path) -> None:
        with pytest.raises(CertificateNotFoundError, match="pki init"):
            Pki(tmp_path).issue("orders")


class TestPassphrase:
    def test_ca_key_is_encrypted(self, tmp_path: Path) -> None:
        pki = Pki(tmp_path, passphrase="correct horse")
        pki.init()
        assert b"ENCRYPTED PRIVATE KEY" in pki.ca_key_file.read_bytes()
        pki.issue("orders")  # the passphrase opens it
        # Service keys stay unencrypted (servers load them unattended), still 0600.
        assert b"ENCRYPTED" not in pki.key_file("orders").read_bytes()
        assert mode(pki.key_file("orders")) == 0o600

    def test_wrong_passphrase(self, tmp_path: Path) -> None:
        Pki(tmp_path, passphrase="correct horse").init()
        with pytest.raises(KeyPassphraseError, match="wrong passphrase"):
            Pki(tmp_path, passphrase="battery staple").issue("orders")

    def test_missing_passphrase(self, tmp_path: Path) -> None:
        Pki(tmp_path, passphrase="correct horse").init()
        with pytest.raises(KeyPassphraseError, match="is encrypted"):
            Pki(tmp_path).issue("orders")

    def test_passphrase_from_settings(self, tmp_path: Path) -> None:
        settings = TransportSettings(ca_passphrase="from settings")  # type: ignore[arg-type]
        Pki(tmp_path, settings=settings).init()
        with pytest.raises(KeyPassphraseError):
            Pki(tmp_path).issue("x")
        Pki(tmp_path, settings=settings).issue("x")

    def test_passphrase_not_in_repr(self, tmp_path: Path) -> None:
        assert "hunter2" not in repr(Pki(tmp_path, passphrase="hunter2"))


class TestIssue:
    def test_issue_list_rotate(self, tmp_path: Path) -> None:
        pki = Pki(tmp_path)
        pki.init()
        issued = pki.issue("orders", dns=["orders", "localhost"], ips=["127.0.0.1"], days=3)
        assert issued.spiffe_id == "spiffe://barbacana.internal/svc/orders"
        assert issued.not_after - issued.not_before == timedelta(days=3, minutes=5)
        assert mode(pki.key_file("orders")) == 0o600
        pki.issue_client("batch")
        names = [(i.name, i.kind) for i in pki.list()]
        assert names == [("ca", "ca"), ("batch", "client"), ("orders", "service")]
        old_key = pki.key_file("orders").read_bytes()
        rotated = pki.rotate("orders")
        assert rotated.serial_number != issued.serial_number
        assert rotated.dns_names == ("orders", "localhost")
        assert rotated.ip_addresses == ("127.0.0.1",)
        assert rotated.kind == "service"
        assert pki.key_file("orders").read_bytes() != old_key
        assert pki.rotate("batch").kind == "client"

    def test_default_lifetime_is_short(self, tmp_path: Path) -> None:
        pki = Pki(tmp_path)
        pki.init()
        info = pki.issue("orders")
        assert info.not_after - info.not_before == timedelta(days=7, minutes=5)

    def test_configured_lifetime_and_trust_domain(self, tmp_path: Path) -> None:
        settings = TransportSettings(
            cert_lifetime=timedelta(hours=12),
            renew_before=timedelta(hours=4),
            trust_domain="prod.example",
        )
        pki = Pki(tmp_path, settings=settings)
        pki.init()
        info = pki.issue("orders")
        assert info.not_after - info.not_before == timedelta(hours=12, minutes=5)
        assert info.spiffe_id == "spiffe://prod.example/svc/orders"

    @pytest.mark.parametrize("name", ["ca", "orders-key", "../x", "Orders"])
    def test_reserved_or_bad_names(self, tmp_path: Path, name: str) -> None:
        pki = Pki(tmp_path)
        pki.init()
        with pytest.raises(CertificateBuilderError):
            pki.issue(name)
        assert sorted(p.name for p in tmp_path.glob("*.pem")) == ["ca-key.pem", "ca.pem"]

    def test_the_ca_is_not_rotated_in_place(self, tmp_path: Path) -> None:
        pki = Pki(tmp_path)
        pki.init()
        with pytest.raises(CertificateBuilderError, match="not rotated in place"):
            pki.rotate("ca")

    def test_unknown_certificate(self, tmp_path: Path) -> None:
        pki = Pki(tmp_path)
        pki.init()
        with pytest.raises(CertificateNotFoundError):
            pki.rotate("ghost")
        with pytest.raises(CertificateNotFoundError):
            pki.credentials("ghost")

    def test_no_temporary_files_left(self, tmp_path: Path) -> None:
        pki = Pki(tmp_path)
        pki.init()
        pki.issue("orders")
        pki.rotate("orders")
        pki.rotate("orders")
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".lock"]


class TestRenewal:
    def test_needs_renewal_follows_the_clock(self, tmp_path: Path) -> None:
        now = time.time()
        clock = [now]
        pki = Pki(tmp_path, clock=lambda: clock[0])
        pki.init()
        pki.issue("orders")  # 7 days, renew within 2
        assert not pki.needs_renewal("orders")
        clock[0] = now + 4.9 * 86400
        assert not pki.needs_renewal("orders")
        clock[0] = now + 5.1 * 86400
        assert pki.needs_renewal("orders")
        assert pki.needs_renewal("orders", within=timedelta(days=6)) is True

    def test_ensure_service(self, tmp_path: Path) -> None:
        now = time.time()
        clock = [now]
        pki = Pki(tmp_path, clock=lambda: clock[0])
        creds = pki.ensure_service("orders", dns=["orders"], ips=["127.0.0.1"])  # CA too
        assert pki.exists()
        first = pki.info("orders").serial_number
        pki.ensure_service("orders", dns=["orders"], ips=["127.0.0.1"])
        assert pki.info("orders").serial_number == first, "a current certificate is kept"
        pki.ensure_service("orders", dns=["orders", "orders.internal"], ips=["127.0.0.1"])
        second = pki.info("orders").serial_number
        assert second != first, "a missing SAN entry means a new certificate"
        clock[0] = now + 6 * 86400
        pki.ensure_service("orders", dns=["orders"])
        assert pki.info("orders").serial_number != second, "expiring soon means renewal"
        assert creds.cert_file == pki.cert_file("orders")

    def test_ensure_service_after_new_ca(self, tmp_path: Path) -> None:
        """Certificates from a replaced CA are re-issued."""
        pki = Pki(tmp_path)
        pki.ensure_service("orders")
        pki.ca_file.unlink()
        pki.ca_key_file.unlink()
        pki.ensure_service("orders")
        cert = x509.load_pem_x509_certificate(pki.cert_file("orders").read_bytes())
        ca = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
        cert.verify_directly_issued_by(ca)

    def test_ensure_service_replaces_a_client_certificate(self, tmp_path: Path) -> None:
        pki = Pki(tmp_path)
        pki.init()
        pki.issue_client("orders")
        pki.ensure_service("orders")
        assert pki.info("orders").kind == "service"


class TestKeepRenewed:
    async def test_renews_in_the_background(self, tmp_path: Path) -> None:
        now = time.time()
        clock = [now]
        pki = Pki(tmp_path, clock=lambda: clock[0])
        pki.ensure_service("orders", dns=["orders"])
        first = pki.info("orders").serial_number
        task = asyncio.create_task(keep_renewed(pki, "orders", dns=["orders"], interval=0.02))
        try:
            await asyncio.sleep(0.1)
            assert pki.info("orders").serial_number == first, "still current: left alone"
            clock[0] = now + 6 * 86400  # inside renew_before
            deadline = time.monotonic() + 10
            while pki.info("orders").serial_number == first and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert pki.info("orders").serial_number != first
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def test_a_failed_renewal_does_not_stop_it(self, tmp_path: Path) -> None:
        Pki(tmp_path, passphrase="right").init()
        task = asyncio.create_task(
            keep_renewed(Pki(tmp_path, passphrase="wrong"), "orders", interval=0.02)
        )
        await asyncio.sleep(0.2)
        assert not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert not (tmp_path / "orders.pem").exists()
