"""A PostgreSQL that checks passwords (SCRAM), started the way Debian starts one.

The machine's own PostgreSQL trusts every local connection, so a wrong
password would go unnoticed there. ``pg_createcluster`` makes a second cluster
whose TCP connections must authenticate with SCRAM-SHA-256 (its Unix socket
stays trusted, for the test's own superuser), on a free port; it is dropped at
the end of the session.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess  # nosec B404 -- starts PostgreSQL's own cluster tools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, missing

SOCKET_DIR = "/var/run/postgresql"


@dataclass(frozen=True)
class ScramCluster:
    """A running cluster: TCP needs a password, the socket is the superuser's."""

    version: str
    name: str
    port: int

    def admin_dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={SOCKET_DIR}&port={self.port}"

    def url(self, database: str, user: str = "nobody") -> str:
        """A SQLAlchemy URL over TCP without a password (the credentials come from a secret)."""
        return f"postgresql+asyncpg://{user}@127.0.0.1:{self.port}/{database}"

    def execute(self, *statements: str, database: str = "postgres") -> None:
        asyncio.run(self.aexecute(*statements, database=database))

    def sessions(self, database: str) -> list[str]:
        """The login role of every client session open on ``database``."""
        return asyncio.run(self.asessions(database))

    async def asessions(self, database: str) -> list[str]:
        rows = await self.afetch(
            "SELECT usename FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        )
        return sorted(str(row[0]) for row in rows)

    async def aexecute(self, *statements: str, database: str = "postgres") -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin_dsn(database), timeout=10)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def afetch(self, query: str, database: str = "postgres") -> list[tuple[object, ...]]:
        import asyncpg

        conn = await asyncpg.connect(self.admin_dsn(database), timeout=10)
        try:
            return [tuple(row) for row in await conn.fetch(query)]
        finally:
            await conn.close()


def _version() -> str | None:
    root = Path("/usr/lib/postgresql")
    versions = sorted((p.name for p in root.glob("*") if (p / "bin" / "initdb").exists()), key=int)
    return versions[-1] if versions else None


@pytest.fixture(scope="session")
def scram_cluster() -> Iterator[ScramCluster]:
    tools = shutil.which("pg_createcluster"), shutil.which("pg_dropcluster")
    version = _version()
    if None in tools or version is None:
        missing(
            "pg_createcluster (Debian's postgresql-common) to start a password-checking cluster"
        )
    if os.geteuid() != 0:
        missing("pg_createcluster needs root to create a cluster owned by postgres")
    assert version is not None
    name = f"barbacana-{secrets.token_hex(4)}"
    port = free_port()
    create = [
        "pg_createcluster", version, name, "--port", str(port), "--start",
        "--", "--auth-local=trust", "--auth-host=scram-sha-256",
    ]  # fmt: skip
    done = subprocess.run(create, capture_output=True, text=True, timeout=120, check=False)  # nosec B603
    if done.returncode != 0:
        pytest.fail(f"pg_createcluster failed: {done.stderr.strip()[-500:]}")
    try:
        yield ScramCluster(version, name, port)
    finally:
        subprocess.run(  # nosec B603 B607
            ["pg_dropcluster", "--stop", version, name],
            capture_output=True,
            timeout=120,
            check=False,
        )


@dataclass(frozen=True)
class AppRoles:
    """Two login roles acting as one owner role, as the alternating-users rotation wants."""

    database: str
    owner: str
    first: tuple[str, str]
    second: tuple[str, str]


@pytest.fixture
def app_roles(scram_cluster: ScramCluster) -> Iterator[AppRoles]:
    tag = secrets.token_hex(4)
    owner, first, second = f"app_{tag}", f"app_{tag}_a", f"app_{tag}_b"
    database = f"app_{tag}"
    roles = AppRoles(
        database,
        owner,
        (first, secrets.token_urlsafe(18)),
        (second, secrets.token_urlsafe(18)),
    )
    statements = [f'CREATE ROLE "{owner}" NOLOGIN']
    for user, password in (roles.first, roles.second):
        statements += [
            f'CREATE ROLE "{user}" LOGIN PASSWORD \'{password}\' IN ROLE "{owner}"',
            # Every session acts as the owner, so tables either role creates are shared.
            f'ALTER ROLE "{user}" SET role = "{owner}"',
        ]
    statements.append(f'CREATE DATABASE "{database}" OWNER "{owner}"')
    scram_cluster.execute(*statements)
    try:
        yield roles
    finally:
        scram_cluster.execute(
            f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
            f'DROP ROLE IF EXISTS "{first}"',
            f'DROP ROLE IF EXISTS "{second}"',
            f'DROP ROLE IF EXISTS "{owner}"',
        )
