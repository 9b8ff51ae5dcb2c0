"""``AuditTrail``: record events through the processor chain into a store.

Two ways in:

- :meth:`AuditTrail.record` — security events a response depends on. Durable:
  committed before it returns. Concurrent callers share one transaction
  (group commit), each still waiting for that commit. If the trail cannot be
  written, ``on_failure="refuse"`` (the default) raises
  :class:`AuditUnavailableError` so the action does not go ahead unrecorded.
- :meth:`AuditTrail.record_access` — bulk access events. Queued and committed
  by a background batcher every ``batch_size`` events or ``batch_interval_ms``,
  and flushed by :meth:`AuditTrail.close`.

One event the store refuses for its content never takes its batch down with
it: the batch is then stored event by event, the refused event's ``record()``
fails at once with :class:`AuditEventRefusedError` (a refused bulk event is
logged and dropped), and every other event is stored. The default processors
make NUL and lone surrogates storable first (see :mod:`barbacana.audit._redact`),
so this is the last line of defence, not the usual path.

The same background task signs a checkpoint every ``checkpoint_every_seconds``
while events are uncovered, and :meth:`close` signs a last one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import structlog
from sqlalchemy.exc import SQLAlchemyError

from .._clock import Clock, system_clock
from ..crypto import KeySealer
from ..errors import StorageError
from ..storage import Database
from ._checkpoint import Checkpoint
from ._events import CATALOGUE, Actor, AuditEvent, Outcome
from ._keys import AuditKey
from ._processors import Processor, Redact, Stamp
from ._redact import Redactor
from ._settings import AuditSettings
from ._store import AuditStore, CheckpointPolicy, MemoryAuditStore, SqlAuditStore
from ._testing import publish
from .errors import AuditError, AuditEventError, AuditEventRefusedError, AuditUnavailableError

__all__ = ["MIGRATIONS", "VERSION_TABLE", "AuditTrail", "migrate"]

#: The audit concern's Alembic revisions and version table.
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_audit"

#: Events per transaction, at most.
_MAX_TRANSACTION = 1000

_log = structlog.get_logger("barbacana.audit")
_WRITE_ERRORS = (AuditError, StorageError, SQLAlchemyError, OSError)


async def migrate(db: Database) -> None:
    """Create or upgrade the audit tables in ``db`` (version table ``alembic_version_audit``)."""
    await db.migrate(MIGRATIONS, VERSION_TABLE)


#: What happened to one event of a batch: stored (sealed), or the error that stopped it.
_Outcome = AuditEvent | AuditError | StorageError | SQLAlchemyError | OSError


async def _append_isolated(store: AuditStore, events: list[AuditEvent]) -> list[_Outcome]:
    """Append ``events`` in one transaction; if the store refuses one, append them one by one.

    Returns each event's outcome, in order. Events keep their order in the
    trail; a refused event gets its :class:`AuditEventRefusedError` and takes no
    sequence number, so the chain stays gap-free.

    Raises:
        AuditError: The whole batch failed for another reason (the store is down).
    """
    try:
        return list(await store.append(events))
    except AuditEventRefusedError as exc:
        if len(events) == 1:
            return [exc]
    outcomes: list[_Outcome] = []
    for index, event in enumerate(events):
        try:
            outcomes.extend(await store.append([event]))
        except AuditEventRefusedError as exc:
            outcomes.append(exc)
        except _WRITE_ERRORS as exc:
            # The store failed meanwhile: this event and the rest are not written.
            outcomes.extend([exc] * (len(events) - index))
            break
    return outcomes


class AuditTrail:
    """Records audit events: processors, then a store.

    Build with :meth:`open` (the service's database and data directory) or
    :meth:`in_memory` (tests); or pass any :class:`AuditStore`.

    Args:
        store: Where sealed events go; ``None`` records nothing (``enabled=False``).
        settings: Failure policy, batching.
        service: Name stamped on every event.
        clock: Source of event timestamps.
        redactor: Redaction rules; by default built from ``settings.secret_fields``.
        actions: The allowed action names; defaults to :data:`CATALOGUE`.
        key: The audit key, for blind indexes of ``settings.blind_index_fields``.
        processors: Replace the default chain (stamp, redact).
    """

    def __init__(
        self,
        store: AuditStore | None,
        *,
        settings: AuditSettings | None = None,
        service: str = "barbacana",
        clock: Clock = system_clock,
        redactor: Redactor | None = None,
        actions: Iterable[str] | None = None,
        key: AuditKey | None = None,
        processors: Sequence[Processor] | None = None,
    ) -> None:
        self.settings = settings or AuditSettings()
        self.store = store
        self.key = key
        self._actions = frozenset(CATALOGUE if actions is None else actions)
        self.redactor = redactor or Redactor(secret_fields=self.settings.secret_fields)
        if processors is None:
            processors = (
                Stamp(clock, service),
                Redact(
                    self.redactor,
                    blind_index=key.blind_index if key is not None else None,
                    blind_fields=self.settings.blind_index_fields,
                ),
            )
        self._processors = tuple(processors)
        self._lock = asyncio.Lock()
        self._durable: list[tuple[AuditEvent, asyncio.Future[AuditEvent]]] = []
        self._bulk: list[AuditEvent] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._dropped = 0

    def __repr__(self) -> str:
        return f"AuditTrail(store={self.store!r})"

    # -- construction --------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        db: Database,
        data_dir: Path,
        settings: AuditSettings | None = None,
        *,
        service: str = "barbacana",
        clock: Clock = system_clock,
        actions: Iterable[str] | None = None,
        run_migrations: bool = True,
        sealer: KeySealer | None = None,
    ) -> AuditTrail:
        """Open the trail in the service's database, creating keys on first use.

        Runs the audit migrations (unless ``run_migrations`` is false), loads the
        audit key from ``<data_dir>/audit/`` (creating it if the trail has none
        yet), checks it is the key this trail was started with, and starts the
        background batcher.

        Args:
            db: The service's database.
            data_dir: Where the audit key files live (``<data_dir>/audit/``).
            settings: The audit settings.
            service: The name stamped on every event.
            clock: Source of event timestamps.
            actions: The allowed action names; defaults to :data:`CATALOGUE`.
            run_migrations: Create or upgrade the audit tables first.
            sealer: Seals the key files under the key-encryption key
                (:class:`barbacana.crypto.Sealer`); plain files of an earlier
                version are sealed on the way. Without one, keys are kept as
                earlier versions kept them (plain, or passphrase-encrypted).

        Raises:
            AuditKeyLockedError: The key files are sealed under a key-encryption
                key that ``sealer`` does not hold.
            AuditKeyError: The key file is missing for an existing trail,
                unreadable, too open, or not this trail's key.
            AuditUnavailableError: The database cannot be written.
        """
        settings = settings or AuditSettings()
        if not settings.enabled:
            return cls(None, settings=settings, service=service, clock=clock, actions=actions)
        if run_migrations:
            await migrate(db)
        probe = SqlAuditStore(db)
        head = await probe.head()
        passphrase = (
            settings.key_passphrase.get_secret_value().encode()
            if settings.key_passphrase is not None
            else None
        )
        key = AuditKey.load_or_create(
            settings.key_file(data_dir),
            settings.hmac_key_file(data_dir),
            sealer=sealer,
            passphrase=passphrase,
            create=head.key_id is None,
        )
        policy = CheckpointPolicy(
            settings.checkpoint_every_events, settings.checkpoint_every_seconds
        )
        store = SqlAuditStore(db, key, policy=policy, clock=clock)
        await store.bind_key()
        trail = cls(
            store, settings=settings, service=service, clock=clock, actions=actions, key=key
        )
        trail._ensure_task()
        return trail

    @classmethod
    def in_memory(
        cls,
        settings: AuditSettings | None = None,
        *,
        service: str = "barbacana",
        clock: Clock = system_clock,
        actions: Iterable[str] | None = None,
    ) -> AuditTrail:
        """A trail kept in memory with a throwaway key (tests, demos)."""
        settings = settings or AuditSettings()
        key = AuditKey.generate()
        policy = CheckpointPolicy(
            settings.checkpoint_every_events, settings.checkpoint_every_seconds
        )
        store = MemoryAuditStore(key, policy=policy, clock=clock)
        return cls(store, settings=settings, service=service, clock=clock, actions=actions, key=key)

    # -- recording -----------------------------------------------------------------------

    def _build(
        self,
        action: str,
        actor: Actor | Mapping[str, Any],
        outcome: str,
        resource: str | None,
        reason: str | None,
        details: Mapping[str, Any] | None,
    ) -> AuditEvent:
        if action not in self._actions:
            raise AuditEventError(
                f"action {action!r} is not in the audit catalogue; add it with "
                "AuditTrail(..., actions=CATALOGUE | {...})"
            )
        event = AuditEvent(
            action=action,
            outcome=cast(Outcome, outcome),
            actor=Actor.coerce(actor),
            resource=resource,
            reason=reason,
            details=details if details is not None else {},
        )
        for processor in self._processors:
            event = processor(event)
        publish(event)
        if self.settings.log_events:
            _log.info("audit", audit=event.to_dict())
        return event

    async def record(
        self,
        action: str,
        *,
        actor: Actor | Mapping[str, Any],
        outcome: Outcome | str,
        resource: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Record a security event durably: it is committed when this returns.

        Args:
            action: A name from the catalogue, e.g. ``"auth.login.failed"``.
            actor: Who acted (:class:`Actor`, or a mapping with ``type``, ``id``,
                ``name``/``username``, ``address``); the client address is taken
                from the request context when the actor has none.
            outcome: ``success``, ``failure`` or ``denied``.
            resource: What was acted on, e.g. ``"user:42"``.
            reason: Why it failed, ideally an error ``code``.
            details: Anything else; secrets are redacted before storage.

        Returns:
            The event as stored (with ``seq`` and ``leaf_hash``); with
            ``on_failure="continue"`` and a failed write, the unstored event
            (``seq`` is ``None``).

        Raises:
            AuditEventError: Unknown action or malformed field (a bug, always raised).
            AuditEventRefusedError: The store refused this event's content (the
                other events committed with it are stored) and ``on_failure``
                is ``refuse``.
            AuditUnavailableError: The trail could not be written and
                ``on_failure`` is ``refuse``.
        """
        event = self._build(action, actor, outcome, resource, reason, details)
        if self.store is None:
            return event
        if self._closed:
            return self._failed(event, AuditUnavailableError("the audit trail is closed"))
        store = self.store
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AuditEvent] = loop.create_future()
        self._durable.append((event, future))
        async with self._lock:
            if not future.done():
                await self._commit_durable(store)
        try:
            return await future
        except _WRITE_ERRORS as exc:
            return self._failed(event, exc)

    async def _commit_durable(self, store: AuditStore) -> None:
        """Commit every waiting durable event (group commit); called under the lock."""
        while self._durable:
            batch = self._durable[:_MAX_TRANSACTION]
            del self._durable[:_MAX_TRANSACTION]
            task = asyncio.get_running_loop().create_task(
                _append_isolated(store, [e for e, _ in batch])
            )

            def deliver(done: asyncio.Future[list[_Outcome]], batch: Any = batch) -> None:
                for index, (_, waiter) in enumerate(batch):
                    if waiter.done():
                        continue
                    if done.cancelled():
                        waiter.set_exception(AuditUnavailableError("the audit write was cancelled"))
                    elif (exc := done.exception()) is not None:
                        waiter.set_exception(exc)
                    elif isinstance(outcome := done.result()[index], BaseException):
                        waiter.set_exception(outcome)
                    else:
                        waiter.set_result(outcome)

            task.add_done_callback(deliver)
            # The commit goes on even if this caller is cancelled (asyncio.wait does
            # not cancel what it waits for); its outcome, success or error, reaches
            # every caller through its own future.
            await asyncio.wait({task})

    def _failed(self, event: AuditEvent, exc: BaseException) -> AuditEvent:
        if self.settings.on_failure == "refuse":
            if isinstance(exc, AuditUnavailableError):
                raise exc
            raise AuditUnavailableError("the audit trail could not be written") from exc
        _log.error(
            "audit_write_failed",
            action=event.action,
            outcome=event.outcome,
            error=type(exc).__name__,
        )
        return event

    async def record_access(
        self,
        action: str = "access.request",
        *,
        actor: Actor | Mapping[str, Any],
        outcome: Outcome | str,
        resource: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue a bulk access event; it is committed with others shortly after.

        Waits only when ``max_pending`` events are already queued (backpressure).

        Raises:
            AuditEventError: Unknown action or malformed field.
            AuditUnavailableError: The queue is full, the trail cannot be
                written, and ``on_failure`` is ``refuse``.
        """
        event = self._build(action, actor, outcome, resource, reason, details)
        if self.store is None:
            return
        if self._closed:
            self._failed(event, AuditUnavailableError("the audit trail is closed"))
            return
        self._ensure_task()
        if len(self._bulk) >= self.settings.max_pending:
            try:
                await self.flush()
            except AuditUnavailableError as exc:
                if len(self._bulk) >= self.settings.max_pending:
                    self._dropped += 1
                    self._failed(event, exc)
                    return
        self._bulk.append(event)
        if len(self._bulk) == 1 or len(self._bulk) >= self.settings.batch_size:
            self._wake.set()

    async def flush(self) -> None:
        """Commit every queued bulk event now.

        Raises:
            AuditUnavailableError: The write failed (the events stay queued).
        """
        async with self._lock:
            await self._flush_bulk()

    async def _flush_bulk(self) -> None:
        while self._bulk and self.store is not None:
            batch = self._bulk[:_MAX_TRANSACTION]
            try:
                outcomes = await _append_isolated(self.store, batch)
            except _WRITE_ERRORS as exc:
                raise AuditUnavailableError("bulk audit events could not be written") from exc
            done = 0
            failure: BaseException | None = None
            for event, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, AuditEventRefusedError):
                    # Retrying cannot help: drop it, say so, and keep the queue moving.
                    self._dropped += 1
                    _log.error("audit_event_refused", action=event.action, error=outcome.detail)
                elif isinstance(outcome, BaseException):
                    failure = outcome
                    break
                done += 1
            del self._bulk[:done]
            if failure is not None:
                raise AuditUnavailableError("bulk audit events could not be written") from failure

    async def checkpoint(self) -> Checkpoint | None:
        """Commit queued events and sign a checkpoint now, if any event is uncovered."""
        if self.store is None:
            return None
        await self.flush()
        async with self._lock:
            return await self.store.checkpoint_if_due(force=True)

    def blind_index(self, value: str) -> str:
        """The stored form of ``value`` in a blind-index field, to search for it.

        Raises:
            AuditEventError: The trail has no audit key.
        """
        if self.key is None:
            raise AuditEventError("this trail has no audit key for blind indexes")
        return self.key.blind_index(value)

    # -- background work -----------------------------------------------------------------

    def _ensure_task(self) -> None:
        if self._task is None and self.store is not None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="barbacana-audit-batcher"
            )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.batch_interval_ms / 1000
        every = self.settings.checkpoint_every_seconds
        first_pending: float | None = None
        next_checkpoint = loop.time() + every
        while not self._closed:
            now = loop.time()
            if self._bulk and first_pending is None:
                first_pending = now
            deadline = next_checkpoint
            if first_pending is not None:
                deadline = min(deadline, first_pending + interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(deadline - now, 0))
            self._wake.clear()
            if self._closed:
                break
            now = loop.time()
            if self._bulk and (
                len(self._bulk) >= self.settings.batch_size
                or (first_pending is not None and now >= first_pending + interval)
            ):
                try:
                    await self.flush()
                except AuditUnavailableError as exc:
                    _log.error(
                        "audit_flush_failed", pending=len(self._bulk), error=str(exc.__cause__)
                    )
                first_pending = loop.time() if self._bulk else None
            elif not self._bulk:
                first_pending = None
            if now >= next_checkpoint:
                next_checkpoint = now + every
                try:
                    async with self._lock:
                        if self.store is not None:
                            await self.store.checkpoint_if_due()
                except _WRITE_ERRORS as exc:
                    _log.error("audit_checkpoint_failed", error=type(exc).__name__)

    async def close(self) -> None:
        """Flush queued events, sign a last checkpoint, stop the background task.

        Raises:
            AuditUnavailableError: Queued events could not be written and
                ``on_failure`` is ``refuse``.
        """
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self.store is None:
            return
        try:
            await self.flush()
            async with self._lock:
                await self.store.checkpoint_if_due(force=True)
        except _WRITE_ERRORS as exc:
            if self.settings.on_failure == "refuse":
                raise AuditUnavailableError("the audit trail could not be flushed") from exc
            _log.error("audit_close_failed", pending=len(self._bulk), error=type(exc).__name__)
        finally:
            await self.store.close()

    async def __aenter__(self) -> AuditTrail:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
