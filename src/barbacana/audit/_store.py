"""Where sealed events go: the store ABC, the SQL store, the in-memory store.

Appending is the last part of the processor chain, done while the shared head
of the tree is locked: *number* (the next ``seq``) → *hash* (leaf hash of the
canonical event, RFC 6962 §2.1) → *MAC* → *store*, and every N events or T
seconds a signed checkpoint, all in one transaction. So an event acknowledged
to the caller is committed, and ``seq`` is gap-free however many processes
write the same trail.

One event the store cannot hold (a value the database refuses, content that
is not JSON or not valid Unicode) fails the append with
:class:`AuditEventRefusedError`, distinct from :class:`AuditUnavailableError`
(the store is down): the trail then stores the rest of the batch one by one
and fails only that event's ``record()``.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import and_, func, inspect, select, update
from sqlalchemy.exc import DataError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from .._clock import Clock, system_clock
from ..errors import StorageError
from ..storage import Database, UnstorableValueError
from ._checkpoint import Checkpoint
from ._events import AuditEvent, canonical_json, format_timestamp
from ._keys import AuditKey
from ._merkle import CompactRange, leaf_hash
from ._schema import HEAD_ID, checkpoints_table, events_table, head_table
from .errors import (
    AuditEventRefusedError,
    AuditKeyError,
    AuditQueryError,
    AuditTrailNotFoundError,
    AuditUnavailableError,
)

__all__ = [
    "AuditStore",
    "CheckpointPolicy",
    "MemoryAuditStore",
    "SqlAuditStore",
    "StoredRow",
    "TrailHead",
    "hash_event",
]

#: Largest page of :meth:`AuditStore.query`.
MAX_QUERY_LIMIT = 1000


def hash_event(event: AuditEvent) -> AuditEvent:
    """The *hash* processor: set ``leaf_hash = SHA-256(0x00 || canonical event)``.

    The event must already carry its ``seq``: the position is part of what is
    hashed, so a row moved elsewhere no longer matches.

    Raises:
        AuditEventRefusedError: The event is not JSON, or not valid Unicode.
    """
    return _hashed(event)[0]


def _hashed(event: AuditEvent, seq: int | None = None) -> tuple[AuditEvent, bytes]:
    """The event numbered ``seq`` (if given) with its leaf hash, and the bytes hashed."""
    seq = event.seq if seq is None else seq
    if seq is None:
        raise AuditUnavailableError("an event is hashed only once it is numbered")
    content = event.to_dict()
    content["seq"] = seq
    try:
        body = canonical_json(content)
    except (TypeError, ValueError) as exc:
        # Not JSON (an object, NaN) or not UTF-8 (a lone surrogate): only when the
        # processor chain that makes values storable was replaced.
        raise AuditEventRefusedError(
            f"the {event.action} audit event cannot be encoded: {type(exc).__name__}"
        ) from exc
    return event.evolve(seq=seq, leaf_hash=leaf_hash(body)), body


def _refused_value(exc: SQLAlchemyError) -> bool:
    """Whether the database refused a *value* (SQLSTATE class 22, data exception)."""
    if isinstance(exc, DataError):
        return True
    code = getattr(exc.orig, "sqlstate", None) if isinstance(exc, DBAPIError) else None
    return isinstance(code, str) and code.startswith("22")


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """When to sign a checkpoint: every ``every_events`` events or ``every_seconds``."""

    every_events: int = 256
    every_seconds: float = 5.0

    def due(self, head: TrailHead, now_us: int) -> bool:
        """Whether the head has events not covered by a checkpoint for long enough."""
        pending = head.size - head.checkpoint_size
        if pending <= 0:
            return False
        return (
            pending >= self.every_events
            or now_us - head.checkpoint_us >= self.every_seconds * 1_000_000
        )


@dataclass(frozen=True, slots=True)
class TrailHead:
    """The shared head of the tree."""

    trail_id: str
    key_id: str | None
    size: int
    frontier: CompactRange
    checkpoint_size: int
    checkpoint_us: int

    @property
    def root_hash(self) -> bytes:
        """Root of the whole tree (including events after the latest checkpoint)."""
        return self.frontier.root()


@dataclass(frozen=True, slots=True)
class StoredRow:
    """An event row as stored, for the verifier: nothing is trusted yet."""

    seq: int
    body: bytes
    leaf_hash: bytes
    mac: bytes
    columns: dict[str, Any]


def _columns(event: AuditEvent) -> dict[str, Any]:
    return {
        "ts_us": event.micros,
        "service": event.service,
        "action": event.action,
        "outcome": event.outcome,
        "actor_type": event.actor.type,
        "actor_id": event.actor.id,
        "resource": event.resource,
        "request_id": event.request_id,
    }


def expected_columns(event: AuditEvent) -> dict[str, Any]:
    """The query columns a stored event must have (checked by the verifier)."""
    return _columns(event)


class _Sealer:
    """Numbers, hashes and MACs events against a head; signs checkpoints."""

    def __init__(self, key: AuditKey, policy: CheckpointPolicy, clock: Clock) -> None:
        self.key = key
        self.policy = policy
        self.clock = clock

    def now_us(self) -> int:
        return round(self.clock() * 1_000_000)

    def seal(
        self, head: TrailHead, events: Sequence[AuditEvent]
    ) -> tuple[list[AuditEvent], list[dict[str, Any]], TrailHead]:
        frontier = head.frontier.copy()
        sealed: list[AuditEvent] = []
        rows: list[dict[str, Any]] = []
        seq = head.size
        for event in events:
            numbered, body = _hashed(event, seq)
            leaf = cast(bytes, numbered.leaf_hash)  # set by _hashed
            frontier.append(leaf)
            sealed.append(numbered)
            rows.append(
                {
                    "seq": seq,
                    **_columns(numbered),
                    "body": body.decode("utf-8"),
                    "leaf_hash": leaf,
                    "mac": self.key.event_mac(seq, leaf),
                }
            )
            seq += 1
        return sealed, rows, dataclasses.replace(head, size=seq, frontier=frontier)

    def checkpoint(self, head: TrailHead, now_us: int) -> Checkpoint:
        return Checkpoint.sign(
            self.key,
            origin=head.trail_id,
            tree_size=head.size,
            root_hash=head.frontier.root(),
            timestamp=format_timestamp(now_us),
        )


def _micros(value: datetime | float | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise AuditQueryError(f"{name} must be timezone-aware")
        delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(value * 1_000_000)
    raise AuditQueryError(f"{name} must be a datetime or UNIX seconds")


def _check_query(limit: int, after_seq: int | None, before_seq: int | None) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_QUERY_LIMIT:
        raise AuditQueryError(f"limit must be an integer from 1 to {MAX_QUERY_LIMIT}")
    for name, value in (("after_seq", after_seq), ("before_seq", before_seq)):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < -1
        ):
            raise AuditQueryError(f"{name} must be a sequence number")


class AuditStore(ABC):
    """Where the trail lives. Reads work without the audit key; appends need it."""

    @abstractmethod
    async def head(self) -> TrailHead:
        """The current head of the tree.

        Raises:
            AuditTrailNotFoundError: There is no trail here.
        """

    @abstractmethod
    async def append(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        """Number, hash and commit ``events`` in one transaction; return them sealed.

        Raises:
            AuditEventRefusedError: Nothing was written: the store refused the
                content of an event (store the events one by one to find which).
            AuditUnavailableError: Nothing was written: the store failed.
        """

    @abstractmethod
    async def checkpoint_if_due(self, *, force: bool = False) -> Checkpoint | None:
        """Sign a checkpoint if the policy says so (or ``force`` and events are uncovered)."""

    @abstractmethod
    async def checkpoints(self, *, since_size: int = 0) -> list[Checkpoint]:
        """Stored checkpoints, oldest first."""

    @abstractmethod
    async def rows(self, *, after_seq: int = -1, limit: int = 1000) -> list[StoredRow]:
        """Stored rows with ``seq > after_seq`` in order, unverified (for the verifier)."""

    @abstractmethod
    async def leaf_hashes(self, size: int) -> list[bytes]:
        """The stored leaf hashes of events ``0 .. size-1`` (for proofs)."""

    @abstractmethod
    async def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> tuple[list[AuditEvent], int | None]:
        """Events matching every given filter, one page at a time.

        Args:
            actor: The actor id (user id, client id, API key id).
            action: An exact action name, or a prefix ending in ``.`` (``"auth."``).
            outcome: ``success``, ``failure`` or ``denied``.
            since: Events at or after this moment (aware datetime or UNIX seconds).
            until: Events strictly before this moment.
            after_seq: Cursor: only events after this seq (oldest-first pages).
            before_seq: Cursor: only events before this seq (newest-first pages).
            limit: Page size, 1 to 1000.
            newest_first: Order of the page.

        Returns:
            The page, and the cursor of the next page (``None`` on the last):
            pass it as ``after_seq`` (or ``before_seq`` with ``newest_first``).

        Raises:
            AuditQueryError: A parameter is invalid.
        """

    async def check(self) -> None:  # noqa: B027 -- optional health check
        """Raise unless the store answers."""

    async def close(self) -> None:  # noqa: B027 -- nothing to release by default
        """Release resources (the store does not own the database)."""


class SqlAuditStore(AuditStore):
    """The trail in the service's database (SQLite or PostgreSQL).

    Appends lock the single ``audit_head`` row (``SELECT ... FOR UPDATE`` on
    PostgreSQL; on SQLite the first statement is a write to it, which takes the
    database write lock), read the size and compact range there, and write the
    new ones back in the same transaction: every process continues the same tree.

    Args:
        db: The service's database (migrated with :func:`barbacana.audit.migrate`).
        key: The audit key; ``None`` for a read-only store (verify, tail, query).
        policy: When to sign checkpoints.
        clock: Time of checkpoints.
    """

    def __init__(
        self,
        db: Database,
        key: AuditKey | None = None,
        *,
        policy: CheckpointPolicy | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._db = db
        self._sealer = None if key is None else _Sealer(key, policy or CheckpointPolicy(), clock)

    def __repr__(self) -> str:
        return f"SqlAuditStore({self._db!r})"

    @property
    def database(self) -> Database:
        """The database holding the trail."""
        return self._db

    # -- helpers -------------------------------------------------------------------------

    def _sealer_or_fail(self) -> _Sealer:
        if self._sealer is None:
            raise AuditKeyError("this audit store was opened read-only (no audit key)")
        return self._sealer

    async def exists(self) -> bool:
        """Whether the database holds the audit tables.

        Raises:
            AuditTrailNotFoundError: The database cannot be read at all.
        """

        def probe(sync_conn: Any) -> bool:
            names = set(inspect(sync_conn).get_table_names())
            return {"audit_events", "audit_checkpoints", "audit_head"} <= names

        try:
            async with self._db.connect() as conn:
                return bool(await conn.run_sync(probe))
        except (SQLAlchemyError, StorageError, OSError) as exc:
            raise AuditTrailNotFoundError(
                f"the database cannot be read: {type(exc).__name__}"
            ) from exc

    @staticmethod
    def _head_from(row: Any) -> TrailHead:
        try:
            frontier = CompactRange.from_bytes(row.size, bytes(row.frontier))
        except ValueError:
            raise AuditTrailNotFoundError("the audit head is corrupt (bad compact range)") from None
        return TrailHead(
            trail_id=row.trail_id,
            key_id=row.key_id,
            size=row.size,
            frontier=frontier,
            checkpoint_size=row.checkpoint_size,
            checkpoint_us=row.checkpoint_us,
        )

    async def _locked_head(self, conn: AsyncConnection) -> TrailHead:
        query: Any
        if self._db.dialect == "postgresql":
            query = select(head_table).where(head_table.c.id == HEAD_ID).with_for_update()
        else:
            # SQLite: make the first statement a write, so the transaction takes
            # the database write lock now and reads the newest head under it.
            query = (
                update(head_table)
                .where(head_table.c.id == HEAD_ID)
                .values(size=head_table.c.size)
                .returning(*head_table.c)
            )
        row = (await conn.execute(query)).one_or_none()
        if row is None:
            raise AuditTrailNotFoundError("the audit head row is missing")
        return self._head_from(row)

    @staticmethod
    async def _write_head(conn: AsyncConnection, head: TrailHead) -> None:
        await conn.execute(
            update(head_table)
            .where(head_table.c.id == HEAD_ID)
            .values(
                size=head.size,
                frontier=head.frontier.to_bytes(),
                checkpoint_size=head.checkpoint_size,
                checkpoint_us=head.checkpoint_us,
            )
        )

    @staticmethod
    async def _write_checkpoint(conn: AsyncConnection, checkpoint: Checkpoint, now_us: int) -> None:
        await conn.execute(
            checkpoints_table.insert().values(
                tree_size=checkpoint.tree_size,
                ts_us=now_us,
                root_hash=checkpoint.root_hash,
                key_id=checkpoint.key_id,
                statement=checkpoint.statement().decode("utf-8"),
                signature=checkpoint.signature,
            )
        )

    # -- the trail's key -----------------------------------------------------------------

    async def bind_key(self) -> TrailHead:
        """Record this store's audit key in the head (first use) or check it matches.

        Raises:
            AuditKeyError: The trail was started with another audit key.
        """
        sealer = self._sealer_or_fail()
        try:
            async with self._db.begin() as conn:
                head = await self._locked_head(conn)
                if head.key_id is None:
                    await conn.execute(
                        update(head_table)
                        .where(head_table.c.id == HEAD_ID)
                        .values(key_id=sealer.key.key_id)
                    )
                    return dataclasses.replace(head, key_id=sealer.key.key_id)
        except SQLAlchemyError as exc:
            raise AuditUnavailableError("the audit head could not be read") from exc
        if head.key_id != sealer.key.key_id:
            raise AuditKeyError(
                f"this trail is signed with audit key {head.key_id}, but the key file holds "
                f"{sealer.key.key_id}; restore the trail's key file"
            )
        return head

    # -- AuditStore ----------------------------------------------------------------------

    async def head(self) -> TrailHead:
        if not await self.exists():
            raise AuditTrailNotFoundError("the database has no audit trail (no audit tables)")
        try:
            async with self._db.connect() as conn:
                row = (
                    await conn.execute(select(head_table).where(head_table.c.id == HEAD_ID))
                ).one_or_none()
        except SQLAlchemyError as exc:
            raise AuditTrailNotFoundError("the audit head cannot be read") from exc
        if row is None:
            raise AuditTrailNotFoundError("the audit head row is missing")
        return self._head_from(row)

    async def append(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        sealer = self._sealer_or_fail()
        if not events:
            return []
        try:
            async with self._db.begin() as conn:
                head = await self._locked_head(conn)
                sealed, rows, head = sealer.seal(head, events)
                await conn.execute(events_table.insert(), rows)
                now = sealer.now_us()
                if sealer.policy.due(head, now):
                    await self._write_checkpoint(conn, sealer.checkpoint(head, now), now)
                    head = dataclasses.replace(head, checkpoint_size=head.size, checkpoint_us=now)
                await self._write_head(conn, head)
        except UnstorableValueError as exc:
            raise AuditEventRefusedError(self._refused(events)) from exc
        except SQLAlchemyError as exc:
            if _refused_value(exc):
                raise AuditEventRefusedError(self._refused(events)) from exc
            raise AuditUnavailableError("the audit trail could not be written") from exc
        except (StorageError, OSError) as exc:
            raise AuditUnavailableError("the audit trail could not be written") from exc
        return sealed

    @staticmethod
    def _refused(events: Sequence[AuditEvent]) -> str:
        if len(events) == 1:
            return f"the database refused a value of the {events[0].action} audit event"
        return f"the database refused a value of one of {len(events)} audit events"

    async def checkpoint_if_due(self, *, force: bool = False) -> Checkpoint | None:
        sealer = self._sealer_or_fail()
        try:
            async with self._db.begin() as conn:
                head = await self._locked_head(conn)
                now = sealer.now_us()
                uncovered = head.size > head.checkpoint_size
                if not (sealer.policy.due(head, now) or (force and uncovered)):
                    return None
                checkpoint = sealer.checkpoint(head, now)
                await self._write_checkpoint(conn, checkpoint, now)
                await self._write_head(
                    conn, dataclasses.replace(head, checkpoint_size=head.size, checkpoint_us=now)
                )
        except (SQLAlchemyError, StorageError, OSError) as exc:
            raise AuditUnavailableError("the audit checkpoint could not be written") from exc
        return checkpoint

    async def checkpoints(self, *, since_size: int = 0) -> list[Checkpoint]:
        head = await self.head()
        query = (
            select(checkpoints_table)
            .where(checkpoints_table.c.tree_size >= since_size)
            .order_by(checkpoints_table.c.tree_size)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        out = []
        for row in rows:
            out.append(
                _checkpoint_from_row(
                    head.trail_id,
                    row.tree_size,
                    bytes(row.root_hash),
                    row.key_id,
                    row.statement,
                    bytes(row.signature),
                )
            )
        return out

    async def rows(self, *, after_seq: int = -1, limit: int = 1000) -> list[StoredRow]:
        query = (
            select(events_table)
            .where(events_table.c.seq > after_seq)
            .order_by(events_table.c.seq)
            .limit(limit)
        )
        try:
            async with self._db.connect() as conn:
                result = (await conn.execute(query)).mappings().all()
        except SQLAlchemyError as exc:
            raise AuditTrailNotFoundError("the audit events cannot be read") from exc
        return [
            StoredRow(
                seq=r["seq"],
                body=(r["body"] or "").encode("utf-8"),
                leaf_hash=bytes(r["leaf_hash"] or b""),
                mac=bytes(r["mac"] or b""),
                columns={name: r[name] for name in _COLUMN_NAMES},
            )
            for r in result
        ]

    async def leaf_hashes(self, size: int) -> list[bytes]:
        out: list[bytes] = []
        async with self._db.connect() as conn:
            while len(out) < size:
                query = (
                    select(events_table.c.seq, events_table.c.leaf_hash)
                    .where(and_(events_table.c.seq >= len(out), events_table.c.seq < size))
                    .order_by(events_table.c.seq)
                    .limit(50_000)
                )
                batch = (await conn.execute(query)).all()
                if not batch:
                    break
                for seq, leaf in batch:
                    if seq != len(out):
                        raise AuditTrailNotFoundError(
                            f"event {len(out)} is missing: run barbacana audit verify"
                        )
                    out.append(bytes(leaf))
        if len(out) != size:
            raise AuditTrailNotFoundError(
                f"the trail holds {len(out)} events, fewer than {size}: run barbacana audit verify"
            )
        return out

    async def event(self, seq: int) -> tuple[AuditEvent, bytes] | None:
        """The stored event ``seq`` and its canonical bytes, or ``None``."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    select(events_table.c.body, events_table.c.leaf_hash).where(
                        events_table.c.seq == seq
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        body = row.body.encode("utf-8")
        return AuditEvent.from_canonical(body, leaf_hash=bytes(row.leaf_hash)), body

    async def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> tuple[list[AuditEvent], int | None]:
        _check_query(limit, after_seq, before_seq)
        t = events_table.c
        conditions: list[Any] = []
        if actor is not None:
            conditions.append(t.actor_id == actor)
        if action is not None:
            conditions.append(
                t.action.startswith(action, autoescape=True)
                if action.endswith(".")
                else t.action == action
            )
        if outcome is not None:
            conditions.append(t.outcome == outcome)
        if (since_us := _micros(since, "since")) is not None:
            conditions.append(t.ts_us >= since_us)
        if (until_us := _micros(until, "until")) is not None:
            conditions.append(t.ts_us < until_us)
        if after_seq is not None:
            conditions.append(t.seq > after_seq)
        if before_seq is not None:
            conditions.append(t.seq < before_seq)
        query = (
            select(t.seq, t.body, t.leaf_hash)
            .where(and_(True, *conditions))
            .order_by(t.seq.desc() if newest_first else t.seq)
            .limit(limit + 1)
        )
        try:
            async with self._db.connect() as conn:
                rows = (await conn.execute(query)).all()
        except SQLAlchemyError as exc:
            raise AuditUnavailableError("the audit trail could not be read") from exc
        more = len(rows) > limit
        events = [
            AuditEvent.from_canonical(r.body.encode("utf-8"), leaf_hash=bytes(r.leaf_hash))
            for r in rows[:limit]
        ]
        return events, (rows[limit - 1].seq if more else None)

    async def count(self) -> int:
        """Number of stored event rows (not trusted: the verifier compares it)."""
        async with self._db.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(events_table))).scalar_one()
            )

    async def check(self) -> None:
        await self._db.check()


