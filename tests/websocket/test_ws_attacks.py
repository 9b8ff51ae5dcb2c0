"""Attacks on the chat service's WebSocket, with a real client over real sockets.

One auth and one chat service (SQLite) serve the whole module; limits are
small so that each attack trips them quickly. Every refusal must happen at
the handshake (an HTTP status, never an accepted socket), and every abuse of
an open socket must close it with the documented code.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from barbacana.services.chat._models import CHAT_PROTOCOL
from barbacana.websocket import TICKET_PROTOCOL_PREFIX, WebSocketSettings, new_ticket
from tests.websocket.helpers import APP, EVIL, OTHER, ChatSystem, chat_system, wait_for

WS = WebSocketSettings(
    ticket_ttl=timedelta(seconds=2),
    max_frame_bytes=4096,
    message_rate=5.0,
    message_burst=10,
    max_connections_per_user=3,
    ping_interval=timedelta(seconds=1),
    idle_timeout=timedelta(seconds=2),
    max_bad_frames=2,
)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatSystem]:
    tmp = tmp_path_factory.mktemp("ws-attacks")
    with chat_system(tmp, f"sqlite+aiosqlite:///{tmp / 'barbacana.db'}", WS) as running:
        for name in ("alice", "bob", "carol", "dave"):
            running.add_user(name)
        yield running


def refusals(system: ChatSystem, code: str) -> int:
    return len(system.audit.find("ws.refused", reason=code))


class TestHandshake:
    async def test_no_ticket(self, system: ChatSystem) -> None:
        """No ticket: 403 before the upgrade, and a ws.refused audit event."""
        before = refusals(system, "ws_ticket_missing")
        status, body = await system.refused("general", None, origin=APP)
        assert (status, body["code"]) == (403, "ws_ticket_missing")
        wait_for(lambda: refusals(system, "ws_ticket_missing") == before + 1)

    @pytest.mark.parametrize("ticket", [new_ticket(), "x" * 43, "short", "a" * 100, "%00" * 20])
    async def test_bad_ticket(self, system: ChatSystem, ticket: str) -> None:
        """Unknown or malformed tickets are refused, in the subprotocol or the query."""
        status, body = await system.refused("general", ticket, origin=APP, via="query")
        assert (status, body["code"]) == (403, "ws_ticket_invalid")
        if ticket.isalnum():
            status, body = await system.refused("general", ticket, origin=APP)
            assert (status, body["code"]) == (403, "ws_ticket_invalid")

    @pytest.mark.slow
    async def test_expired_ticket(self, system: ChatSystem) -> None:
        """A ticket presented after its lifetime (2 s here) is refused."""
        ticket = system.ticket(system.token("alice"), origin=APP)
        await asyncio.sleep(WS.ticket_ttl.total_seconds() + 0.2)
        status, body = await system.refused("general", ticket, origin=APP)
        assert (status, body["code"]) == (403, "ws_ticket_invalid")

    async def test_reused_ticket(self, system: ChatSystem) -> None:
        """A ticket opens one socket; presenting it again is refused."""
        ticket = system.ticket(system.token("alice"), origin=APP)
        first = await system.open("general", ticket, origin=APP)
        status, body = await system.refused("general", ticket, origin=APP)
        assert (status, body["code"]) == (403, "ws_ticket_invalid")
        await first.close()

    async def test_racing_reuse(self, system: ChatSystem) -> None:
        """Ten handshakes racing with one ticket: exactly one is accepted."""
        ticket = system.ticket(system.token("bob"), origin=APP)
        results = await asyncio.gather(
            *(system.open("general", ticket, origin=APP) for _ in range(10)),
            return_exceptions=True,
        )
        accepted = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, InvalidStatus)]
        assert (len(accepted), len(refused)) == (1, 9)
        await accepted[0].close()

    async def test_ticket_from_another_origin(self, system: ChatSystem) -> None:
        """A ticket is good only from the origin (or absence of one) it was issued to."""
        token = system.token("alice")
        cases = [(APP, OTHER), (None, APP), (APP, None)]
        for issued_to, presented_from in cases:
            ticket = system.ticket(token, origin=issued_to)
            status, body = await system.refused("general", ticket, origin=presented_from)
            assert (status, body["code"]) == (403, "ws_ticket_origin_mismatch"), (
                issued_to,
                presented_from,
            )
        # A program with a ticket issued without an Origin connects without one.
        ticket = system.ticket(token)
        connection = await system.open("general", ticket)
        await connection.close()

    async def test_disallowed_origin(self, system: ChatSystem) -> None:
        """An unlisted Origin is refused before the ticket is even looked at (CSWSH)."""
        token = system.token("alice")
        for origin in (EVIL, "null", "https://app.example.evil.example", "http://app.example"):
            ticket = system.ticket(token, origin=APP)
            status, body = await system.refused("general", ticket, origin=origin)
            assert (status, body["code"]) == (403, "ws_origin_not_allowed"), origin
            # The refused attempt did not burn the ticket: its own page can still use it.
            connection = await system.open("general", ticket, origin=APP)
            await connection.close()

    async def test_two_origin_headers(self, system: ChatSystem) -> None:
        """Two Origin headers (never sent by a browser) are refused at the handshake."""
        ticket = system.ticket(system.token("alice"), origin=APP)
        status, body = await system.refused(
            "general", ticket, origin=APP, additional_headers=[("Origin", OTHER)]
        )
        # The server's handshake parser refuses them before the application runs.
        assert status == 400
        assert "Origin" in body["text"]

    async def test_unauthorized_room(self, system: ChatSystem) -> None:
        """A user may not open the admins room, a private room, or an ill-named one."""
        token = system.token("alice")
        for room in ("admins", "someones-private-room", "General", "x" * 65, "a%0Ab"):
            ticket = system.ticket(token, origin=APP)
            status, body = await system.refused(room, ticket, origin=APP)
            assert (status, body["code"]) == (403, "ws_room_forbidden"), room
        # A path that names no room matches no route: refused all the same.
        status, _ = await system.refused("a%2Fb", system.ticket(token, origin=APP), origin=APP)
        assert status == 403
        # An admin may.
        admin = await system.join("admin", "admins")
        await admin.close()

    async def test_room_bound_ticket(self, system: ChatSystem) -> None:
        """A ticket issued for one room does not open another."""
        token = system.token("admin")
        ticket = system.ticket(token, origin=APP, room="general")
        status, body = await system.refused("admins", ticket, origin=APP)
        assert (status, body["code"]) == (403, "ws_ticket_room_mismatch")
        ticket = system.ticket(token, origin=APP, room="general")
        connection = await system.open("general", ticket, origin=APP)
        await connection.close()

    async def test_no_token_in_urls(self, system: ChatSystem) -> None:
        """The access token itself opens nothing: not in the query, subprotocol or a header."""
        token = system.token("alice")
        for query in (f"token={token}", f"access_token={token}"):
            with pytest.raises(InvalidStatus) as caught:
                await connect(system.ws_url("general", query=query), origin=APP)  # type: ignore[arg-type]
            assert json.loads(caught.value.response.body or b"{}")["code"] == "ws_ticket_missing"
        status, body = await system.refused("general", token, origin=APP)
        assert (status, body["code"]) == (403, "ws_ticket_invalid")
        status, body = await system.refused(
            "general", None, origin=APP, additional_headers={"Authorization": f"Bearer {token}"}
        )
        assert (status, body["code"]) == (403, "ws_ticket_missing")

    async def test_subprotocol_echo(self, system: ChatSystem) -> None:
        """The chat protocol is selected when offered; otherwise the ticket protocol is echoed."""
        token = system.token("alice")
        connection = await system.open("general", system.ticket(token, origin=APP), origin=APP)
        assert connection.subprotocol == CHAT_PROTOCOL
        await connection.close()
        ticket = system.ticket(token, origin=APP)
        connection = await system.open("general", ticket, origin=APP, extra_protocols=())
        assert connection.subprotocol == TICKET_PROTOCOL_PREFIX + ticket
        await connection.close()

    async def test_too_many_connections(self, system: ChatSystem) -> None:
        """The fourth socket of one user is refused with 429; closing one frees a place."""
        clients = [await system.join("carol") for _ in range(3)]
        ticket = system.ticket(system.token("carol"), origin=APP)
        status, body = await system.refused("general", ticket, origin=APP)
        assert (status, body["code"]) == (429, "ws_connection_limit")
        await clients.pop().close()
        await asyncio.sleep(0.1)
        clients.append(await system.join("carol"))
        # Another user is not affected.
        other = await system.join("dave")
        for client in [*clients, other]:
            await client.close()


class TestTicketEndpoint:
    def test_unlisted_origin_gets_no_ticket(self, system: ChatSystem) -> None:
        """A page on an unlisted origin cannot even obtain a ticket."""
        response = system.ticket_response(system.token("alice"), origin=EVIL)
        assert response.status_code == 403
        assert response.json()["code"] == "ws_origin_not_allowed"

    def test_needs_a_bearer_token_with_the_scope(self, system: ChatSystem) -> None:
        """No credentials: 401; a token without chat:use: 403; an API key: 403."""
        with system.http() as client:
            assert client.post(f"{system.auth}/ws/tickets").status_code == 401
            narrow = client.post(
                f"{system.auth}/token",
                data={
                    "grant_type": "password",
                    "username": "alice",
                    "password": system.passwords["alice"],
                    "scope": "orders:read",
                },
            ).json()["access_token"]
            assert system.ticket_response(narrow).json()["code"] == "insufficient_scope"
            admin = {"Authorization": f"Bearer {system.token()}"}
            key = client.post(
                f"{system.auth}/apikeys",
                json={"name": "bot", "scopes": ["chat:use"]},
                headers=admin,
            ).json()["key"]
            refused = client.post(f"{system.auth}/ws/tickets", headers={"X-API-Key": key})
            assert refused.status_code == 403
            assert refused.json()["code"] == "ws_ticket_needs_token"

    def test_strict_body(self, system: ChatSystem) -> None:
        """Empty body, {} and {"room": ...} work; anything else is 422."""
        token = system.token("alice")
        headers = {"Authorization": f"Bearer {token}"}
        with system.http() as client:
            for body in (None, {}, {"room": "general"}):
                response = client.post(f"{system.auth}/ws/tickets", headers=headers, json=body)
                assert response.status_code == 200, response.text
                assert response.json()["expires_in"] == 2
            for body in ({"room": "Bad Room"}, {"room": 5}, {"origin": APP}, [1]):
                response = client.post(f"{system.auth}/ws/tickets", headers=headers, json=body)
                assert response.status_code == 422, body

    def test_internal_endpoints_need_the_chat_client(self, system: ChatSystem) -> None:
        """Redeeming and user lookups are for the chat service's credentials only."""
        with system.http() as client:
            url = f"{system.auth}/internal/ws/tickets/redeem"
            assert client.post(url, json={"ticket": new_ticket()}).status_code == 401
            orders_secret = (system.data_dir / "secrets" / "orders.client-secret").read_text()
            wrong = client.post(url, json={"ticket": new_ticket()}, auth=("orders", orders_secret))
            assert wrong.status_code == 401
            chat_secret = (system.data_dir / "secrets" / "chat.client-secret").read_text()
            ok = client.post(url, json={"ticket": new_ticket()}, auth=("chat", chat_secret))
            assert ok.json() == {"record": None}


