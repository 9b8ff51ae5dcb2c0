"""The trail on a real database (SQLite and PostgreSQL): recording, checkpoints, queries."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from barbacana import _context
from barbacana.audit import (
    CATALOGUE,
    Actor,
    AuditEventError,
    AuditKey,
    AuditKeyError,
    AuditQueryError,
    AuditSettings,
    AuditTrail,
    AuditUnavailableError,
    SqlAuditStore,
    capture_audit,
    inclusion_proof,
    root_hash,
    verify_inclusion,
)
from barbacana.logs import configure_logging
from barbacana.storage import Database

from .conftest import Clock, execute, fetch

pytestmark = pytest.mark.postgres

SECRETS = {
    "password": "hunter2-PLAIN",
    "jwt": "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJlLWJ5dGVz",
    "api": "bk_live_a1b2c3d4e5f6",
    "bearer": "opaque-Bearer-0123456789",
    "secretstr": "from-a-SecretStr-42",
    "pem": "MC4CAQAwBQYDK2VwBCIEIHNlY3JldC1rZXktbWF0ZXJpYWwtZm9yLXRlc3Q=",
}


def secret_details() -> dict[str, object]:
    return {
        "username": "bob",
        "password": SECRETS["password"],
        "nested": {"tokens": [SECRETS["jwt"]], "list": [{"api_key": SECRETS["api"]}]},
        "headers": [(b"authorization", f"Bearer {SECRETS['bearer']}".encode())],
        "form": {"note": SecretStr(SECRETS["secretstr"])},
        "log": f"got token {SECRETS['jwt']} from client",
        "key": f"-----BEGIN PRIVATE KEY-----\n{SECRETS['pem']}\n-----END PRIVATE KEY-----",
    }


async def everything_stored(db: Database, tmp_path: Path) -> str:
    """All text of the audit tables (and, on SQLite, the raw database files)."""
    chunks = []
    for table in ("audit_events", "audit_checkpoints", "audit_head"):
        for row in await fetch(db, f"SELECT * FROM {table}"):
            chunks.append(repr(tuple(row)))
    if db.dialect == "sqlite":
        for path in tmp_path.glob("barbacana.db*"):
            chunks.append(path.read_bytes().decode("latin-1"))
    return "\n".join(chunks)


class TestOpen:
    """Opening a trail migrates, creates keys, and binds the key to the trail."""

    async def test_keys_created_private(self, open_trail, tmp_path: Path) -> None:
        """The signing and HMAC keys are files of mode 0600; the public key is beside them."""
        await open_trail()
        audit = tmp_path / "audit"
        for name in ("audit-key.pem", "audit-hmac.key"):
            assert stat.S_IMODE((audit / name).stat().st_mode) == 0o600
        assert (audit / "audit-key.pub.pem").read_bytes().startswith(b"-----BEGIN PUBLIC KEY")

    async def test_private_key_not_in_database(
        self, open_trail, db: Database, tmp_path: Path
    ) -> None:
        """Nothing of the private key or the HMAC key is stored in the database."""
        trail = await open_trail()
        await trail.record("user.created", actor=Actor.system(), outcome="success")
        await trail.checkpoint()
        stored = await everything_stored(db, tmp_path)
        pem = (tmp_path / "audit" / "audit-key.pem").read_text()
        body = "".join(pem.strip().splitlines()[1:-1])
        hmac_line = (tmp_path / "audit" / "audit-hmac.key").read_text().strip().split(":")[1]
        assert body not in stored
        assert hmac_line not in stored

    async def test_reopen_same_key(self, open_trail) -> None:
        """Reopening continues the same trail with the same key."""
        first = await open_trail()
        event = await first.record("user.created", actor=Actor.system(), outcome="success")
        await first.close()
        second = await open_trail()
        again = await second.record("user.created", actor=Actor.system(), outcome="success")
        assert (event.seq, again.seq) == (0, 1)
        assert first.key is not None
        assert second.key is not None
        assert first.key.key_id == second.key.key_id

    async def test_foreign_key_refused(self, open_trail, tmp_path: Path) -> None:
        """A trail never continues under another audit key."""
        trail = await open_trail()
        await trail.close()
        audit = tmp_path / "audit"
        for path in audit.iterdir():
            path.unlink()
        AuditKey.create(audit / "audit-key.pem", audit / "audit-hmac.key")
        with pytest.raises(AuditKeyError, match="signed with audit key"):
            await open_trail()

    async def test_missing_key_not_regenerated(self, open_trail, tmp_path: Path) -> None:
        """Losing the key files of an existing trail is an error, not a silent new key."""
        trail = await open_trail()
        await trail.close()
        (tmp_path / "audit" / "audit-key.pem").unlink()
        (tmp_path / "audit" / "audit-hmac.key").unlink()
        with pytest.raises(AuditKeyError, match="is missing; restore it"):
            await open_trail()

    async def test_key_readable_by_others_refused(self, open_trail, tmp_path: Path) -> None:
        """A key file other users can read is refused, with the fix in the message."""
        trail = await open_trail()
        await trail.close()
        os.chmod(tmp_path / "audit" / "audit-key.pem", 0o644)
        with pytest.raises(AuditKeyError, match="chmod 600"):
            await open_trail()

    async def test_encrypted_key(self, db: Database, tmp_path: Path, clock: Clock) -> None:
        """With a passphrase the key is encrypted at rest, and needed to open the trail."""
        secret = SecretStr("correct horse battery")
        settings = AuditSettings(key_passphrase=secret, log_events=False)
        trail = await AuditTrail.open(db, tmp_path, settings, clock=clock)
        await trail.close()
        assert b"ENCRYPTED" in (tmp_path / "audit" / "audit-key.pem").read_bytes()
        with pytest.raises(AuditKeyError, match="encrypted"):
            await AuditTrail.open(db, tmp_path, AuditSettings(log_events=False), clock=clock)

    async def test_disabled(self, db: Database, tmp_path: Path) -> None:
        """enabled=False stores nothing (no tables, no keys) but still captures."""
        trail = await AuditTrail.open(db, tmp_path, AuditSettings(enabled=False, log_events=False))
        with capture_audit() as events:
            await trail.record("user.created", actor=Actor.system(), outcome="success")
        await trail.close()
        assert [e.action for e in events] == ["user.created"]
        assert not await SqlAuditStore(db).exists()
        assert not (tmp_path / "audit").exists()


class TestRecord:
    """record() is durable, numbered and checkpointed."""

    async def test_sequence_and_durability(self, open_trail, database_url: str) -> None:
        """Each acknowledged event is committed: another connection sees it at once."""
        trail = await open_trail()
        other = Database(database_url)
        try:
            for expected in range(5):
                event = await trail.record(
                    "user.created", actor=Actor.user(f"u{expected}"), outcome="success"
                )
                assert event.seq == expected
                rows = await fetch(other, f"SELECT seq FROM audit_events WHERE seq = {expected}")
                assert len(rows) == 1
        finally:
            await other.dispose()

    async def test_checkpoints_every_n_events(self, open_trail, db: Database) -> None:
        """Checkpoints are signed every N events, and each root is the tree's root there."""
        trail = await open_trail(checkpoint_every_events=8)
        for i in range(20):
            await trail.record("user.created", actor=Actor.user(str(i)), outcome="success")
        store = trail.store
        assert isinstance(store, SqlAuditStore)
        assert trail.key is not None
        checkpoints = await store.checkpoints()
        # The first event is due by time (no checkpoint ever), then every 8 events.
        assert [c.tree_size for c in checkpoints] == [1, 9, 17]
        leaves = await store.leaf_hashes(20)
        for checkpoint in checkpoints:
            checkpoint.verify(trail.key.public_key)
            assert checkpoint.root_hash == root_hash(leaves[: checkpoint.tree_size])

    async def test_checkpoint_after_t_seconds(self, open_trail, clock: Clock) -> None:
        """Once T seconds passed since the last checkpoint, the next append signs one."""
        trail = await open_trail(checkpoint_every_events=1000, checkpoint_every_seconds=5)
        for _ in range(3):
            await trail.record("user.created", actor=Actor.system(), outcome="success")
        clock.advance(6)
        await trail.record("user.created", actor=Actor.system(), outcome="success")
        sizes = [c.tree_size for c in await trail.store.checkpoints()]
        assert sizes == [1, 4]

    async def test_idle_trail_gets_checkpointed(self, open_trail, clock: Clock) -> None:
        """Events left uncovered are signed by the background task once T seconds pass."""
        trail = await open_trail(checkpoint_every_events=1000, checkpoint_every_seconds=0.05)
        for _ in range(3):
            await trail.record("user.created", actor=Actor.system(), outcome="success")
        assert (await trail.store.head()).checkpoint_size == 1
        clock.advance(1)
        for _ in range(300):
            if (await trail.store.head()).checkpoint_size == 3:
                break
            await asyncio.sleep(0.01)
        assert [c.tree_size for c in await trail.store.checkpoints()] == [1, 3]

    async def test_forced_checkpoint_and_close(self, open_trail) -> None:
        """checkpoint() covers everything now; close() leaves nothing uncovered."""
        trail = await open_trail(checkpoint_every_events=1000)
        for _ in range(3):
            await trail.record("user.created", actor=Actor.system(), outcome="success")
        forced = await trail.checkpoint()
        assert forced is not None
        assert forced.tree_size == 3
        assert await trail.checkpoint() is None
        await trail.record_access(actor=Actor.anonymous(), outcome="success")
        store = trail.store
        await trail.close()
        head = await store.head()
        assert head.size == 4
        assert head.checkpoint_size == 4

    async def test_group_commit(self, open_trail, db: Database) -> None:
        """Concurrent record() calls each get a distinct seq and all are stored."""
        trail = await open_trail()
        events = await asyncio.gather(
            *(
                trail.record("order.created", actor=Actor.user(f"u{i}"), outcome="success")
                for i in range(40)
            )
        )
        assert sorted(e.seq for e in events) == list(range(40))
        assert len({e.actor.id for e in events}) == 40
        rows = await fetch(db, "SELECT seq, actor_id FROM audit_events ORDER BY seq")
        assert {r.actor_id: r.seq for r in rows} == {e.actor.id: e.seq for e in events}

    async def test_context_is_stamped(self, open_trail, clock: Clock) -> None:
        """Request id, traceparent and client address come from the request context."""
        trail = await open_trail()
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        tokens = (
            _context.request_id.set("req-42"),
            _context.traceparent.set(parent),
            _context.client_address.set("198.51.100.7"),
        )
        try:
            event = await trail.record("auth.logout", actor=Actor.user("u1"), outcome="success")
        finally:
            _context.request_id.reset(tokens[0])
            _context.traceparent.reset(tokens[1])
            _context.client_address.reset(tokens[2])
        stored, _ = await trail.store.query(after_seq=(event.seq or 0) - 1, limit=1)
        assert stored[0].request_id == "req-42"
        assert stored[0].traceparent == parent
        assert stored[0].actor.address == "198.51.100.7"
        assert stored[0].service == "test"
        assert stored[0].micros == round(clock.now * 1_000_000)

    async def test_unknown_action(self, open_trail) -> None:
        """Actions come from the catalogue (or the service's own list)."""
        trail = await open_trail()
        with pytest.raises(AuditEventError, match="not in the audit catalogue"):
            await trail.record("invoice.paid", actor=Actor.system(), outcome="success")
        custom = AuditTrail(trail.store, actions=CATALOGUE | {"invoice.paid": "paid"})
        event = await custom.record("invoice.paid", actor=Actor.system(), outcome="success")
        assert event.seq is not None


