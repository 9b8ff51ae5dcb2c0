"""One async engine per service: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..errors import ConfigurationError, RequestError, StorageError
from ._credentials import RotatingLogin, RotationListener, SecretCredentials, refused_login

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger("barbacana.storage")


__all__ = ["Database", "RotationListener", "UnstorableValueError"]


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


def _login_refused(exc: DBAPIError) -> StorageError | None:
    # SQLSTATE class 28 (bad password, unknown role, NOLOGIN) arrives as a bare DBAPIError.
    if not refused_login(exc.orig):
        return None
    logger.error(
        "the database refused this service's login: check the user and password in "
        "BARBACANA_DATABASE_URL or the secret BARBACANA_DATABASE_CREDENTIALS_REF names"
    )
    return StorageError("the database refused this service's login")


class Database:
    """An async SQLAlchemy engine with health check and migrations.

    Args:
        url: A SQLAlchemy URL; ``sqlite://`` and ``postgresql://`` are mapped to
            their async drivers.
        pool_size: Connections kept open (PostgreSQL).
        echo: Log SQL (development only).
        credentials: Where the user name and password come from when they rotate
            (PostgreSQL); the URL's own are used when ``None``. New connections use
            the newest value; a connection opened with an older one is recycled when
            it is next checked out and closed when its request gives it back; while
            the previous value still works, a login the newest is refused falls back
            to it.

    Raises:
        ConfigurationError: The URL is malformed or names an unsupported database.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        echo: bool = False,
        credentials: SecretCredentials | None = None,
    ) -> None:
        parsed = _normalise(url)
        self.dialect: str = parsed.get_backend_name()
        if credentials is not None and self.dialect != "postgresql":
            raise ConfigurationError(
                "BARBACANA_DATABASE_CREDENTIALS_REF applies to PostgreSQL only; unset it or "
                "point BARBACANA_DATABASE_URL at PostgreSQL"
            )
        self._login = RotatingLogin(credentials) if credentials is not None else None
        self._started = False
        self._start_lock = asyncio.Lock()
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
        self.engine: AsyncEngine = create_async_engine(parsed, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        if self._login is not None:
            self._login.attach(self.engine)

    @classmethod
    def from_settings(cls, settings: Settings, *, pool_size: int | None = None) -> Database:
        """The service's database as ``settings.database`` describes it.

        With ``database.credentials_ref`` set, the user name and password come from
        that secret and follow its rotations (see :mod:`barbacana.storage._credentials`).
        """
        return cls(
            settings.database_url,
            pool_size=pool_size or settings.database.pool_size,
            echo=settings.database.echo,
            credentials=SecretCredentials.from_settings(settings),
        )

    @property
    def rotates(self) -> bool:
        """Whether the credentials come from a secret that may rotate."""
        return self._login is not None

    @property
    def credentials_ref(self) -> str | None:
        """The secret reference the credentials come from (a name, never a value)."""
        return self._login.credentials.ref if self._login is not None else None

    def on_rotation(self, listener: RotationListener) -> None:
        """Call ``listener(version)`` after the credentials change (to record an audit event).

        Raises:
            ConfigurationError: The database has no rotating credentials.
        """
        if self._login is None:
            raise ConfigurationError("this database has no rotating credentials")
        self._login.listeners.append(listener)

    async def _start(self) -> None:
        if self._login is not None and not self._started:
            async with self._start_lock:
                if not self._started:
                    await self._login.credentials.start()
                    self._started = True

    def __repr__(self) -> str:
        # Never show the URL: it may hold a password.
        return f"Database(dialect={self.dialect!r})"

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction, committed on success.

        Raises:
            StorageError: The database could not be reached.
        """
        await self._start()
        try:
            async with self.engine.begin() as conn:
                yield conn
        except DataError as exc:
            raise UnstorableValueError() from exc
        except (OperationalError, OSError) as exc:
            raise StorageError("the database is unavailable") from exc
        except DBAPIError as exc:
            refused = _login_refused(exc)
            if refused is None:
                raise
            raise refused from exc

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection without an implicit transaction commit (reads)."""
        await self._start()
        try:
            async with self.engine.connect() as conn:
                yield conn
        except DataError as exc:
            raise UnstorableValueError() from exc
        except (OperationalError, OSError) as exc:
            raise StorageError("the database is unavailable") from exc
        except DBAPIError as exc:
            refused = _login_refused(exc)
            if refused is None:
                raise
            raise refused from exc

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
        """Close every pooled connection (and stop watching rotating credentials)."""
        if self._login is not None and self._started:
            self._started = False
            await self._login.credentials.stop()
        await self.engine.dispose()