class TestOpenSocket:
    async def test_invalid_json_and_unknown_type(self, system: ChatSystem) -> None:
        """Bad frames get an error frame and the socket stays up; then one too many closes it."""
        client = await system.join("alice")
        await client.send("not json")
        assert (await client.next("error"))["code"] == "invalid_json"
        await client.send({"type": "shout", "text": "hi"})
        assert (await client.next("error"))["code"] == "unknown_type"
        await client.send({"type": "message", "text": "still here"})
        assert (await client.next("message"))["text"] == "still here"
        await client.send({"type": "message", "text": "x", "from": "admin"})
        assert await client.closed() == (1008, "too many invalid frames")
        wait_for(lambda: system.audit.find("ws.closed", reason="too many invalid frames"))

    async def test_binary_frame(self, system: ChatSystem) -> None:
        client = await system.join("alice")
        await client.connection.send(b"\x00\x01")
        assert (await client.next("error"))["code"] == "binary_frame"
        await client.close()

    async def test_oversize_frame(self, system: ChatSystem) -> None:
        """A frame over max_frame_bytes closes the socket with 1009."""
        client = await system.join("alice")
        await client.send(json.dumps({"type": "message", "text": "a" * 5000}))
        code, _ = await client.closed()
        assert code == 1009

    async def test_oversize_frame_is_refused_from_its_header(self, system: ChatSystem) -> None:
        """A header announcing 100 MB closes the socket at once: nothing is buffered first."""
        token = system.token("alice")
        connection = await system.open("general", system.ticket(token, origin=APP), origin=APP)
        await connection.recv()  # welcome
        # FIN + text; masked, 64-bit length; a mask key; then only 10 bytes of "payload".
        header = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", 100_000_000) + os.urandom(4)
        connection.transport.write(header + b"x" * 10)
        with pytest.raises(ConnectionClosed) as caught:
            await asyncio.wait_for(connection.recv(), 5)
        assert caught.value.rcvd is not None
        assert caught.value.rcvd.code == 1009

    async def test_message_flood(self, system: ChatSystem) -> None:
        """More than the burst at once closes the socket with 1008 and a reason, audited."""
        client = await system.join("bob")
        for i in range(30):
            try:
                await client.send({"type": "message", "text": f"spam {i}"})
            except ConnectionClosed:
                break
        assert await client.closed() == (1008, "message rate exceeded")
        wait_for(
            lambda: any(
                e["outcome"] == "denied" and e["details"]["code"] == 1008
                for e in system.audit.find("ws.closed", reason="message rate exceeded")
            )
        )

    @pytest.mark.slow
    async def test_idle_timeout(self, system: ChatSystem) -> None:
        """A client that never answers is pinged, then closed with 4408."""
        token = system.token("dave")
        connection = await system.open("general", system.ticket(token, origin=APP), origin=APP)
        assert json.loads(await connection.recv())["type"] == "welcome"
        assert json.loads(await asyncio.wait_for(connection.recv(), 5)) == {"type": "ping"}
        with pytest.raises(ConnectionClosed) as caught:
            await asyncio.wait_for(connection.recv(), 5)
        assert caught.value.rcvd is not None
        assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (4408, "idle timeout")

    @pytest.mark.slow
    async def test_answering_pings_keeps_the_socket(self, system: ChatSystem) -> None:
        """A client that answers pings outlives the idle timeout."""
        client = await system.join("dave")
        await asyncio.sleep(WS.idle_timeout.total_seconds() * 1.5)
        assert client.is_open
        await client.send({"type": "ping"})
        assert (await client.next("pong")) == {"type": "pong"}
        await client.close()


def test_refused_handshake_streams_nothing(system: ChatSystem) -> None:
    """A refused handshake is a complete HTTP response: no 101, no frame, problem+json."""
    with httpx.Client() as client:
        response = client.get(
            system.ws_url("general").replace("ws://", "http://"),
            headers={
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Origin": APP,
            },
        )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "ws_ticket_missing"
