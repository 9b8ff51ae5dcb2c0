"""AuditMiddleware: every HTTP request leaves an access record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request

from barbacana.audit import (
    AUDIT_REASON_KEY,
    Actor,
    AuditMiddleware,
    AuditSettings,
    AuditTrail,
    capture_audit,
)
from barbacana.storage import Database

from .conftest import execute

pytestmark = pytest.mark.postgres


def who(request: Request) -> None:
    user = request.headers.get("x-test-user")
    if user:
        request.state.principal = user


def identify(scope: dict[str, Any]) -> Actor | None:
    principal = scope.get("state", {}).get("principal")
    return Actor.user(principal) if principal else None


def build_app(trail: AuditTrail) -> FastAPI:
    app = FastAPI(dependencies=[Depends(who)])

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/private")
    async def private() -> None:
        raise HTTPException(401, "who are you", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/admin")
    async def admin(request: Request) -> None:
        request.state.__setattr__(AUDIT_REASON_KEY, "missing_scope")
        raise HTTPException(403, "secret admin detail")

    @app.get("/limited")
    async def limited() -> None:
        raise HTTPException(429, "slow down")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("handler crashed")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(AuditMiddleware, trail=trail, identify=identify, exclude_paths=["/health"])
    return app


@pytest.fixture
async def memory_trail() -> AsyncIterator[AuditTrail]:
    trail = AuditTrail.in_memory(AuditSettings(log_events=False, batch_interval_ms=10_000))
    yield trail
    await trail.close()


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(
        app=app, raise_app_exceptions=False, client=("192.0.2.10", 5555)
    )
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


class TestRecords:
    async def test_success_is_a_bulk_access_event(self, memory_trail: AuditTrail) -> None:
        """A 200 is recorded with the route template, never the raw path or query."""
        async with client(build_app(memory_trail)) as http:
            with capture_audit() as events:
                response = await http.get(
                    "/items/42?access_token=abc123456", headers={"x-test-user": "alice"}
                )
        assert response.status_code == 200
        (event,) = events
        assert event.action == "access.request"
        assert event.outcome == "success"
        assert event.resource == "GET /items/{item_id}"
        assert event.details == {"method": "GET", "status": 200, "route": "/items/{item_id}"}
        assert event.actor == Actor("user", "alice", None, "192.0.2.10")
        assert (await memory_trail.store.head()).size == 0  # bulk: not yet committed
        await memory_trail.flush()
        stored, _ = await memory_trail.store.query()
        assert [e.resource for e in stored] == ["GET /items/{item_id}"]

    @pytest.mark.parametrize(
        ("path", "action", "reason"),
        [
            ("/private", "access.denied", "unauthenticated"),
            ("/admin", "access.denied", "missing_scope"),
            ("/limited", "ratelimit.exceeded", "rate_limited"),
        ],
    )
    async def test_refusals_are_durable(
        self, memory_trail: AuditTrail, path: str, action: str, reason: str
    ) -> None:
        """401, 403 and 429 are committed before the response goes out."""
        async with client(build_app(memory_trail)) as http:
            response = await http.get(path)
        stored, _ = await memory_trail.store.query()
        assert len(stored) == 1
        assert stored[0].action == action
        assert stored[0].outcome == "denied"
        assert stored[0].reason == reason
        assert stored[0].details["status"] == response.status_code
        assert stored[0].actor == Actor.anonymous(address="192.0.2.10")

    async def test_crash_is_recorded(self, memory_trail: AuditTrail) -> None:
        """An exception in the app is recorded as a failed request with status 500."""
        async with client(build_app(memory_trail)) as http:
            with capture_audit() as events:
                response = await http.get("/boom")
        assert response.status_code == 500
        assert [(e.outcome, e.details["status"]) for e in events] == [("failure", 500)]

    async def test_excluded_and_unrouted(self, memory_trail: AuditTrail) -> None:
        """Excluded paths leave nothing; an unknown path is recorded by its (capped) raw path."""
        async with client(build_app(memory_trail)) as http:
            with capture_audit() as events:
                await http.get("/health")
                await http.get("/nope/" + "x" * 400)
        assert len(events) == 1
        assert events[0].details["route"] is None
        assert events[0].resource is not None
        assert events[0].resource.startswith("GET /nope/x")
        assert len(events[0].resource) < 300

    async def test_other_scopes_pass_through(self, memory_trail: AuditTrail) -> None:
        """Lifespan and WebSocket scopes are not audited here."""
        seen: list[str] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen.append(scope["type"])

        middleware = AuditMiddleware(app, memory_trail)
        with capture_audit() as events:
            await middleware({"type": "lifespan"}, None, None)
            await middleware({"type": "websocket", "path": "/ws"}, None, None)
        assert seen == ["lifespan", "websocket"]
        assert events == []


class TestTrailDown:
    async def test_refusal_becomes_503(self, open_trail, db: Database) -> None:
        """When a 403 cannot be recorded, the client gets a 503 problem, not the 403 body."""
        trail = await open_trail()
        await execute(db, "DROP TABLE audit_events")
        async with client(build_app(trail)) as http:
            response = await http.get("/admin")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "audit_unavailable"
        assert "secret admin detail" not in response.text

    async def test_continue_lets_the_response_through(self, open_trail, db: Database) -> None:
        """With on_failure=continue the original response stands."""
        trail = await open_trail(on_failure="continue")
        await execute(db, "DROP TABLE audit_events")
        async with client(build_app(trail)) as http:
            response = await http.get("/admin")
        assert response.status_code == 403
