"""Shared fixtures: real databases (SQLite and PostgreSQL), real servers on loopback."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from barbacana.settings import IdentitySettings, Settings

PG_DSN = os.environ.get("BARBACANA_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REQUIRE_ALL = os.environ.get("BARBACANA_REQUIRE_ALL") == "1"


def missing(reason: str) -> None:
    """Skip for a missing component, or fail when CI requires every component."""
    if REQUIRE_ALL:
        pytest.fail(f"required component missing: {reason}")
    pytest.skip(reason)


class FakeKekSealer:
    """AES-256-GCM with a per-test key (the identity tests' stand-in for the KEK sealer)."""

    def __init__(self) -> None:
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def seal(self, plaintext: bytes, *, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, *, aad: bytes) -> bytes:
        return self._aead.decrypt(blob[:12], blob[12:], aad)


@pytest.fixture
def sealer() -> FakeKekSealer:
    return FakeKekSealer()


async def _pg_execute(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN + "/postgres", timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"barbacana_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_pg_execute(f'CREATE DATABASE "{name}"'))
    except (OSError, Exception) as exc:
        missing(f"PostgreSQL is not reachable at {PG_DSN}: {exc}")
    try:
        yield f"postgresql+asyncpg://{PG_DSN.split('://', 1)[1]}/{name}"
    finally:
        asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage-facing test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'barbacana.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


def make_settings(tmp_path: Path, database_url: str | None = None, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "identity": IdentitySettings(password_profile="test_only_cheap"),
    }
    if database_url:
        values["database"] = {"url": database_url}
    values.update(extra)
    return Settings(**values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """A uvicorn server on 127.0.0.1 in a background thread, stopped on exit."""

    def __init__(self, app: Any, port: int | None = None, **config: Any) -> None:
        self.port = port or free_port()
        self._serve(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="on",
                proxy_headers=False,  # forwarded headers are the web layer's business
                **config,
            )
        )

    def _serve(self, config: uvicorn.Config) -> None:
        self.config = config
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.config.ssl_certfile or self.config.ssl else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