class TestRedaction:
    """Secrets passed to the trail never reach the stored rows or the logs."""

    async def test_secrets_never_stored_or_logged(
        self, open_trail, db: Database, tmp_path: Path
    ) -> None:
        """Known secrets in details, nested values, headers and SecretStr are nowhere."""
        stream = io.StringIO()
        configure_logging("test", stream=stream)
        try:
            trail = await open_trail(log_events=True)
            with capture_audit() as captured:
                await trail.record(
                    "auth.login.failed",
                    actor=Actor.user("bob"),
                    outcome="failure",
                    reason=f"bad token {SECRETS['jwt']}",
                    resource=f"/token?access_token={SECRETS['api']}",
                    details=secret_details(),
                )
                await trail.record_access(
                    actor=Actor.anonymous(), outcome="success", details=secret_details()
                )
            await trail.close()
        finally:
            structlog.reset_defaults()
        stored = await everything_stored(db, tmp_path)
        logs = stream.getvalue()
        assert '"event": "audit"' in logs
        assert "bob" in stored
        for name, secret in SECRETS.items():
            assert secret not in stored, name
            assert secret not in logs, name
            assert all(secret not in json.dumps(e.to_dict()) for e in captured), name

    async def test_blind_index(self, open_trail, db: Database, tmp_path: Path) -> None:
        """Blind-index fields are stored only as keyed HMACs, and can be searched for."""
        trail = await open_trail(blind_index_fields=["email"])
        event = await trail.record(
            "user.created",
            actor=Actor.system(),
            outcome="success",
            details={"user": {"email": "Alice@Example.org"}},
        )
        token = trail.blind_index("alice@example.org ")
        assert event.details["user"]["email"] == token
        assert token.startswith("hmac-sha256:")
        assert "alice@example.org" not in (await everything_stored(db, tmp_path)).lower()


