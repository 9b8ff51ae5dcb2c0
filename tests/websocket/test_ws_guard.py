"""WebSocketGuard in a service of one's own: the library without the chat service.

A minimal echo service uses only public names (guard, ticket store, frame
parser, revocation state, audit trail), as a team's own service would, and is
driven by the ``websockets`` client over a real socket.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import pytest
from fastapi import FastAPI, WebSocket
from pydantic import Field
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from barbacana.audit import AuditTrail, capture_audit
from barbacana.settings import CorsSettings
from barbacana.tokens import RevocationState
from barbacana.web.cors import CorsPolicy
from barbacana.websocket import (
    TICKET_PROTOCOL_PREFIX,
    Frame,
    FrameParser,
    MemoryConnectionCounter,
    MemoryTicketStore,
    PingFrame,
    PongFrame,
    TicketRecord,
    WebSocketGuard,
    WebSocketSettings,
)
from tests.websocket.helpers import APP, ChatServer

WS = WebSocketSettings(max_connections_per_user=2)


class EchoIn(Frame):
    type: Literal["echo"]
    text: str = Field(max_length=100)


class EchoOut(Frame):
    type: Literal["echoed"] = "echoed"
    text: str


Frames = Annotated[EchoIn | PingFrame | PongFrame, Field(discriminator="type")]


class EchoService:
    def __init__(self) -> None:
        self.store = MemoryTicketStore()
        self.revocations = RevocationState()
        self.counter = MemoryConnectionCounter()
        self.trail: AuditTrail | None = None

        async def record(action: str, **fields: Any) -> None:
            if self.trail is not None:
                await self.trail.record(action, **fields)

        self.guard: WebSocketGuard[Any] = WebSocketGuard(
            WS,
            origins=CorsPolicy.from_settings(CorsSettings(origins=[APP])),
            tickets=self.store,
            frames=FrameParser(Frames),
            revocations=self.revocations,
            counter=self.counter,
            audit=record,
        )

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            self.trail = AuditTrail.in_memory(service="echo")
            await self.guard.start()
            yield
            await self.guard.stop()
            await self.trail.close()

        self.app = FastAPI(lifespan=lifespan)

        async def allow(record: TicketRecord) -> bool:
            return "user" in record.roles

        @self.app.websocket("/echo/{topic}")
        async def echo(websocket: WebSocket, topic: str) -> None:
            connection = await self.guard.admit(websocket, resource=topic, authorize=allow)
            if connection is None:
                return
            async with connection:
                async for frame in connection.frames():
                    connection.send(EchoOut(text=frame.text))

    def ticket(self, jti: str, *, roles: tuple[str, ...] = ("user",), exp_in: float = 600) -> str:
        now = time.time()
        record = TicketRecord(
            sub="u1",
            username="una",
            sid="s1",
            jti=jti,
            iat=now - 1,
            exp=now + exp_in,
            roles=roles,
            scopes=("chat:use",),
            origin=APP,
            expires_at=now + 30,
        )
        return asyncio.run(self.store.issue(record))


@pytest.fixture(scope="module")
def service() -> Iterator[tuple[EchoService, str]]:
    echo = EchoService()
    with ChatServer(echo.app, WS) as server:
        yield echo, server.url.replace("http://", "ws://")


async def open_echo(url: str, ticket: str) -> Any:
    return await connect(
        f"{url}/echo/news",
        origin=APP,
        subprotocols=[TICKET_PROTOCOL_PREFIX + ticket],  # type: ignore[arg-type,list-item]
    )


async def test_echo_and_audit(service: tuple[EchoService, str]) -> None:
    """Accepted, echoed through models, refused without a role; all in the audit trail."""
    echo, url = service
    with capture_audit() as events:
        ticket = await asyncio.to_thread(echo.ticket, "j-echo")
        connection = await open_echo(url, ticket)
        await connection.send(json.dumps({"type": "echo", "text": "hi"}))
        assert json.loads(await connection.recv()) == {"type": "echoed", "text": "hi"}
        await connection.close()
        refused = await asyncio.to_thread(echo.ticket, "j-guest", roles=("guest",))
        with pytest.raises(InvalidStatus) as caught:
            await open_echo(url, refused)
        assert caught.value.response.status_code == 403
        for _ in range(100):
            if len(events) >= 3:
                break
            await asyncio.sleep(0.02)
    by_action = {e.action: e for e in events}
    assert sorted((e.action, e.outcome) for e in events) == [
        ("ws.closed", "success"),
        ("ws.connected", "success"),
        ("ws.refused", "denied"),
    ]
    assert by_action["ws.refused"].reason == "ws_room_forbidden"
    assert by_action["ws.connected"].actor.name == "una"


async def test_revoked_token_closes_the_socket(service: tuple[EchoService, str]) -> None:
    """A jti revoked in the RevocationState closes its socket (4401), not the others."""
    echo, url = service
    doomed = await open_echo(url, await asyncio.to_thread(echo.ticket, "j-doomed"))
    other = await open_echo(url, await asyncio.to_thread(echo.ticket, "j-other"))
    echo.revocations.revoke_jti("j-doomed")
    with pytest.raises(ConnectionClosed) as caught:
        await asyncio.wait_for(doomed.recv(), 5)
    assert caught.value.rcvd is not None
    assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (4401, "session revoked")
    await other.send(json.dumps({"type": "echo", "text": "still"}))
    assert json.loads(await other.recv())["text"] == "still"
    await other.close()


async def test_token_expiry_closes_the_socket(service: tuple[EchoService, str]) -> None:
    """A socket does not outlive its token: 4401 when ``exp`` passes."""
    echo, url = service
    connection = await open_echo(url, await asyncio.to_thread(echo.ticket, "j-short", exp_in=1.0))
    with pytest.raises(ConnectionClosed) as caught:
        await asyncio.wait_for(connection.recv(), 5)
    assert caught.value.rcvd is not None
    assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (4401, "token expired")


async def test_close_where_and_cap(service: tuple[EchoService, str]) -> None:
    """The cap counts per user; close_where closes exactly the selected sockets."""
    echo, url = service
    first = await open_echo(url, await asyncio.to_thread(echo.ticket, "j-a"))
    second = await open_echo(url, await asyncio.to_thread(echo.ticket, "j-b"))
    with pytest.raises(InvalidStatus) as caught:
        await open_echo(url, await asyncio.to_thread(echo.ticket, "j-c"))
    assert caught.value.response.status_code == 429
    closed = echo.guard.close_where(lambda c: c.record.jti == "j-a", 4403, "moderated")
    assert closed == 1
    with pytest.raises(ConnectionClosed) as gone:
        await asyncio.wait_for(first.recv(), 5)
    assert gone.value.rcvd is not None
    assert gone.value.rcvd.code == 4403
    await second.close()


def test_wildcard_origin_refused() -> None:
    """A CORS wildcard cannot serve as the WebSocket Origin allow-list."""
    from barbacana.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="explicit Origin allow-list"):
        WebSocketGuard(
            WS,
            origins=CorsPolicy.from_settings(CorsSettings(origins=["*"])),
            tickets=MemoryTicketStore(),
            frames=FrameParser(Frames),
        )
