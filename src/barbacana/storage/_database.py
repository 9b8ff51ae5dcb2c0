"""One async engine per service: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DataError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..errors import ConfigurationError, RequestError, StorageError

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["Database", "UnstorableValueError"]


class UnstorableValueError(RequestError):
    """The database refused a value the client sent (a NUL character, a number out of range)."""

    code = "unstorable_value"
    status = 422
    title = "Unprocessable value"

    def __init__(self) -> None:
        super().__init__(
            "a value in the request cannot be stored (NUL characters and out-of-range numbers "
            "are refused)"
        )


_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def _normalise(url: str) -> Any:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            "BARBACANA_DATABASE_URL is not a database URL; use "
            "postgresql://user@host/db or sqlite:///path/to/file.db"
        ) from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigurationError(
            f"database scheme {parsed.drivername!r} is not supported; use postgresql:// or sqlite://"
        )
    return parsed.set(drivername=driver)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers and one writer work at once (several processes share the file);
    # synchronous=NORMAL in WAL mode keeps every committed transaction across a
    # process crash; busy_timeout makes a second writer wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """An async SQLAlchemy engine with health check and migrations.

    Args:
        url: A SQLAlchemy URL; ``sqlite://`` and ``postgresql://`` are mapped to
            their async drivers.
        pool_size: Connections kept open (PostgreSQL).
        echo: Log SQL (development only).

    Raises:
        ConfigurationError: The URL is malformed or names an unsupported database.
    """

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        parsed = _normalise(url)
        self.dialect: str = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
        self.engine: AsyncEngine = create_async_engine(parsed, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    @classmethod
    def from_settings(cls, settings: Settings, *, pool_size: int | None = None) -> Database:
        """The service's database as ``settings.database`` describes it."""
        return cls(
            settings.database_url,
            pool_size=pool_size or settings.database.pool_size,
            echo=settings.database.echo,
        )

    def __repr__(self) -> str:
        # Never show the URL: it may hold a password.
        return f"Database(dialect={self.dialect!r})"

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction, committed on success.

        Raises:
            StorageError: The database could not be reached.
        """
        try:
            async with self.engine.begin() as conn:
                yield conn
        except DataError as exc:
            raise UnstorableValueError() from exc
        except (OperationalError, OSError) as exc:
            raise StorageError("the database is unavailable") from exc

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection without an implicit transaction commit (reads)."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except DataError as exc:
            raise UnstorableValueError() from exc
        except (OperationalError, OSError) as exc:
            raise StorageError("the database is unavailable") from exc

    async def check(self) -> None:
        """Raise :class:`StorageError` unless the database answers ``SELECT 1``."""
        async with self.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def migrate(self, location: Path, version_table: str) -> None:
        """Upgrade one concern's schema to its newest revision.

        Each concern (identity, audit, a user's own service) keeps its Alembic
        revisions in its own folder and its own version table, so they evolve
        independently. On PostgreSQL an advisory lock serialises concurrent
        start-ups; on SQLite, run it once before starting
        several processes (``barbacana up`` and ``barbacana db upgrade`` do).
        """
        from alembic.config import Config
        from alembic.runtime.environment import EnvironmentContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(location))
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", str(location))
        script = ScriptDirectory.from_config(config)

        def upgrade(sync_conn: Any) -> None:
            def revisions(rev: Any, _context: Any) -> Any:
                return script._upgrade_revs("head", rev)

            with EnvironmentContext(config, script, fn=revisions, destination_rev="head") as env:
                env.configure(connection=sync_conn, version_table=version_table)
                with env.begin_transaction():
                    env.run_migrations()

        async with self.begin() as conn:
            if self.dialect == "postgresql":
                lock_id = zlib.crc32(version_table.encode())
                await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
            await conn.run_sync(upgrade)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
