"""Database credentials that rotate while the service runs.

``BARBACANA_DATABASE_CREDENTIALS_REF`` names a secret (``aws://prod/orders-db``,
``vault://secret/data/orders#db``, ``file://db-credentials``) whose value is
either the password alone or a JSON object with ``username`` and ``password``
(the shape AWS Secrets Manager's RDS rotation writes). The secret resolver
refreshes it in the background; when it changes, new connections use the new
value and the pool recycles connections opened with the old one as soon as
they are back from their request (see :class:`~barbacana.storage.Database`).

Two-credential ("alternating users") rotation: the source moves to a second
role while the first still works; connections opened under the first finish
their work, and until the first is revoked a connection attempt that the new
value fails falls back to the previous one, so a source that runs ahead of the
database does not fail requests either.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from ..secrets import SecretResolver
    from ..settings import Settings

__all__ = [
    "Credentials",
    "RotatingLogin",
    "RotationListener",
    "SecretCredentials",
    "parse_credentials",
    "refused_login",
]

logger = logging.getLogger("barbacana.storage")

#: ``connection_record.info`` key: the credentials generation a connection was opened with.
_GENERATION = "barbacana.credentials.generation"

#: ``connection_record.info`` key: when a connection logged in with the previous value.
_FALLBACK_SINCE = "barbacana.credentials.fallback"

#: Seconds a connection opened with the previous value is used before the newest is tried again.
FALLBACK_LIFETIME = 5.0

#: Told that the credentials changed, with the source's version label.
RotationListener = Callable[[str | None], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name (``None``: the URL's) and a password; the password never shows."""

    username: str | None
    password: SecretStr

    def same_as(self, other: Credentials | None) -> bool:
        """Whether ``other`` holds the same user and password."""
        return (
            other is not None
            and other.username == self.username
            and other.password.get_secret_value() == self.password.get_secret_value()
        )


def parse_credentials(value: SecretStr, *, ref: str) -> Credentials:
    """Read a secret's value as credentials: a JSON object or a bare password.

    Raises:
        ConfigurationError: A JSON object without a string ``password``, or an empty value
            (the message names the reference, never the value).
    """
    text = value.get_secret_value().strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise ConfigurationError(
                f"database credentials {ref} look like JSON but do not parse; store either "
                'the password alone or {"username": "...", "password": "..."}'
            ) from None
        password = data.get("password") if isinstance(data, dict) else None
        username = data.get("username") if isinstance(data, dict) else None
        if not isinstance(password, str) or not password:
            raise ConfigurationError(
                f'database credentials {ref} hold no "password" string; store either the '
                'password alone or {"username": "...", "password": "..."}'
            )
        if username is not None and (not isinstance(username, str) or not username):
            raise ConfigurationError(f'database credentials {ref}: "username" must be a string')
        return Credentials(username, SecretStr(password))
    if not text:
        raise ConfigurationError(f"database credentials {ref} are empty")
    return Credentials(None, SecretStr(text))