class TestFailure:
    """When the trail cannot be written, on_failure decides."""

    async def test_refuse(self, open_trail, db: Database) -> None:
        """refuse (the default): record() raises a 503 audit error."""
        trail = await open_trail()
        await trail.record("user.created", actor=Actor.system(), outcome="success")
        await execute(db, "DROP TABLE audit_events")
        with pytest.raises(AuditUnavailableError) as caught:
            await trail.record("auth.login.failed", actor=Actor.user("u"), outcome="failure")
        assert caught.value.status == 503
        assert caught.value.code == "audit_unavailable"

    async def test_continue(self, open_trail, db: Database) -> None:
        """continue: record() returns the unstored event and logs the failure."""
        trail = await open_trail(on_failure="continue")
        await execute(db, "DROP TABLE audit_events")
        with structlog.testing.capture_logs() as logs:
            event = await trail.record(
                "auth.login.failed", actor=Actor.user("u"), outcome="failure"
            )
        assert event.seq is None
        assert any(entry["event"] == "audit_write_failed" for entry in logs)


class TestBulk:
    """record_access() is group-committed in the background."""

    async def _count(self, db: Database) -> int:
        return len(await fetch(db, "SELECT seq FROM audit_events"))

    async def _wait_for(self, db: Database, count: int) -> None:
        for _ in range(500):
            if await self._count(db) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{count} events never arrived")

    async def test_batch_size(self, open_trail, db: Database) -> None:
        """A full batch is committed without waiting for the interval."""
        trail = await open_trail(batch_size=5, batch_interval_ms=60_000)
        for i in range(5):
            await trail.record_access(actor=Actor.user(str(i)), outcome="success")
        await self._wait_for(db, 5)

    async def test_batch_interval(self, open_trail, db: Database) -> None:
        """A lone event is committed after the interval."""
        trail = await open_trail(batch_size=1000, batch_interval_ms=20)
        await trail.record_access(actor=Actor.anonymous(), outcome="failure")
        await self._wait_for(db, 1)

    async def test_close_flushes(self, open_trail, db: Database) -> None:
        """Events still queued are written by close()."""
        trail = await open_trail(batch_size=1000, batch_interval_ms=60_000)
        for _ in range(7):
            await trail.record_access(actor=Actor.anonymous(), outcome="success")
        assert await self._count(db) == 0
        await trail.close()
        assert await self._count(db) == 7