_COLUMN_NAMES = (
    "ts_us",
    "service",
    "action",
    "outcome",
    "actor_type",
    "actor_id",
    "resource",
    "request_id",
)


def _checkpoint_from_row(
    origin: str, tree_size: int, root: bytes, key: str, statement: str, signature: bytes
) -> Checkpoint:
    # The stored statement is authoritative: parse it, so a row whose columns
    # were edited still shows what was signed (and then fails the signature).
    try:
        data = json.loads(statement)
        return Checkpoint(
            origin=str(data["origin"]),
            tree_size=int(data["tree_size"]),
            root_hash=bytes.fromhex(data["root_hash"]),
            timestamp=str(data["timestamp"]),
            key_id=str(data["key_id"]),
            signature=signature,
        )
    except (ValueError, KeyError, TypeError):
        return Checkpoint(origin, tree_size, root, "1970-01-01T00:00:00.000000Z", key, signature)


class MemoryAuditStore(AuditStore):
    """The same trail in memory: for tests, and for a service that runs without storage.

    Args:
        key: The audit key (a throwaway one by default).
        policy: When to sign checkpoints.
        clock: Time of checkpoints.
    """

    def __init__(
        self,
        key: AuditKey | None = None,
        *,
        policy: CheckpointPolicy | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.key = key or AuditKey.generate()
        self._sealer = _Sealer(self.key, policy or CheckpointPolicy(), clock)
        self._head = TrailHead(str(uuid.uuid4()), self.key.key_id, 0, CompactRange(), 0, 0)
        self._rows: list[dict[str, Any]] = []
        self._events: list[AuditEvent] = []
        self._checkpoints: list[Checkpoint] = []

    def __repr__(self) -> str:
        return f"MemoryAuditStore(size={self._head.size})"

    async def head(self) -> TrailHead:
        return self._head

    async def append(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        sealed, rows, head = self._sealer.seal(self._head, events)
        now = self._sealer.now_us()
        if self._sealer.policy.due(head, now):
            self._checkpoints.append(self._sealer.checkpoint(head, now))
            head = dataclasses.replace(head, checkpoint_size=head.size, checkpoint_us=now)
        self._rows.extend(rows)
        self._events.extend(sealed)
        self._head = head
        return sealed

    async def checkpoint_if_due(self, *, force: bool = False) -> Checkpoint | None:
        head, now = self._head, self._sealer.now_us()
        if not (self._sealer.policy.due(head, now) or (force and head.size > head.checkpoint_size)):
            return None
        checkpoint = self._sealer.checkpoint(head, now)
        self._checkpoints.append(checkpoint)
        self._head = dataclasses.replace(head, checkpoint_size=head.size, checkpoint_us=now)
        return checkpoint

    async def checkpoints(self, *, since_size: int = 0) -> list[Checkpoint]:
        return [c for c in self._checkpoints if c.tree_size >= since_size]

    async def rows(self, *, after_seq: int = -1, limit: int = 1000) -> list[StoredRow]:
        selected = self._rows[max(after_seq + 1, 0) : max(after_seq + 1, 0) + limit]
        return [
            StoredRow(
                seq=r["seq"],
                body=r["body"].encode("utf-8"),
                leaf_hash=r["leaf_hash"],
                mac=r["mac"],
                columns={name: r[name] for name in _COLUMN_NAMES},
            )
            for r in selected
        ]

    async def leaf_hashes(self, size: int) -> list[bytes]:
        return [r["leaf_hash"] for r in self._rows[:size]]

    async def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> tuple[list[AuditEvent], int | None]:
        _check_query(limit, after_seq, before_seq)
        since_us, until_us = _micros(since, "since"), _micros(until, "until")

        def keep(e: AuditEvent) -> bool:
            seq = e.seq if e.seq is not None else -1
            return (
                (actor is None or e.actor.id == actor)
                and (
                    action is None
                    or (e.action.startswith(action) if action.endswith(".") else e.action == action)
                )
                and (outcome is None or e.outcome == outcome)
                and (since_us is None or e.micros >= since_us)
                and (until_us is None or e.micros < until_us)
                and (after_seq is None or seq > after_seq)
                and (before_seq is None or seq < before_seq)
            )

        ordered = reversed(self._events) if newest_first else iter(self._events)
        matched: list[AuditEvent] = []
        for event in ordered:
            if keep(event):
                matched.append(event)
                if len(matched) > limit:
                    break
        more = len(matched) > limit
        page = matched[:limit]
        return page, (page[-1].seq if more else None)
