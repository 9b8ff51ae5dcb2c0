"""``barbacana up`` as a user runs it: a subprocess, real ports, Ctrl-C to stop."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow


def _start(data_dir: Path, port: int, *extra: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARBACANA_")}
    env["BARBACANA_IDENTITY_PASSWORD_PROFILE"] = "test_only_cheap"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "barbacana.cli",
            "up",
            "--data-dir",
            str(data_dir),
            "--base-port",
            str(port),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    output = ""
    deadline = time.monotonic() + 90
    assert process.stdout is not None
    while "Press Ctrl-C to stop" not in output:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                raise AssertionError(f"up exited early:\n{output}")
            continue
        output += line
        assert time.monotonic() < deadline, output
    return process, output


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=30)
    return rest


def _ports() -> int:
    port = free_port()
    while free_port() == port + 1:
        port = free_port()
    return port


def _walk(auth: str, orders: str, password: str, verify: ssl.SSLContext | bool) -> None:
    with httpx.Client(verify=verify) as client:
        token = client.post(
            f"{auth}/token",
            data={"grant_type": "password", "username": "admin", "password": password},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        created = client.post(
            f"{orders}/orders", json={"item": "tea", "quantity": 3}, headers=headers
        )
        assert created.status_code == 201
        read = client.get(f"{orders}{created.headers['location']}", headers=headers)
        assert read.json()["quantity"] == 3
        assert client.post(f"{auth}/logout", headers=headers).status_code == 204
        start = time.monotonic()
        while client.get(f"{orders}/orders", headers=headers).status_code != 401:
            assert time.monotonic() - start < 2.0
            time.sleep(0.05)


def test_up_walkthrough(tmp_path: Path) -> None:
    """HTTPS by default: login → create order → read it → logout; Ctrl-C stops it."""
    data_dir = tmp_path / "data"
    port = _ports()
    process, output = _start(data_dir, port)
    try:
        password = re.search(r"password (\S+) \(shown only once\)", output)
        assert password, output
        auth = f"https://127.0.0.1:{port}"
        orders = f"https://127.0.0.1:{port + 1}"
        ca = data_dir / "pki" / "ca.pem"
        assert auth in output and orders in output and f"--cacert {ca}" in output
        trust = ssl.create_default_context(cafile=ca)
        _walk(auth, orders, password.group(1), trust)
        # HSTS over HTTPS; an untrusted client cannot even connect.
        assert "strict-transport-security" in httpx.get(f"{auth}/health", verify=trust).headers
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{auth}/health")
        # Internal endpoints want a client certificate from the internal CA.
        feed = httpx.get(f"{auth}/internal/revocations", verify=trust)
        assert feed.status_code == 401 and feed.json()["code"] == "peer_certificate_required"
    finally:
        rest = _stop(process)
    assert process.returncode == 0, rest
    assert "stopped" in rest
    for url in (f"https://127.0.0.1:{port}/health", f"https://127.0.0.1:{port + 1}/health"):
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=1, verify=ssl.create_default_context(cafile=ca))
    # Private files: data directory, KEK and client secrets are the user's only.
    assert (data_dir / "secrets").stat().st_mode & 0o077 == 0
    assert (data_dir / "secrets" / "kek").stat().st_mode & 0o077 == 0
    # A second run keeps the same admin account and shows no new password.
    process, output = _start(data_dir, port, "--plain-http")
    _stop(process)
    assert "shown only once" not in output


def test_up_plain_http(tmp_path: Path) -> None:
    """--plain-http serves the same system without TLS (local experiments)."""
    port = _ports()
    process, output = _start(tmp_path / "data", port, "--plain-http")
    try:
        password = re.search(r"password (\S+) \(shown only once\)", output)
        assert password, output
        _walk(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}", password.group(1), True)
    finally:
        _stop(process)
    assert process.returncode == 0


def test_users_add_before_first_up(tmp_path: Path) -> None:
    """`users add` prepares a data directory that `up` then uses."""
    data_dir = tmp_path / "fresh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARBACANA_")}
    env["BARBACANA_IDENTITY_PASSWORD_PROFILE"] = "test_only_cheap"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "barbacana.cli",
            "users",
            "add",
            "zoe",
            "--role",
            "user",
            "--password-stdin",
            "--data-dir",
            str(data_dir),
            "--json",
        ],
        input="zoe-password-long\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"username": "zoe"' in result.stdout
    assert "zoe-password-long" not in result.stdout
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "barbacana.cli",
            "users",
            "list",
            "--data-dir",
            str(data_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "zoe" in listed.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "barbacana.cli",
            "users",
            "add",
            "zed",
            "--role",
            "root",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 1 and "unknown role" in bad.stderr and "Traceback" not in bad.stderr


def test_keys_rewrap_rotates_the_kek(tmp_path: Path) -> None:
    """`keys rewrap --rotate-kek` moves every sealed key to a new KEK; keys still open."""
    data_dir = tmp_path / "d"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARBACANA_")}
    env["BARBACANA_IDENTITY_PASSWORD_PROFILE"] = "test_only_cheap"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "barbacana.cli", *args, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=90,
        )

    assert cli("db", "upgrade").returncode == 0
    before = (data_dir / "secrets" / "kek").read_text()
    kids = cli("keys", "list", "--json").stdout
    result = cli("keys", "rewrap", "--rotate-kek")
    assert result.returncode == 0, result.stderr
    assert "rewrapped 1 key(s)" in result.stdout
    after = (data_dir / "secrets" / "kek").read_text()
    assert after != before
    assert (data_dir / "secrets" / "kek.previous").stat().st_mode & 0o077 == 0
    # The keys open under the new KEK alone.
    (data_dir / "secrets" / "kek.previous").unlink()
    listed = cli("keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == kids
    assert (
        before not in result.stdout + result.stderr and after not in result.stdout + result.stderr
    )