class TestQuery:
    """The query API behind GET /audit/events."""

    async def _fill(self, trail: AuditTrail, clock: Clock) -> None:
        plan = [
            ("auth.login.succeeded", "alice", "success"),
            ("auth.login.failed", "bob", "failure"),
            ("access.denied", "bob", "denied"),
            ("order.created", "alice", "success"),
            ("auth.logout", "alice", "success"),
        ]
        for action, user, outcome in plan * 3:
            await trail.record(action, actor=Actor.user(user), outcome=outcome)
            clock.advance(10)

    async def test_filters(self, open_trail, clock: Clock) -> None:
        """Actor, action, action prefix, outcome and time range filter the events."""
        start = clock.now
        trail = await open_trail()
        await self._fill(trail, clock)
        store = trail.store
        events, _ = await store.query(actor="bob", limit=100)
        assert {e.actor.id for e in events} == {"bob"}
        assert len(events) == 6
        events, _ = await store.query(action="auth.", limit=100)
        assert len(events) == 9
        events, _ = await store.query(action="auth.login.failed", outcome="failure")
        assert len(events) == 3
        events, _ = await store.query(outcome="denied", actor="alice")
        assert events == []
        since = datetime.fromtimestamp(start + 50, UTC)
        events, _ = await store.query(since=since, until=start + 100)
        assert [e.seq for e in events] == [5, 6, 7, 8, 9]

    async def test_pagination(self, open_trail, clock: Clock) -> None:
        """Cursor pages cover every match once, oldest or newest first."""
        trail = await open_trail()
        await self._fill(trail, clock)
        seen: list[int | None] = []
        cursor = None
        while True:
            page, cursor = await trail.store.query(actor="alice", after_seq=cursor, limit=4)
            seen.extend(e.seq for e in page)
            if cursor is None:
                break
        assert seen == [0, 3, 4, 5, 8, 9, 10, 13, 14]
        newest: list[int | None] = []
        cursor = None
        while True:
            page, cursor = await trail.store.query(
                actor="alice", before_seq=cursor, limit=4, newest_first=True
            )
            newest.extend(e.seq for e in page)
            if cursor is None:
                break
        assert newest == seen[::-1]

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"limit": 0},
            {"limit": 1001},
            {"after_seq": "3"},
            {"since": datetime(2025, 1, 1)},  # naive on purpose
            {"until": "yesterday"},
        ],
    )
    async def test_bad_parameters(self, open_trail, kwargs: dict[str, object]) -> None:
        """Bad limits, cursors and naive datetimes are a 400 audit error."""
        trail = await open_trail()
        with pytest.raises(AuditQueryError) as caught:
            await trail.store.query(**kwargs)
        assert caught.value.status == 400