class SecretCredentials:
    """Credentials read from a secret reference, refreshed while the service runs.

    Args:
        resolver: The resolver that owns the reference (started and stopped here).
        ref: The secret reference.
    """

    def __init__(self, resolver: SecretResolver, ref: str) -> None:
        self._resolver = resolver
        self.ref = resolver.register(ref)
        self._started = False

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretCredentials | None:
        """The credentials ``settings.database.credentials_ref`` names, or ``None``.

        Relative ``file://`` references resolve under ``<data_dir>/secrets``.
        """
        ref = settings.database.credentials_ref
        if ref is None:
            return None
        from ..secrets import SecretResolver

        resolver = SecretResolver.from_settings(
            settings.secrets, default_dir=settings.data_dir / "secrets"
        )
        return cls(resolver, ref)

    async def start(self) -> None:
        """Load the secret (start-up fails naming the secret and its source) and watch it."""
        if not self._started:
            await self._resolver.start()
            self._started = True

    async def stop(self) -> None:
        """Stop the background refresh."""
        if self._started:
            self._started = False
            await self._resolver.stop()

    def current(self) -> Credentials:
        """The newest value."""
        return parse_credentials(self._resolver.current(self.ref), ref=self.ref)

    def previous(self) -> Credentials | None:
        """The value before the latest change (``None`` if it never changed or is malformed)."""
        value = self._resolver.previous(self.ref)
        if value is None:
            return None
        try:
            return parse_credentials(value, ref=self.ref)
        except ConfigurationError:
            return None

    def version(self) -> str | None:
        """The source's version label of the newest value."""
        return self._resolver.version(self.ref)

    def on_change(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Call ``callback()`` after the value changes."""

        def listener(_new: SecretStr, _old: SecretStr | None) -> Awaitable[None] | None:
            return callback()

        self._resolver.on_change(self.ref, listener)

    async def refresh(self) -> bool:
        """Fetch the secret now; whether it changed."""
        return bool(await self._resolver.refresh(self.ref))

    def __repr__(self) -> str:
        return f"SecretCredentials(ref={self.ref!r})"


def refused_login(exc: BaseException | None) -> bool:
    """Whether a driver error is SQLSTATE class 28: bad password, no such role, NOLOGIN."""
    return str(getattr(exc, "sqlstate", "") or "").startswith("28")


class RotatingLogin:
    """Pool events that log in with the newest credentials and recycle older connections.

    Every connection remembers the generation of the credentials it was opened
    with; a rotation starts a new generation. An older connection is closed when
    its request checks it back in, and replaced if it is checked out again, so
    in-flight work finishes on the old login and nothing new starts on it.
    """

    def __init__(self, credentials: SecretCredentials) -> None:
        self.credentials = credentials
        self.generation = 0
        self.listeners: list[RotationListener] = []
        credentials.on_change(self._rotated)

    def attach(self, engine: AsyncEngine) -> None:
        """Listen on ``engine``'s connects, checkouts and checkins."""
        event.listen(engine.sync_engine, "do_connect", self._connect)
        event.listen(engine.sync_engine.pool, "checkout", self._checkout)
        event.listen(engine.sync_engine.pool, "checkin", self._checkin)

    async def _rotated(self) -> None:
        self.generation += 1
        version = self.credentials.version()
        logger.info(
            "database credentials %s changed (version %s): new connections use them, "
            "open ones are recycled",
            self.credentials.ref,
            version,
        )
        for listener in list(self.listeners):
            try:
                outcome = listener(version)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as exc:  # noqa: BLE001 -- a listener must not stop the rotation
                logger.error("a database rotation listener failed (%s)", type(exc).__name__)

    def _connect(self, dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        # Runs for every new connection inside the engine's greenlet, where
        # dialect.connect may await; returning a connection replaces the default one.
        record.info[_GENERATION] = self.generation
        record.info.pop(_FALLBACK_SINCE, None)
        newest = self.credentials.current()
        fallback = self.credentials.previous()
        try:
            return dialect.connect(*cargs, **_with(cparams, newest))
        except Exception as exc:
            if fallback is None or fallback.same_as(newest) or not refused_login(exc):
                raise
            try:
                connection = dialect.connect(*cargs, **_with(cparams, fallback))
            except Exception:  # noqa: BLE001 -- report the newest value's refusal, not this one
                raise exc from None
            record.info[_FALLBACK_SINCE] = time.monotonic()
            logger.warning(
                "the database refused the newest credentials of %s; connected with the "
                "previous ones (is the rotation finished in the database?)",
                self.credentials.ref,
            )
            return connection

    def _stale(self, record: Any) -> bool:
        if record.info.get(_GENERATION, self.generation) != self.generation:
            return True
        # A fallback login is retried with the newest value once in a while.
        since = record.info.get(_FALLBACK_SINCE)
        return since is not None and time.monotonic() - since > FALLBACK_LIFETIME

    def _checkout(self, _dbapi: Any, record: Any, _proxy: Any) -> None:
        if self._stale(record):
            # The pool closes it and reconnects the record with the newest credentials.
            raise DisconnectionError("database credentials rotated")

    def _checkin(self, dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None and self._stale(record):
            record.invalidate()


def _with(cparams: dict[str, Any], credentials: Credentials) -> dict[str, Any]:
    params = dict(cparams)
    if credentials.username is not None:
        params["user"] = credentials.username
    params["password"] = credentials.password.get_secret_value()
    return params
