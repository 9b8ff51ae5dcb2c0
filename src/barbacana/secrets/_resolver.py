"""The secret cache: load at start-up, refresh in the background, tell consumers of rotations.

Start-up is strict and run time is forgiving. :meth:`SecretResolver.start`
loads every registered secret and refuses to continue if one is missing or
its source is down (a service must not come up half-configured). Afterwards a
background task refreshes each value once it is older than its TTL; a source
that is down then leaves the last good value in place, and :meth:`health`
reports the failure (source, time of the last success, error code — never the
value). A changed value is announced to :meth:`on_change` listeners, and the
value before it stays available through :meth:`previous`, so a consumer can
accept the old and new credential side by side during a rotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from .._clock import Clock, system_clock
from ..errors import SecretsError
from ._base import SecretSource, sources_from_settings
from ._value import SecretHealth, SecretRef, SecretValue, SourceHealth
from .errors import (
    SecretNotLoadedError,
    SecretsConfigurationError,
    SecretSourceUnavailableError,
    SecretsStartupError,
    _SecretFailure,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ._settings import SecretsSettings

__all__ = ["ChangeListener", "SecretResolver"]

logger = logging.getLogger("barbacana.secrets")

#: Called with the new value and the one it replaces; may be a coroutine function.
ChangeListener = Callable[[SecretStr, SecretStr | None], Awaitable[None] | None]


class _Entry:
    """Cache state of one secret (never logged as a whole)."""

    __slots__ = (
        "changes",
        "failures",
        "key",
        "last_attempt",
        "last_error",
        "last_success",
        "listeners",
        "lock",
        "next_due",
        "previous",
        "ref",
        "ttl",
        "value",
    )

    def __init__(self, ref: SecretRef, ttl: float) -> None:
        self.ref = ref
        self.key = str(ref)
        self.ttl = ttl
        self.value: SecretValue | None = None
        self.previous: SecretValue | None = None
        self.last_success: float | None = None
        self.last_attempt: float | None = None
        self.last_error: str | None = None
        self.failures = 0
        self.changes = 0
        self.next_due = 0.0
        self.listeners: list[ChangeListener] = []
        self.lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"_Entry({self.key!r}, loaded={self.value is not None})"


class SecretResolver:
    """Resolves secret references through configured sources, with a TTL cache.

    Args:
        sources: Source name → source; a reference ``<name>://...`` uses ``sources[name]``.
        ttl: Seconds a fetched value is trusted before the background task fetches it again.
        refresh_interval: Seconds between background wake-ups (refresh due values,
            renew Vault tokens). Keep it well below ``ttl`` and below Vault token TTLs.
        timeout: Bound, in seconds, on one fetch.
        clock: Time source for freshness and health timestamps.

    Use it as an async context manager, or call :meth:`start` and :meth:`stop`.
    It belongs to the event loop that starts it.
    """

    def __init__(
        self,
        sources: Mapping[str, SecretSource],
        *,
        ttl: float = 300.0,
        refresh_interval: float = 30.0,
        timeout: float = 10.0,
        clock: Clock = system_clock,
    ) -> None:
        if ttl <= 0 or refresh_interval <= 0 or timeout <= 0:
            raise SecretsConfigurationError("ttl, refresh_interval and timeout must be positive")
        self._sources: dict[str, SecretSource] = dict(sources)
        self._ttl = ttl
        self._interval = refresh_interval
        self._timeout = timeout
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def from_settings(
        cls,
        settings: SecretsSettings,
        *,
        default_dir: Path | None = None,
        clock: Clock = system_clock,
    ) -> SecretResolver:
        """Build the sources the settings list, and a resolver over them.

        Args:
            settings: The ``secrets`` settings.
            default_dir: A directory for the ``file`` source when the settings name
                none (``barbacana up`` passes ``<data_dir>/secrets``).
            clock: Time source.

        Raises:
            SecretsConfigurationError: a bad source URL or option.
        """
        sources = sources_from_settings(settings, default_dir=default_dir, clock=clock)
        return cls(
            sources,
            ttl=settings.ttl.total_seconds(),
            refresh_interval=settings.refresh_interval.total_seconds(),
            timeout=settings.timeout.total_seconds(),
            clock=clock,
        )

    # -- registration ---------------------------------------------------------

    @property
    def sources(self) -> Mapping[str, SecretSource]:
        """The configured sources, by name."""
        return dict(self._sources)

    @property
    def running(self) -> bool:
        """Whether the background refresh task is running."""
        return self._task is not None and not self._task.done()

    def _parse(self, ref: str) -> tuple[SecretRef, SecretSource]:
        parsed = SecretRef.parse(ref)
        source = self._sources.get(parsed.source)
        if source is None:
            known = ", ".join(sorted(self._sources)) or "none"
            raise SecretsConfigurationError(
                f"secret {parsed} names source {parsed.source!r}, which is not configured "
                f"(configured: {known}); add its URL to BARBACANA_SECRETS_SOURCES"
            )
        source.validate_name(parsed.name)
        return parsed, source

    def register(self, ref: str, *, ttl: float | None = None) -> str:
        """Declare a secret the service needs; :meth:`start` loads every registered secret.

        Registering twice is harmless (the shorter TTL wins).

        Returns:
            The canonical reference, used as the key of :meth:`health`.

        Raises:
            SecretsConfigurationError: a malformed reference, an unconfigured source, or
                a name the source can never resolve.
        """
        parsed, _ = self._parse(ref)
        key = str(parsed)
        wanted = self._ttl if ttl is None else ttl
        if wanted <= 0:
            raise SecretsConfigurationError(f"TTL of {key} must be positive")
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(parsed, wanted)
        else:
            entry.ttl = min(entry.ttl, wanted)
        return key

    def register_settings(self, settings_cls: type[BaseModel]) -> list[str]:
        """Register every field of ``settings_cls`` marked with :class:`FromSecret`.

        Raises:
            SecretsConfigurationError: a marked field is not typed ``SecretStr`` or ``SecretBytes``.
        """
        from ._pydantic import secret_fields

        return [self.register(ref) for _, ref in secret_fields(settings_cls).values()]

    def _entry(self, ref: str) -> tuple[_Entry, SecretValue]:
        entry = self._entries.get(ref)  # the common case: ref is already canonical
        if entry is not None and entry.value is not None:
            return entry, entry.value
        key = str(SecretRef.parse(ref))
        entry = self._entries.get(key)
        if entry is None or entry.value is None:
            raise SecretNotLoadedError(
                "the secret has not been loaded; register it before start() or await get()",
                secret=key,
            )
        return entry, entry.value

    # -- loading --------------------------------------------------------------

    async def _fetch(self, entry: _Entry) -> tuple[SecretsError | None, SecretValue | None]:
        """Fetch one secret into its entry; return the error, or the value it replaced."""
        source = self._sources[entry.ref.source]
        async with entry.lock:
            now = self._clock()
            entry.last_attempt = now
            error: SecretsError | None = None
            try:
                value = await asyncio.wait_for(source.get(entry.ref.name), self._timeout)
            except TimeoutError:
                error = SecretSourceUnavailableError(
                    f"no answer within {self._timeout:g} s", secret=entry.key
                )
            except SecretsError as exc:
                error = exc
            if error is not None:
                if isinstance(error, _SecretFailure):
                    # Errors raised below the reference (a failed login) learn which secret.
                    error.secret = error.secret or entry.key
                    error.source = error.source or source.description
                entry.last_error = error.code
                entry.failures += 1
                backoff = self._interval * 2 ** min(entry.failures - 1, 10)
                entry.next_due = now + min(entry.ttl, backoff)
                return error, None
            replaced: SecretValue | None = None
            if entry.value is not None and not value.same_as(entry.value):
                replaced = entry.value
                entry.previous = entry.value
                entry.changes += 1
            entry.value = value
            entry.last_success = now
            entry.last_error = None
            entry.failures = 0
            entry.next_due = now + entry.ttl
            return None, replaced

    async def _load(self, entry: _Entry) -> SecretsError | None:
        """Fetch, log, and notify listeners of a change."""
        had_value = entry.value is not None
        error, replaced = await self._fetch(entry)
        source = self._sources[entry.ref.source].description
        if error is not None:
            if had_value:
                logger.warning(
                    "secret %s from %s could not be refreshed (%s); keeping the last good value",
                    entry.key,
                    source,
                    error.code,
                )
            else:
                logger.error(
                    "secret %s from %s could not be loaded (%s)", entry.key, source, error.code
                )
            return error
        if replaced is not None and entry.value is not None:
            logger.info(
                "secret %s from %s changed (version %s)", entry.key, source, entry.value.version
            )
            await self._notify(entry, entry.value, replaced)
        return None

    async def _notify(self, entry: _Entry, new: SecretValue, old: SecretValue) -> None:
        for listener in list(entry.listeners):
            try:
                outcome = listener(new.secret, old.secret)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as exc:  # noqa: BLE001 -- one faulty listener must not stop the others
                logger.error(
                    "a change listener of secret %s failed (%s)", entry.key, type(exc).__name__
                )

    async def start(self) -> None:
        """Load every registered secret, then start the background refresh.

        Raises:
            SecretsStartupError: one or more secrets could not be loaded; each is
                named with its source and error code. Nothing is left running.
        """
        if self._closed:
            raise SecretsConfigurationError("this resolver has been stopped; build a new one")
        if self.running:
            return
        entries = list(self._entries.values())
        errors = await asyncio.gather(*(self._load(entry) for entry in entries))
        failures = [error for error in errors if error is not None]
        if failures:
            raise SecretsStartupError(failures)
        self._task = asyncio.create_task(self._run(), name="barbacana-secrets-refresh")

    async def stop(self) -> None:
        """Stop the background refresh and close the sources."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self._closed:
            self._closed = True
            for source in self._sources.values():
                source.close()

    async def __aenter__(self) -> SecretResolver:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._tick()
            except Exception as exc:  # noqa: BLE001 -- the refresh loop must outlive a bug in one source
                logger.error("secret refresh round failed (%s)", type(exc).__name__)

    async def _tick(self) -> None:
        """One background round: source upkeep, then every due secret."""
        for source in self._sources.values():
            try:
                await asyncio.wait_for(source.maintain(), self._timeout)
            except TimeoutError:
                logger.warning("upkeep of secret source %s timed out", source.description)
            except SecretsError as exc:
                logger.warning(
                    "upkeep of secret source %s failed (%s)", source.description, exc.code
                )
        now = self._clock()
        due = [entry for entry in self._entries.values() if entry.next_due <= now]
        if due:
            await asyncio.gather(*(self._load(entry) for entry in due))

    # -- reading --------------------------------------------------------------

    async def get(self, ref: str) -> SecretStr:
        """The cached value of ``ref``, loading (and registering) it on first use.

        Raises:
            SecretsError: the secret is not cached and cannot be loaded now.
            SecretsConfigurationError: a malformed reference or unconfigured source.
        """
        entry = self._entries.get(ref)
        if entry is not None and entry.value is not None:
            return entry.value.secret
        key = self.register(ref)
        entry = self._entries[key]
        if entry.value is None:
            error = await self._load(entry)
            if error is not None:
                raise error
        return self.current(key)

    def current(self, ref: str) -> SecretStr:
        """The cached value of a loaded secret, without I/O.

        Raises:
            SecretNotLoadedError: the secret was not registered before :meth:`start`
                and has not been fetched with :meth:`get`.
        """
        _, value = self._entry(ref)
        return value.secret

    def previous(self, ref: str) -> SecretStr | None:
        """The value before the latest change, or ``None`` if it never changed.

        A consumer that must accept both credentials during a rotation (the
        database password, a key-encryption key) tries the current value first
        and this one second.

        Raises:
            SecretNotLoadedError: the secret is not loaded.
        """
        entry, _ = self._entry(ref)
        return entry.previous.secret if entry.previous is not None else None

    def version(self, ref: str) -> str | None:
        """The source's version label of the cached value (Vault KV version, AWS VersionId)."""
        _, value = self._entry(ref)
        return value.version

    def on_change(self, ref: str, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener(new, old)`` whenever a refresh finds a different value.

        The secret is registered if it was not. Listeners run in the refresh task,
        one after another; one that raises is logged (by exception type) and the
        others still run.

        Returns:
            A function that removes the listener.
        """
        key = self.register(ref)
        listeners = self._entries[key].listeners
        listeners.append(listener)

        def remove() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return remove

    async def refresh(self, ref: str | None = None) -> list[str]:
        """Fetch ``ref`` (or every registered secret) now, whatever its age.

        Failures are recorded in :meth:`health` and logged, not raised: the last
        good value stays in use.

        Returns:
            The references whose value changed.
        """
        if ref is not None:
            entries = [self._entries[self.register(ref)]]
        else:
            entries = list(self._entries.values())
        before = {entry.key: entry.changes for entry in entries}
        await asyncio.gather(*(self._load(entry) for entry in entries))
        return [entry.key for entry in entries if entry.changes != before[entry.key]]

    # -- health ---------------------------------------------------------------

    def health(self) -> dict[str, SecretHealth]:
        """Per secret: source, loaded, version, last success, last error code. Never the value."""
        report: dict[str, SecretHealth] = {}
        for key, entry in self._entries.items():
            report[key] = SecretHealth(
                secret=key,
                source=self._sources[entry.ref.source].description,
                loaded=entry.value is not None,
                version=entry.value.version if entry.value is not None else None,
                last_success=entry.last_success,
                last_attempt=entry.last_attempt,
                last_error=entry.last_error,
                consecutive_failures=entry.failures,
                changes=entry.changes,
            )
        return report

    async def check(self) -> dict[str, SourceHealth]:
        """Probe every source (reachable, authenticated, warnings such as loose file modes)."""

        async def probe(source: SecretSource) -> SourceHealth:
            try:
                return await asyncio.wait_for(source.check(), self._timeout)
            except TimeoutError:
                return SourceHealth(
                    source.description, False, f"no answer within {self._timeout:g} s"
                )

        names = list(self._sources)
        results = await asyncio.gather(*(probe(self._sources[name]) for name in names))
        return dict(zip(names, results, strict=True))

    def __repr__(self) -> str:
        loaded = sum(entry.value is not None for entry in self._entries.values())
        return (
            f"SecretResolver(sources={sorted(self._sources)!r}, secrets={len(self._entries)}, "
            f"loaded={loaded}, running={self.running})"
        )

    def __getstate__(self) -> Any:
        raise TypeError("a SecretResolver holds secrets and cannot be pickled")
