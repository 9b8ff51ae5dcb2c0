"""Events the store cannot hold: never a hang, never the loss of the rest of their batch.

PostgreSQL refuses NUL in ``text``; no store can encode a lone UTF-16 surrogate
as UTF-8. The default processors replace both by U+FFFD, so such an event is
kept (it is usually the record of hostile input). A processor chain that lets
one through gets a refusal for that event alone, at once, and every other
event of the same group commit is stored. Each wait below is bounded: a
hang fails the test instead of stalling it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import structlog
from fastapi import FastAPI, Request
from typer.testing import CliRunner

from barbacana.audit import (
    Actor,
    AuditEvent,
    AuditEventRefusedError,
    AuditKey,
    AuditMiddleware,
    AuditTrail,
    SqlAuditStore,
    Stamp,
    migrate,
)
from barbacana.cli.audit import app as audit_cli
from barbacana.storage import Database
from barbacana.web import secure

from ..conftest import ServerThread, make_settings
from .conftest import Clock, cli, cli_args, settings

pytestmark = pytest.mark.postgres

T = TypeVar("T")

#: Seconds a record, flush or request may take before the test calls it a hang.
#: Generous on purpose: it only turns a hang into a failure.
BOUND = 30.0
REPLACED = "\ufffd"
SURROGATE = "\ud800"


async def bounded(awaitable: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(awaitable, BOUND)
    except TimeoutError:
        pytest.fail(f"hung: no answer within {BOUND} s")


async def verified(db: Database, database_url: str, tmp_path: Path) -> str:
    """``barbacana audit verify`` on the trail: it must pass."""
    result = await bounded(cli("verify", *cli_args(db, database_url, tmp_path)))
    assert result.exit_code == 0, result.output
    return result.output


async def raw_trail(db: Database, data_dir: Path, clock: Any, **overrides: Any) -> AuditTrail:
    """A trail whose processors only stamp: nothing makes values storable (a user's chain)."""
    await migrate(db)
    audit = data_dir / "audit"
    key = AuditKey.load_or_create(audit / "audit-key.pem", audit / "audit-hmac.key")
    store = SqlAuditStore(db, key)
    await store.bind_key()
    return AuditTrail(
        store, settings=settings(**overrides), key=key, processors=[Stamp(clock, "test")]
    )


@pytest.fixture
async def unsanitised(db: Database, tmp_path: Path, clock: Clock) -> AsyncIterator[AuditTrail]:
    trail = await raw_trail(db, tmp_path, clock, batch_interval_ms=60_000)
    yield trail
    with contextlib.suppress(AuditEventRefusedError):
        await trail.close()


def hostile(db: Database) -> list[tuple[str, dict[str, Any]]]:
    """Unstorable fields, and whether this database refuses them as they are."""
    cases: list[tuple[str, dict[str, Any]]] = [
        ("surrogate in details", {"details": {"note": f"a{SURROGATE}b"}}),
        ("surrogate in a key", {"details": {f"k{SURROGATE}": 1}}),
    ]
    if db.dialect == "postgresql":
        # SQLite stores NUL; PostgreSQL refuses it in the text columns.
        cases += [
            ("NUL in resource", {"resource": "GET /a\x00b"}),
            ("NUL in actor id", {"actor": Actor.user("u\x00")}),
        ]
    return cases


class TestKeptReplaced:
    """The default chain keeps such events, with U+FFFD where the character was."""

    async def test_group_commit_with_hostile_events(
        self, open_trail, db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """NUL and surrogates anywhere: every event of the batch is stored, promptly."""
        trail = await open_trail()
        hostile_fields: list[dict[str, Any]] = [
            {"resource": "GET /a\x00b"},
            {"actor": Actor.user("u\x00", name=f"n{SURROGATE}")},
            {"reason": "bad\x00reason"},
            {"details": {"note\x00": f"x\x00y{SURROGATE}", "list": ["\x00"]}},
        ]

        async def one(index: int) -> AuditEvent:
            fields: dict[str, Any] = {"actor": Actor.system()}
            if index % 5 == 0:
                fields.update(hostile_fields[(index // 5) % len(hostile_fields)])
            return await trail.record("user.created", outcome="success", **fields)

        stored = await bounded(asyncio.gather(*(one(i) for i in range(20))))
        assert sorted(e.seq for e in stored) == list(range(20))
        page, _ = await trail.store.query(limit=100)
        by_seq = {e.seq: e for e in page}
        assert by_seq[stored[0].seq].resource == f"GET /a{REPLACED}b"
        assert by_seq[stored[5].seq].actor.id == f"u{REPLACED}"
        assert by_seq[stored[5].seq].actor.name == f"n{REPLACED}"
        assert by_seq[stored[10].seq].reason == f"bad{REPLACED}reason"
        assert by_seq[stored[15].seq].details == {
            f"note{REPLACED}": f"x{REPLACED}y{REPLACED}",
            "list": [REPLACED],
        }
        await trail.close()
        assert "OK" in await verified(db, database_url, tmp_path)

    async def test_bulk_event_with_nul_path(
        self, open_trail, db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """An access record of a path holding NUL is stored with the others."""
        trail = await open_trail(batch_interval_ms=60_000)
        await trail.record_access(actor=Actor.anonymous(), outcome="failure", resource="GET /\x00")
        for _ in range(3):
            await trail.record_access(actor=Actor.anonymous(), outcome="success", resource="GET /")
        await bounded(trail.flush())
        page, _ = await trail.store.query(action="access.request")
        assert [e.resource for e in page] == [f"GET /{REPLACED}", "GET /", "GET /", "GET /"]
        await trail.close()
        await verified(db, database_url, tmp_path)


class TestRefusedAlone:
    """A chain that lets an unstorable value through: that event fails, alone and at once."""

    async def test_durable_batch(
        self, unsanitised: AuditTrail, db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """Each refused record() raises AuditEventRefusedError; the others are stored in order."""
        cases = hostile(db)
        bad_at = {3 + 4 * i: fields for i, (_, fields) in enumerate(cases)}

        async def one(index: int) -> AuditEvent | BaseException:
            fields = {"actor": Actor.system(), "resource": f"n:{index}"}
            fields.update(bad_at.get(index, {}))
            try:
                return await unsanitised.record("user.created", outcome="success", **fields)
            except AuditEventRefusedError as exc:
                return exc

        outcomes = await bounded(asyncio.gather(*(one(i) for i in range(20))))
        refused = [i for i, o in enumerate(outcomes) if isinstance(o, BaseException)]
        assert refused == sorted(bad_at)
        for index in refused:
            error = outcomes[index]
            assert isinstance(error, AuditEventRefusedError)
            assert (error.status, error.code) == (500, "audit_event_refused")
        good = [o for o in outcomes if isinstance(o, AuditEvent)]
        assert [e.seq for e in good] == list(range(len(good)))
        page, _ = await unsanitised.store.query(limit=100)
        assert [e.resource for e in page] == [f"n:{i}" for i in range(20) if i not in bad_at]
        await unsanitised.close()
        await verified(db, database_url, tmp_path)

    async def test_continue_returns_the_unstored_event(
        self, db: Database, tmp_path: Path, clock: Clock
    ) -> None:
        """on_failure=continue: the refused event comes back unnumbered and is logged."""
        trail = await raw_trail(db, tmp_path, clock, on_failure="continue")
        try:
            with structlog.testing.capture_logs() as logs:
                event = await bounded(
                    trail.record(
                        "user.created",
                        actor=Actor.system(),
                        outcome="success",
                        details={"x": SURROGATE},
                    )
                )
            assert event.seq is None
            assert any(
                entry["event"] == "audit_write_failed"
                and entry["error"] == "AuditEventRefusedError"
                for entry in logs
            )
            after = await bounded(
                trail.record("user.created", actor=Actor.system(), outcome="success")
            )
            assert after.seq == 0
        finally:
            await trail.close()

    async def test_bulk_event_dropped_others_kept(
        self, unsanitised: AuditTrail, db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """A refused access record is logged and dropped; the queue keeps moving."""
        for _, fields in hostile(db):
            await unsanitised.record_access(
                outcome="failure", **{"actor": Actor.anonymous(), **fields}
            )
        for i in range(3):
            await unsanitised.record_access(
                actor=Actor.anonymous(), outcome="success", resource=f"GET /{i}"
            )
        with structlog.testing.capture_logs() as logs:
            await bounded(unsanitised.flush())
        refused = [entry for entry in logs if entry["event"] == "audit_event_refused"]
        assert len(refused) == len(hostile(db))
        assert all(entry["action"] == "access.request" for entry in refused)
        page, _ = await unsanitised.store.query()
        assert [e.resource for e in page] == ["GET /0", "GET /1", "GET /2"]
        # Later events still go through, and closing flushes without an error.
        await unsanitised.record_access(actor=Actor.anonymous(), outcome="success", resource="z")
        await bounded(unsanitised.close())
        page, _ = await unsanitised.store.query()
        assert [e.resource for e in page][-1] == "z"
        await verified(db, database_url, tmp_path)


# -- over HTTP ------------------------------------------------------------------------------


class _LateAudit:
    """AuditMiddleware over a trail that the lifespan opens (as the reference services do)."""

    def __init__(self, app: Any, holder: dict[str, AuditTrail]) -> None:
        self.app = app
        self.holder = holder

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        trail = self.holder.get("trail")
        if trail is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await AuditMiddleware(self.app, trail)(scope, receive, send)


class _Locked:
    """Answers 401 before any route is chosen, so the audit record holds the raw path."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/locked"):
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


def notes_app(
    database_url: str, data_dir: Path, open_: Callable[[Database], Awaitable[AuditTrail]]
) -> FastAPI:
    """A service whose endpoint records a durable event with the client's JSON as details."""
    holder: dict[str, AuditTrail] = {}
    db = Database(database_url)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        holder["trail"] = await open_(db)
        try:
            yield
        finally:
            with contextlib.suppress(AuditEventRefusedError):
                await holder["trail"].close()
            await db.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/notes")
    async def note(request: Request) -> dict[str, bool]:
        body = await request.json()
        await holder["trail"].record(
            "user.created", actor=Actor.system(), outcome="success", details=body
        )
        return {"ok": True}

    app.add_middleware(_Locked)
    app.add_middleware(_LateAudit, holder=holder)
    return secure(app, make_settings(data_dir))


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[httpx.Client]:
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=BOUND) as client:
        yield client


def call(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        pytest.fail(f"{method} {url} hung: no answer within {BOUND} s")


def verify_sync(database_url: str, data_dir: Path) -> None:
    args = ["--data-dir", str(data_dir)]
    if not database_url.startswith("sqlite"):
        args = ["--database-url", database_url, *args]
    result = CliRunner().invoke(audit_cli, ["verify", *args])
    assert result.exit_code == 0, result.output


#: JSON text with an escaped lone surrogate: valid JSON, not encodable as UTF-8.
SURROGATE_JSON = '{"note": "a\\ud800b"}'


class TestOverHttp:
    """A real server: hostile input is answered at once, and the trail verifies after."""

    def test_hostile_input_is_recorded(self, database_url: str, tmp_path: Path) -> None:
        """NUL in the path and a surrogate in the body: normal answers, every event kept."""

        async def open_(db: Database) -> AuditTrail:
            return await AuditTrail.open(db, tmp_path, settings(batch_interval_ms=10))

        with serving(notes_app(database_url, tmp_path, open_)) as client:
            posted = call(
                client,
                "POST",
                "/notes",
                content=SURROGATE_JSON,
                headers={"content-type": "application/json"},
            )
            assert posted.status_code == 200, posted.text
            assert call(client, "GET", "/locked/a%00b").status_code == 401
            assert call(client, "GET", "/nope%00").status_code == 404
        verify_sync(database_url, tmp_path)

        async def stored() -> list[AuditEvent]:
            db = Database(database_url)
            try:
                page, _ = await SqlAuditStore(db).query(limit=100)
                return page
            finally:
                await db.dispose()

        events = asyncio.run(stored())
        resources = {e.resource for e in events}
        assert f"GET /locked/a{REPLACED}b" in resources
        assert f"GET /nope{REPLACED}" in resources
        assert any(e.details.get("note") == f"a{REPLACED}b" for e in events)

    def test_refused_event_is_a_prompt_problem(self, database_url: str, tmp_path: Path) -> None:
        """An unstorable event is a 500 problem+json for its request only; others go on."""

        async def open_(db: Database) -> AuditTrail:
            return await raw_trail(db, tmp_path, Clock(), batch_interval_ms=10)

        with serving(notes_app(database_url, tmp_path, open_)) as client:
            answers: dict[int, httpx.Response] = {}

            def post(index: int) -> None:
                body = SURROGATE_JSON if index == 4 else json.dumps({"note": index})
                answers[index] = call(
                    client,
                    "POST",
                    "/notes",
                    content=body,
                    headers={"content-type": "application/json"},
                )

            threads = [threading.Thread(target=post, args=(i,)) for i in range(10)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            refused = answers.pop(4)
            assert refused.status_code == 500
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "audit_event_refused"
            assert SURROGATE not in refused.text and "ud800" not in refused.text
            assert {r.status_code for r in answers.values()} == {200}
            locked = call(client, "GET", "/locked/a%00b")
            if database_url.startswith("sqlite"):
                assert locked.status_code == 401  # SQLite holds NUL
            else:
                # The durable record of the 401 is refused: the client is told, at once.
                assert locked.status_code == 500
                assert locked.headers["content-type"] == "application/problem+json"
                assert locked.json()["code"] == "audit_event_refused"
                assert "retry-after" not in locked.headers
        verify_sync(database_url, tmp_path)