class TestAppendOnly:
    """The database itself refuses to change the trail through normal SQL."""

    async def _trail_with_events(self, open_trail) -> AuditTrail:
        trail = await open_trail()
        for _ in range(3):
            await trail.record("user.created", actor=Actor.system(), outcome="success")
        await trail.checkpoint()
        return trail

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE audit_events SET action = 'user.disabled' WHERE seq = 1",
            "DELETE FROM audit_events WHERE seq = 2",
            "DELETE FROM audit_events",
            "UPDATE audit_checkpoints SET key_id = 'x'",
            "DELETE FROM audit_checkpoints",
            "DELETE FROM audit_head",
            "UPDATE audit_head SET size = 1",
            "INSERT INTO audit_events (seq, ts_us, action, outcome, actor_type, body, leaf_hash,"
            " mac) VALUES (7, 0, 'user.created', 'success', 'system', '{}', :h, :h)",
        ],
    )
    async def test_refused(self, open_trail, db: Database, statement: str) -> None:
        """UPDATE, DELETE, a shrinking head and an out-of-order INSERT all fail."""
        await self._trail_with_events(open_trail)
        with pytest.raises(DBAPIError):
            await execute(db, statement, params={"h": b"\x00" * 32})
        assert len(await fetch(db, "SELECT seq FROM audit_events")) == 3

    async def test_truncate_refused_on_postgresql(self, open_trail, db: Database) -> None:
        """PostgreSQL's TRUNCATE bypasses row triggers; a statement trigger refuses it."""
        if db.dialect != "postgresql":
            pytest.skip("SQLite has no TRUNCATE")
        await self._trail_with_events(open_trail)
        for table in ("audit_events", "audit_checkpoints", "audit_head"):
            with pytest.raises(DBAPIError, match="append-only"):
                await execute(db, f"TRUNCATE {table}")


class TestMemory:
    """The in-memory trail behaves like the stored one (for users' tests)."""

    async def test_in_memory(self) -> None:
        """Events are numbered, checkpointed, queryable, and provable."""
        async with AuditTrail.in_memory(AuditSettings(log_events=False)) as trail:
            for i in range(6):
                await trail.record("user.created", actor=Actor.user(str(i)), outcome="success")
            checkpoint = await trail.checkpoint()
            assert checkpoint is not None
            leaves = await trail.store.leaf_hashes(6)
            proof = inclusion_proof(3, leaves, 6)
            assert verify_inclusion(3, 6, leaves[3], proof, checkpoint.root_hash)
            page, _ = await trail.store.query(actor="3")
            assert [e.seq for e in page] == [3]


async def test_resource_kinds_survive_and_what_follows_is_redacted(open_trail) -> None:
    """``apikey:`` or ``secret:`` names a kind; a credential after it is still cut out."""
    trail = await open_trail()
    kept = await trail.record(
        "secret.rotated", actor=Actor.system(), outcome="success", resource="secret:file://db"
    )
    cut = await trail.record(
        "secret.rotated",
        actor=Actor.system(),
        outcome="success",
        resource="apikey:brb_0123456789ab_Zx9-Kq_Lm2Np4Rs6",
    )
    assert kept.resource == "secret:file://db"
    assert cut.resource == "apikey:brb_0123456789ab_[REDACTED]"


async def test_query_text_columns_match(open_trail, db: Database) -> None:
    """The query columns are the hashed event's fields (what verify checks)."""
    trail = await open_trail()
    await trail.record(
        "apikey.created", actor=Actor.api_key("key-7"), outcome="success", resource="apikey:key-7"
    )
    async with db.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT action, actor_type, actor_id, resource, body FROM audit_events")
            )
        ).one()
    body = json.loads(row.body)
    assert row.resource == "apikey:key-7"  # a resource kind is not a secret name
    assert (row.action, row.actor_type, row.actor_id, row.resource) == (
        body["action"],
        body["actor"]["type"],
        body["actor"]["id"],
        body["resource"],
    )
