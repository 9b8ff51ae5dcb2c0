"""Fixtures of the audit tests: a real database (SQLite and PostgreSQL), trails, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import text
from typer.testing import CliRunner

from barbacana.audit import AuditError, AuditSettings, AuditTrail
from barbacana.cli.audit import app
from barbacana.storage import Database

from ..conftest import PG_DSN, _pg_execute, missing


class Clock:
    """A settable clock (UNIX seconds)."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


_AUDIT_OBJECTS = (
    "DROP TABLE IF EXISTS audit_events, audit_checkpoints, audit_head CASCADE",
    "DROP TABLE IF EXISTS alembic_version_audit",
    "DROP FUNCTION IF EXISTS audit_refuse_change, audit_next_seq, audit_head_only_grows CASCADE",
)


@pytest.fixture(scope="session")
def audit_postgres() -> Iterator[str]:
    """One PostgreSQL database for the audit tests (each test starts from empty tables)."""
    name = f"barbacana_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_pg_execute(f'CREATE DATABASE "{name}"'))
    except (OSError, Exception) as exc:
        missing(f"PostgreSQL is not reachable at {PG_DSN}: {exc}")
    try:
        yield f"postgresql+asyncpg://{PG_DSN.split('://', 1)[1]}/{name}"
    finally:
        asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _reset(url: str) -> None:
    database = Database(url)
    try:
        await execute(database, *_AUDIT_OBJECTS)
    finally:
        await database.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every storage test runs on SQLite and on PostgreSQL, each from an empty trail."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'barbacana.db'}"
        return
    url = request.getfixturevalue("audit_postgres")
    asyncio.run(_reset(url))
    yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The service database of one test (SQLite file in tmp_path, or a fresh PostgreSQL db)."""
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


def settings(**overrides: Any) -> AuditSettings:
    """Small checkpoint intervals, quiet logs."""
    values: dict[str, Any] = {"checkpoint_every_events": 8, "log_events": False}
    values.update(overrides)
    return AuditSettings(**values)


@pytest.fixture
async def open_trail(
    db: Database, tmp_path: Path, clock: Clock
) -> AsyncIterator[Callable[..., Any]]:
    """Open trails on the test database; those the test leaves open are closed after it."""
    opened: list[AuditTrail] = []

    async def opener(**overrides: Any) -> AuditTrail:
        trail = await AuditTrail.open(
            db, tmp_path, settings(**overrides), service="test", clock=clock
        )
        opened.append(trail)
        return trail

    yield opener
    for trail in opened:
        with contextlib.suppress(AuditError):
            await trail.close()


async def execute(db: Database, *statements: str, params: dict[str, Any] | None = None) -> None:
    """Run raw SQL in one transaction, as someone with direct database access."""
    async with db.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement), params or {})


async def fetch(db: Database, statement: str) -> Sequence[Any]:
    async with db.connect() as conn:
        return (await conn.execute(text(statement))).all()


async def drop_triggers(db: Database) -> None:
    """What an attacker with database access does first."""
    if db.dialect == "postgresql":
        await execute(
            db,
            "DROP TRIGGER audit_events_append_only ON audit_events",
            "DROP TRIGGER audit_events_next_seq ON audit_events",
            "DROP TRIGGER audit_events_no_truncate ON audit_events",
            "DROP TRIGGER audit_checkpoints_append_only ON audit_checkpoints",
            "DROP TRIGGER audit_checkpoints_no_truncate ON audit_checkpoints",
            "DROP TRIGGER audit_head_only_grows ON audit_head",
        )
    else:
        await execute(
            db,
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
            "DROP TRIGGER audit_events_next_seq",
            "DROP TRIGGER audit_checkpoints_no_update",
            "DROP TRIGGER audit_checkpoints_no_delete",
            "DROP TRIGGER audit_head_only_grows",
        )


def cli_args(db: Database, database_url: str, tmp_path: Path) -> list[str]:
    """Point the CLI at the test trail: the data dir (SQLite) or URL plus data dir (PostgreSQL)."""
    if db.dialect == "sqlite":
        return ["--data-dir", str(tmp_path)]
    return ["--database-url", database_url, "--data-dir", str(tmp_path)]


async def cli(*args: str) -> Result:
    """Run ``barbacana audit ...`` through typer's runner (in a thread: it runs its own loop)."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))
