"""The audit keys at rest, as an operator meets them: a real service, the real CLI.

The identity service runs as ``barbacana serve auth`` in a subprocess. Its audit
key files are sealed under the data directory's KEK; started with another KEK it
refuses to start, with one line naming the KEK reference to check; after
``barbacana keys rewrap --rotate-kek`` it starts under the new KEK with the same
audit key, and ``barbacana audit verify`` passes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from barbacana.audit import Actor, AuditKey, AuditSettings, AuditTrail
from barbacana.crypto import KeyEncryptionKey, Sealer, kek_id_of
from barbacana.storage import Database
from tests.conftest import free_port

pytestmark = pytest.mark.slow

#: Seconds a command or a start-up may take before the test calls it stuck.
BOUND = 90


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARBACANA_")}
    env["BARBACANA_IDENTITY_PASSWORD_PROFILE"] = "test_only_cheap"
    return env


def barbacana(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "barbacana.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=BOUND,
    )


def _serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "barbacana.cli", "serve", "auth", "--plain-http"]
    return subprocess.Popen(
        [*command, "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )


@contextmanager
def serving(data_dir: Path) -> Iterator[str]:
    """The identity service, up and ready; stopped with SIGINT afterwards."""
    port = free_port()
    process = _serve(data_dir, port)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + BOUND
    try:
        while True:
            if process.poll() is not None:
                output, _ = process.communicate()
                raise AssertionError(f"the service exited ({process.returncode}):\n{output}")
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=BOUND)


def refused_start(data_dir: Path) -> tuple[int, str]:
    """Start the service expecting it to stop during start-up: its exit code and output."""
    process = _serve(data_dir, free_port())
    try:
        output, _ = process.communicate(timeout=BOUND)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"the service did not refuse to start:\n{output}") from None
    return process.returncode, output


def kek_of(path: Path) -> str:
    """The id of the KEK a sealed key file is sealed under."""
    lines = path.read_text(encoding="ascii").strip().splitlines()
    return kek_id_of(base64.b64decode("".join(lines[1:-1]))).hex()


def test_sealed_audit_key_wrong_kek_and_rewrap(tmp_path: Path) -> None:
    """Sealed at rest; the wrong KEK stops start-up clearly; rewrap keeps the same key."""
    data_dir = tmp_path / "data"
    assert barbacana(data_dir, "db", "upgrade").returncode == 0
    audit = data_dir / "audit"
    kek_file = data_dir / "secrets" / "kek"
    kek = KeyEncryptionKey.from_text(kek_file.read_text())

    with serving(data_dir) as url:
        assert httpx.get(f"{url}/users/me").status_code == 401  # a durable audit event
    for name in ("audit-key.pem", "audit-hmac.key"):
        assert (audit / name).read_text().startswith("-----BEGIN BARBACANA SEALED AUDIT ")
        assert (audit / name).stat().st_mode & 0o077 == 0
        assert kek_of(audit / name) == kek.kek_id_hex
    public = (audit / "audit-key.pub.pem").read_bytes()
    assert public.startswith(b"-----BEGIN PUBLIC KEY-----")

    # Another KEK: start-up stops with one line saying which reference to check.
    shutil.copy(kek_file, tmp_path / "kek.saved")
    kek_file.write_text(KeyEncryptionKey.generate().export().get_secret_value())
    code, output = refused_start(data_dir)
    assert code != 0, output
    assert "auth cannot start" in output
    assert "BARBACANA_SECRETS_KEK_REF" in output and "file://kek" in output
    assert kek.kek_id_hex in output
    assert "Traceback" not in output
    shutil.copy(tmp_path / "kek.saved", kek_file)

    # Rewrap under a new KEK: the audit key files move too, and the rewrap is recorded.
    rewrap = barbacana(data_dir, "keys", "rewrap", "--rotate-kek")
    assert rewrap.returncode == 0, rewrap.stderr
    assert "rewrapped 1 key(s) and 2 audit key file(s)" in rewrap.stdout
    assert "warning" not in rewrap.stderr
    new = KeyEncryptionKey.from_text(kek_file.read_text())
    assert new.kek_id != kek.kek_id
    for name in ("audit-key.pem", "audit-hmac.key"):
        assert kek_of(audit / name) == new.kek_id_hex

    with serving(data_dir) as url:
        assert httpx.get(f"{url}/users/me").status_code == 401
    assert (audit / "audit-key.pub.pem").read_bytes() == public
    printed = barbacana(data_dir, "audit", "public-key")
    assert printed.returncode == 0 and printed.stdout.encode() == public

    verify = barbacana(data_dir, "audit", "verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(verify.stdout)
    assert report["ok"] and report["macs_checked"]
    events = barbacana(data_dir, "audit", "export", "--events")
    rewrapped = [
        json.loads(line)
        for line in events.stdout.splitlines()
        if json.loads(line)["action"] == "key.rewrapped"
    ]
    assert len(rewrapped) == 1
    assert rewrapped[0]["details"]["kek_id"] == new.kek_id_hex
    assert rewrapped[0]["details"]["previous_kek_id"] == kek.kek_id_hex
    assert rewrapped[0]["actor"]["type"] == "operator"

    # Without the KEK, verify still checks every hash and signature, and says what it skipped.
    kek_file.rename(tmp_path / "kek.away")
    blind = barbacana(data_dir, "audit", "verify")
    assert blind.returncode == 0, blind.stdout + blind.stderr
    assert "event MACs not checked" in blind.stdout
    hmac = barbacana(data_dir, "audit", "hmac", "bob@example.org")
    assert hmac.returncode == 2 and "key-encryption key is unavailable" in hmac.stderr
    assert "Traceback" not in hmac.stderr


def test_plain_audit_key_of_an_earlier_version_is_sealed(tmp_path: Path) -> None:
    """A data directory whose audit keys are plain files: the next start seals them."""
    data_dir = tmp_path / "data"
    audit = data_dir / "audit"
    # As earlier versions wrote them: PKCS #8 PEM and the HMAC key as text.
    legacy = AuditKey.create(audit / "audit-key.pem", audit / "audit-hmac.key")
    assert b"PRIVATE KEY" in (audit / "audit-key.pem").read_bytes()
    assert barbacana(data_dir, "db", "upgrade").returncode == 0
    with serving(data_dir) as url:
        assert httpx.get(f"{url}/users/me").status_code == 401
    for name in ("audit-key.pem", "audit-hmac.key"):
        assert AuditKey.is_sealed(audit / name)
        assert (audit / name).stat().st_mode & 0o077 == 0
    kek = KeyEncryptionKey.from_text((data_dir / "secrets" / "kek").read_text())
    sealed = AuditKey.load(audit / "audit-key.pem", audit / "audit-hmac.key", sealer=Sealer(kek))
    assert sealed.key_id == legacy.key_id
    verify = barbacana(data_dir, "audit", "verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(verify.stdout)
    assert report["ok"] and report["macs_checked"] and report["events"] >= 1


def test_rewrap_from_another_kek_reference(tmp_path: Path) -> None:
    """`keys rewrap --from-kek-ref` moves the audit key files from the old KEK to the current."""
    data_dir = tmp_path / "data"
    assert barbacana(data_dir, "db", "upgrade").returncode == 0
    secrets = data_dir / "secrets"
    old = KeyEncryptionKey.from_text((secrets / "kek").read_text())

    async def record_one() -> str:
        db = Database(f"sqlite+aiosqlite:///{data_dir / 'barbacana.db'}")
        try:
            trail = await AuditTrail.open(
                db, data_dir, AuditSettings(log_events=False), sealer=Sealer(old)
            )
            await trail.record("user.created", actor=Actor.system(), outcome="success")
            await trail.close()
            assert trail.key is not None
            return trail.key.key_id
        finally:
            await db.dispose()

    key_id = asyncio.run(record_one())
    # The operator moved the KEK: the current one is new, the old one kept beside it.
    (secrets / "kek").rename(secrets / "kek.old")
    new = KeyEncryptionKey.generate()
    (secrets / "kek").write_text(new.export().get_secret_value())
    (secrets / "kek").chmod(0o600)
    locked = barbacana(data_dir, "audit", "hmac", "x")
    assert locked.returncode == 2 and old.kek_id_hex in locked.stderr
    assert "BARBACANA_SECRETS_KEK_REF" in locked.stderr

    rewrap = barbacana(data_dir, "keys", "rewrap", "--from-kek-ref", "file://kek.old")
    assert rewrap.returncode == 0, rewrap.stderr
    assert "rewrapped 1 key(s) and 2 audit key file(s)" in rewrap.stdout
    audit = data_dir / "audit"
    for name in ("audit-key.pem", "audit-hmac.key"):
        assert kek_of(audit / name) == new.kek_id_hex
    moved = AuditKey.load(audit / "audit-key.pem", audit / "audit-hmac.key", sealer=Sealer(new))
    assert moved.key_id == key_id
    verify = barbacana(data_dir, "audit", "verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["macs_checked"]
    events = [
        json.loads(line)
        for line in barbacana(data_dir, "audit", "export", "--events").stdout.splitlines()
    ]
    (rewrapped,) = [e for e in events if e["action"] == "key.rewrapped"]
    assert rewrapped["details"]["kek_rotated"] is False
    assert rewrapped["details"]["rewrapped"] == {"signing": 1, "audit": 2}
