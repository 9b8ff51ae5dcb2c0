"""The audit keys at rest: sealed under the key-encryption key; earlier plain files upgraded."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
import structlog
from fastapi import FastAPI

from barbacana.access import Authenticator
from barbacana.audit import (
    Actor,
    AuditKey,
    AuditKeyError,
    AuditKeyLockedError,
    AuditSettings,
    AuditTrail,
    load_public_key,
    public_key_file,
)
from barbacana.crypto import KeyEncryptionKey, Sealer, kek_id_of
from barbacana.errors import ConfigurationError
from barbacana.services._protection import Protection
from barbacana.services._runtime import DataDir, audit_sealer
from barbacana.storage import Database

from ..conftest import make_settings
from .conftest import Clock, cli, cli_args

SIGNING_LABEL = "BARBACANA SEALED AUDIT SIGNING KEY"
HMAC_LABEL = "BARBACANA SEALED AUDIT HMAC KEY"


@pytest.fixture
def kek() -> KeyEncryptionKey:
    return KeyEncryptionKey.generate()


@pytest.fixture
def sealer(kek: KeyEncryptionKey) -> Sealer:
    return Sealer(kek)


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    audit = tmp_path / "audit"
    return audit / "audit-key.pem", audit / "audit-hmac.key"


def envelope(path: Path) -> bytes:
    """The envelope inside a sealed key file."""
    lines = path.read_text(encoding="ascii").strip().splitlines()
    return base64.b64decode("".join(lines[1:-1]))


def armour(label: str, blob: bytes) -> str:
    return f"-----BEGIN {label}-----\n{base64.b64encode(blob).decode()}\n-----END {label}-----\n"


class TestSealed:
    """New key files are sealed, private, and bound to their purpose."""

    def test_new_keys_are_sealed(
        self, paths: tuple[Path, Path], sealer: Sealer, kek: KeyEncryptionKey
    ) -> None:
        """Both files are 0600 envelopes under the KEK; only the public key is plain."""
        key_path, hmac_path = paths
        created = AuditKey.create(key_path, hmac_path, sealer=sealer)
        for path, label in ((key_path, SIGNING_LABEL), (hmac_path, HMAC_LABEL)):
            text = path.read_text(encoding="ascii")
            assert text.startswith(f"-----BEGIN {label}-----\n")
            assert "PRIVATE KEY" not in text and "barbacana-audit-hmac" not in text
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert kek_id_of(envelope(path)) == kek.kek_id
        public = public_key_file(key_path).read_bytes()
        assert public.startswith(b"-----BEGIN PUBLIC KEY-----")
        loaded = AuditKey.load(key_path, hmac_path, sealer=sealer)
        assert loaded.key_id == created.key_id
        assert loaded.mac_key == created.mac_key
        load_public_key(public).verify(loaded.sign(b"checkpoint"), b"checkpoint")

    def test_files_cannot_stand_in_for_each_other(
        self, paths: tuple[Path, Path], sealer: Sealer
    ) -> None:
        """The envelope's associated data names the file's purpose: a relabelled file fails."""
        key_path, hmac_path = paths
        AuditKey.create(key_path, hmac_path, sealer=sealer)
        hmac_envelope = envelope(hmac_path)
        signing_text = key_path.read_text()
        key_path.write_text(hmac_path.read_text())
        with pytest.raises(AuditKeyError, match="holds a barbacana sealed audit hmac key"):
            AuditKey.load(key_path, hmac_path, sealer=sealer)
        key_path.write_text(armour(SIGNING_LABEL, hmac_envelope))
        with pytest.raises(AuditKeyError, match="not the audit signing key") as caught:
            AuditKey.load(key_path, hmac_path, sealer=sealer)
        assert not isinstance(caught.value, AuditKeyLockedError)
        key_path.write_text(signing_text)
        assert AuditKey.load(key_path, hmac_path, sealer=sealer)

    def test_changed_file_is_refused(self, paths: tuple[Path, Path], sealer: Sealer) -> None:
        """One flipped bit in the sealed key: it does not open, and says so."""
        key_path, hmac_path = paths
        AuditKey.create(key_path, hmac_path, sealer=sealer)
        blob = bytearray(envelope(hmac_path))
        blob[-5] ^= 0x01
        hmac_path.write_text(armour(HMAC_LABEL, bytes(blob)))
        with pytest.raises(AuditKeyError, match="was changed"):
            AuditKey.load(key_path, hmac_path, sealer=sealer)

    def test_wrong_kek_names_both_ids(
        self, paths: tuple[Path, Path], sealer: Sealer, kek: KeyEncryptionKey
    ) -> None:
        """Another KEK: a locked-key error naming the KEK the file needs and the one given."""
        AuditKey.create(*paths, sealer=sealer)
        other = KeyEncryptionKey.generate()
        with pytest.raises(AuditKeyLockedError) as caught:
            AuditKey.load(*paths, sealer=Sealer(other))
        assert kek.kek_id_hex in caught.value.detail
        assert other.kek_id_hex in caught.value.detail
        assert caught.value.extra == {
            "sealed_kek_id": kek.kek_id_hex,
            "given_kek_id": other.kek_id_hex,
        }
        with pytest.raises(AuditKeyLockedError, match="no key-encryption key was given"):
            AuditKey.load(*paths)

    def test_is_sealed(self, paths: tuple[Path, Path], sealer: Sealer) -> None:
        key_path, hmac_path = paths
        assert not AuditKey.is_sealed(key_path)
        AuditKey.create(key_path, hmac_path)
        assert not AuditKey.is_sealed(key_path)
        AuditKey.load(key_path, hmac_path, sealer=sealer)
        assert AuditKey.is_sealed(key_path) and AuditKey.is_sealed(hmac_path)


class TestUpgrade:
    """Files of an earlier version still load, and are sealed the first time a KEK is given."""

    def test_plain_files_sealed_on_load(self, paths: tuple[Path, Path], sealer: Sealer) -> None:
        """Plain PEM and HMAC text: loaded, re-written sealed, logged without the value."""
        key_path, hmac_path = paths
        legacy = AuditKey.create(key_path, hmac_path)
        plain = key_path.read_text() + hmac_path.read_text()
        with structlog.testing.capture_logs() as logs:
            upgraded = AuditKey.load(key_path, hmac_path, sealer=sealer)
        assert upgraded.key_id == legacy.key_id and upgraded.mac_key == legacy.mac_key
        sealed = [entry for entry in logs if entry["event"] == "audit_key_sealed"]
        assert {entry["file"] for entry in sealed} == {str(key_path), str(hmac_path)}
        assert all(entry["kek_id"] == sealer.kek.kek_id_hex for entry in sealed)
        secret_lines = [line for line in plain.splitlines() if "-----" not in line]
        assert not any(line.split(":")[-1] in repr(logs) for line in secret_lines)
        for path in paths:
            assert AuditKey.is_sealed(path)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert not any(p.name.endswith(".tmp") for p in key_path.parent.iterdir())
        with structlog.testing.capture_logs() as logs:
            again = AuditKey.load(key_path, hmac_path, sealer=sealer)
        assert again.key_id == legacy.key_id
        assert not [entry for entry in logs if entry["event"] == "audit_key_sealed"]

    def test_passphrase_key_sealed_once(self, paths: tuple[Path, Path], sealer: Sealer) -> None:
        """A passphrase-protected key needs its passphrase once; sealed, it needs the KEK only."""
        key_path, hmac_path = paths
        legacy = AuditKey.create(key_path, hmac_path, passphrase=b"correct horse")
        assert b"ENCRYPTED" in key_path.read_bytes()
        with pytest.raises(AuditKeyError, match="BARBACANA_AUDIT_KEY_PASSPHRASE"):
            AuditKey.load(key_path, hmac_path, sealer=sealer)
        assert not AuditKey.is_sealed(key_path)
        AuditKey.load(key_path, hmac_path, sealer=sealer, passphrase=b"correct horse")
        assert AuditKey.is_sealed(key_path)
        assert AuditKey.load(key_path, hmac_path, sealer=sealer).key_id == legacy.key_id

    @pytest.mark.postgres
    async def test_trail_continues_sealed(
        self, db: Database, database_url: str, tmp_path: Path, clock: Clock, sealer: Sealer
    ) -> None:
        """A trail started with plain keys continues, sealed, with the same key; it verifies."""
        settings = AuditSettings(log_events=False, checkpoint_every_events=2)
        first = await AuditTrail.open(db, tmp_path, settings, clock=clock)
        for _ in range(3):
            await first.record("user.created", actor=Actor.system(), outcome="success")
        await first.close()
        second = await AuditTrail.open(db, tmp_path, settings, clock=clock, sealer=sealer)
        event = await second.record("user.created", actor=Actor.system(), outcome="success")
        await second.close()
        assert event.seq == 3
        assert first.key is not None and second.key is not None
        assert second.key.key_id == first.key.key_id
        assert AuditKey.is_sealed(settings.key_file(tmp_path))
        with pytest.raises(AuditKeyLockedError):
            await AuditTrail.open(
                db, tmp_path, settings, clock=clock, sealer=Sealer(KeyEncryptionKey.generate())
            )
        # The public key alone verifies hashes and signatures (no KEK in this data dir).
        result = await cli("verify", *cli_args(db, database_url, tmp_path))
        assert result.exit_code == 0, result.output
        assert "event MACs not checked" in result.output


class TestRewrap:
    """AuditKey.rewrap moves both files to the current KEK without changing the key."""

    def test_moves_both_files(self, paths: tuple[Path, Path], kek: KeyEncryptionKey) -> None:
        created = AuditKey.create(*paths, sealer=Sealer(kek))
        new = KeyEncryptionKey.generate()
        assert AuditKey.rewrap(*paths, Sealer(new, previous=[kek])) == 2
        for path in paths:
            assert kek_id_of(envelope(path)) == new.kek_id
        assert AuditKey.load(*paths, sealer=Sealer(new)).key_id == created.key_id
        with pytest.raises(AuditKeyLockedError):
            AuditKey.load(*paths, sealer=Sealer(kek))
        assert AuditKey.rewrap(*paths, Sealer(new, previous=[kek])) == 0

    def test_seals_plain_files(self, paths: tuple[Path, Path], sealer: Sealer) -> None:
        created = AuditKey.create(*paths)
        assert AuditKey.rewrap(*paths, sealer) == 2
        assert AuditKey.load(*paths, sealer=sealer).key_id == created.key_id

    def test_unknown_kek(self, paths: tuple[Path, Path], sealer: Sealer) -> None:
        """A sealer that does not know the file's KEK moves nothing."""
        AuditKey.create(*paths, sealer=sealer)
        before = [path.read_bytes() for path in paths]
        with pytest.raises(AuditKeyLockedError):
            AuditKey.rewrap(*paths, Sealer(KeyEncryptionKey.generate()))
        assert [path.read_bytes() for path in paths] == before

    def test_no_trail_yet(self, paths: tuple[Path, Path], sealer: Sealer) -> None:
        assert AuditKey.rewrap(*paths, sealer) == 0
        AuditKey.create(*paths, sealer=sealer)
        os.unlink(paths[1])
        with pytest.raises(AuditKeyError, match="is missing"):
            AuditKey.rewrap(*paths, sealer)


