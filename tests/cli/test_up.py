"""``barbacana up`` as a user runs it: a subprocess, real ports, Ctrl-C to stop."""

from __future__ import annotations

import os
import re
import signal
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
        [sys.executable, "-m", "barbacana.cli", "up", "--data-dir", str(data_dir),
         "--base-port", str(port), *extra],
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


def test_up_walkthrough(tmp_path: Path) -> None:
    """login → create order → read it → logout, against `barbacana up`; Ctrl-C stops it."""
    data_dir = tmp_path / "data"
    port = free_port()
    while free_port() == port + 1:
        port = free_port()
    process, output = _start(data_dir, port, "--plain-http")
    try:
        password = re.search(r"password (\S+) \(shown only once\)", output)
        assert password, output
        auth = f"http://127.0.0.1:{port}"
        orders = f"http://127.0.0.1:{port + 1}"
        assert auth in output and orders in output and "curl" in output
        token = httpx.post(
            f"{auth}/token",
            data={"grant_type": "password", "username": "admin", "password": password.group(1)},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(f"{orders}/orders", json={"item": "tea", "quantity": 3}, headers=headers)
        assert created.status_code == 201
        read = httpx.get(f"{orders}{created.headers['location']}", headers=headers)
        assert read.json()["quantity"] == 3
        assert httpx.post(f"{auth}/logout", headers=headers).status_code == 204
        start = time.monotonic()
        while httpx.get(f"{orders}/orders", headers=headers).status_code != 401:
            assert time.monotonic() - start < 2.0
            time.sleep(0.05)
    finally:
        rest = _stop(process)
    assert process.returncode == 0, rest
    assert "stopped" in rest
    for url in (f"http://127.0.0.1:{port}/health", f"http://127.0.0.1:{port + 1}/health"):
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=1)
    # Private files: data directory, KEK and client secrets are the user's only.
    assert (data_dir / "secrets").stat().st_mode & 0o077 == 0
    assert (data_dir / "secrets" / "kek").stat().st_mode & 0o077 == 0
    # A second run keeps the same admin account and shows no new password.
    process, output = _start(data_dir, port, "--plain-http")
    _stop(process)
    assert "shown only once" not in output


def test_users_add_before_first_up(tmp_path: Path) -> None:
    """`users add` prepares a data directory that `up` then uses."""
    data_dir = tmp_path / "fresh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARBACANA_")}
    env["BARBACANA_IDENTITY_PASSWORD_PROFILE"] = "test_only_cheap"
    result = subprocess.run(
        [sys.executable, "-m", "barbacana.cli", "users", "add", "zoe", "--role", "user",
         "--password-stdin", "--data-dir", str(data_dir), "--json"],
        input="zoe-password-long\n", capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"username": "zoe"' in result.stdout
    assert "zoe-password-long" not in result.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "barbacana.cli", "users", "list", "--data-dir", str(data_dir), "--json"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert "zoe" in listed.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "barbacana.cli", "users", "add", "zed", "--role", "root",
         "--data-dir", str(data_dir)],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert bad.returncode == 1 and "unknown role" in bad.stderr and "Traceback" not in bad.stderr