class TestServiceKek:
    """How the reference services find the KEK of their audit keys (``secrets.kek_ref``)."""

    async def test_first_run_creates_the_kek_file(self, tmp_path: Path) -> None:
        """A fresh data directory: the KEK file is created (0600) and seals the audit keys."""
        settings = make_settings(tmp_path)
        sealer = await audit_sealer(settings)
        assert sealer is not None
        kek_file = DataDir(tmp_path).kek
        assert stat.S_IMODE(kek_file.stat().st_mode) == 0o600
        assert sealer.kek == KeyEncryptionKey.from_text(kek_file.read_text())
        disabled = make_settings(tmp_path, audit=AuditSettings(enabled=False))
        assert await audit_sealer(disabled) is None

    async def test_missing_kek_beside_sealed_keys(self, tmp_path: Path) -> None:
        """Sealed audit keys and no KEK file: an error naming the file, never a new KEK."""
        settings = make_settings(tmp_path)
        sealer = await audit_sealer(settings)
        assert sealer is not None
        audit = settings.audit
        AuditKey.create(audit.key_file(tmp_path), audit.hmac_key_file(tmp_path), sealer=sealer)
        DataDir(tmp_path).kek.unlink()
        with pytest.raises(ConfigurationError) as caught:
            await audit_sealer(settings)
        assert "secrets.kek_ref = file://kek" in caught.value.detail
        assert str(DataDir(tmp_path).kek) in caught.value.detail
        assert not DataDir(tmp_path).kek.exists()

    @pytest.mark.postgres
    async def test_protection_names_the_kek_reference(
        self, database_url: str, tmp_path: Path, sealer: Sealer
    ) -> None:
        """Protection.open: the sealer given, or secrets.kek_ref's; another KEK is a
        configuration error that says which reference to check."""
        settings = make_settings(tmp_path, database_url)
        db = Database(database_url)
        try:
            first = Protection(FastAPI(), settings, Authenticator(_nobody, _nobody), service="t")
            await first.open(db, tmp_path, sealer=sealer)
            await first.record("user.created", actor=Actor.system(), outcome="success")
            await first.close()
            again = Protection(FastAPI(), settings, Authenticator(_nobody, _nobody), service="t")
            DataDir(tmp_path).ensure_kek()  # secrets/kek: another KEK than `sealer`'s
            with pytest.raises(ConfigurationError) as caught:
                await again.open(db, tmp_path)
            detail = caught.value.detail
            assert "BARBACANA_SECRETS_KEK_REF" in detail and "file://kek" in detail
            assert sealer.kek.kek_id_hex in detail
            await again.open(db, tmp_path, sealer=sealer)
            assert again.trail is not None
            event = await again.trail.record(
                "user.created", actor=Actor.system(), outcome="success"
            )
            assert event.seq == 1
            await again.close()
        finally:
            await db.dispose()


async def _nobody(*_: object) -> None:
    return None
