"""The chat service end to end: conversations, private rooms, revocation reaching
open sockets, two instances on Redis, and TLS with mTLS to the identity service.

Real sockets throughout: uvicorn servers on loopback, the ``websockets`` client,
httpx for the REST calls, SQLite and PostgreSQL, the machine's Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from barbacana.websocket import WebSocketSettings
from tests.conftest import missing
from tests.transport.conftest import make_pki
from tests.websocket.conftest import REDIS_URL
from tests.websocket.helpers import APP, ChatSystem, Client, chat_system, wait_for


def bearer(system: ChatSystem, username: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {system.token(username)}"}


async def converse(system: ChatSystem, first: Client, second: Client) -> None:
    """Each side's message reaches both, with the sender's name."""
    await first.send({"type": "message", "text": "hello from one"})
    for client in (first, second):
        frame = await client.next("message")
        assert frame["text"] == "hello from one"
        assert frame["from"] == "alice"
        assert set(frame) == {"type", "room", "from", "text", "ts"}
    await second.send({"type": "message", "text": "and back"})
    for client in (first, second):
        assert (await client.next("message"))["from"] == "bob"


@pytest.fixture
def system(database_url: str, tmp_path: Path) -> Iterator[ChatSystem]:
    """auth and chat on SQLite and on PostgreSQL, default limits."""
    with chat_system(tmp_path, database_url, WebSocketSettings()) as running:
        running.add_user("alice")
        running.add_user("bob")
        running.add_user("carol")
        yield running


async def test_two_user_conversation(system: ChatSystem) -> None:
    """Alice and Bob talk in general; a third user in another room hears nothing."""
    alice = await system.join("alice")
    bob = await system.join("bob")
    admin = await system.join("admin", "admins")
    await converse(system, alice, bob)
    frame = (await alice.next("message")) if not alice.frames.empty() else None
    assert frame is None
    assert admin.frames.empty()
    for client in (alice, bob, admin):
        await client.close()
    wait_for(lambda: len(system.audit.find("ws.closed")) == 3)
    assert {e["actor"]["username"] for e in system.audit.find("ws.connected")} == {
        "alice",
        "bob",
        "admin",
    }


async def test_private_room(system: ChatSystem) -> None:
    """A member-list room: members join, others are refused, removal closes with 4403."""
    with system.http() as client:
        alice_id = client.get(f"{system.auth}/users/me", headers=bearer(system, "alice")).json()[
            "id"
        ]
        bob_id = client.get(f"{system.auth}/users/me", headers=bearer(system, "bob")).json()["id"]
        created = client.post(
            f"{system.chat}/rooms",
            json={"name": "tea", "members": [bob_id]},
            headers=bearer(system, "alice"),
        )
        assert created.status_code == 201, created.text
        again = client.post(
            f"{system.chat}/rooms", json={"name": "tea"}, headers=bearer(system, "bob")
        )
        assert (again.status_code, again.json()["code"]) == (409, "room_exists")
        clash = client.post(
            f"{system.chat}/rooms", json={"name": "general"}, headers=bearer(system, "bob")
        )
        assert clash.status_code == 409
        members = client.get(
            f"{system.chat}/rooms/tea/members", headers=bearer(system, "bob")
        ).json()
        assert members == sorted([alice_id, bob_id])
        listed = client.get(f"{system.chat}/rooms", headers=bearer(system, "bob")).json()
        assert [r["name"] for r in listed] == ["general", "tea"]
        # Carol is neither owner nor admin: the room does not exist for her.
        carol = bearer(system, "carol")
        assert client.put(f"{system.chat}/rooms/tea/members/x", headers=carol).status_code == 404
        assert client.get(f"{system.chat}/rooms/tea/members", headers=carol).status_code == 404
    status, body = await system.refused(
        "tea", system.ticket(system.token("carol"), origin=APP), origin=APP
    )
    assert (status, body["code"]) == (403, "ws_room_forbidden")
    alice = await system.join("alice", "tea")
    bob = await system.join("bob", "tea")
    await converse(system, alice, bob)
    with system.http() as client:
        removed = client.delete(
            f"{system.chat}/rooms/tea/members/{bob_id}", headers=bearer(system, "alice")
        )
        assert removed.status_code == 204
    assert await bob.closed() == (4403, "you were removed from this room")
    assert alice.is_open
    status, body = await system.refused(
        "tea", system.ticket(system.token("bob"), origin=APP), origin=APP
    )
    assert body["code"] == "ws_room_forbidden"
    await alice.close()


@pytest.fixture(scope="module")
def revocations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatSystem]:
    """One system for the revocation tests, with the default follow and check intervals."""
    tmp = tmp_path_factory.mktemp("chat-revocation")
    with chat_system(
        tmp, f"sqlite+aiosqlite:///{tmp / 'barbacana.db'}", WebSocketSettings()
    ) as running:
        yield running


class TestRevocationReachesOpenSockets:
    """Logout, revoked family, disabled account or role change: the socket closes in < 2 s."""

    async def closes(self, client: Client, action: object) -> tuple[int | None, str | None]:
        start = time.monotonic()
        action()  # type: ignore[operator]
        result = await client.closed(timeout=10)
        assert time.monotonic() - start < 2.0, f"closed after {time.monotonic() - start:.2f} s"
        return result

    async def test_logout(self, revocations: ChatSystem) -> None:
        system = revocations
        system.add_user("lou")
        tokens = system.login("lou")
        ticket = system.ticket(tokens["access_token"], origin=APP)
        client = Client(await system.open("general", ticket, origin=APP))
        await client.next("welcome")
        other = await system.join("admin")

        def logout() -> None:
            with system.http() as http:
                headers = {"Authorization": f"Bearer {tokens['access_token']}"}
                assert http.post(f"{system.auth}/logout", headers=headers).status_code == 204

        assert await self.closes(client, logout) == (4401, "session revoked")
        assert other.is_open  # someone else's socket stays
        wait_for(lambda: system.audit.find("ws.closed", reason="session revoked"))
        await other.close()

    async def test_revoked_family(self, revocations: ChatSystem) -> None:
        system = revocations
        system.add_user("rita")
        tokens = system.login("rita")
        client = Client(
            await system.open(
                "general", system.ticket(tokens["access_token"], origin=APP), origin=APP
            )
        )
        await client.next("welcome")

        def revoke() -> None:
            with system.http() as http:
                form = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
                assert http.post(f"{system.auth}/revoke", data=form).status_code == 200

        assert await self.closes(client, revoke) == (4401, "session revoked")

    async def test_disabled_user(self, revocations: ChatSystem) -> None:
        system = revocations
        user_id = system.add_user("dina")
        client = await system.join("dina")

        def disable() -> None:
            with system.http() as http:
                url = f"{system.auth}/users/{user_id}/disable"
                assert http.post(url, headers=bearer(system)).status_code == 200

        assert await self.closes(client, disable) == (4401, "account disabled")

    async def test_roles_no_longer_admit_the_room(self, revocations: ChatSystem) -> None:
        """Demoted from admin: the admins-room socket gets 4403, the general one 4401."""
        system = revocations
        user_id = system.add_user("boss", ["admin"])
        in_admins = await system.join("boss", "admins")
        in_general = await system.join("boss", "general")

        def demote() -> None:
            with system.http() as http:
                url = f"{system.auth}/users/{user_id}/roles"
                response = http.put(url, json={"roles": ["user"]}, headers=bearer(system))
                assert response.status_code == 200

        assert await self.closes(in_admins, demote) == (
            4403,
            "your roles no longer admit this room",
        )
        assert await in_general.closed(timeout=5) == (4401, "session revoked")
        # With a new token, general still works and admins is refused. (``iat`` has whole
        # seconds, so a token from the second of the cut-off is void too: wait it out.)
        await asyncio.sleep(1.1)
        again = await system.join("boss", "general")
        status, body = await system.refused(
            "admins", system.ticket(system.token("boss"), origin=APP), origin=APP
        )
        assert (status, body["code"]) == (403, "ws_room_forbidden")
        await again.close()


@pytest.mark.slow
async def test_two_instances_on_redis(postgres_url: str, tmp_path: Path) -> None:
    """Two chat instances sharing PostgreSQL and Redis: messages, tickets, caps, removals."""
    import redis as sync_redis

    try:
        sync_redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping()
    except sync_redis.RedisError:
        missing(f"Redis is not reachable at {REDIS_URL}")
    ws = WebSocketSettings(key_prefix=f"brbwstest{time.time_ns()}", max_connections_per_user=3)
    with chat_system(tmp_path, postgres_url, ws, redis_url=REDIS_URL, instances=2) as system:
        system.add_user("alice")
        bob_id = system.add_user("bob")
        alice = await system.join("alice", index=0)
        bob = await system.join("bob", index=1)
        await converse(system, alice, bob)
        # A ticket redeemed on one instance cannot be replayed on the other.
        ticket = system.ticket(system.token("alice"), origin=APP)
        first = await system.open("general", ticket, origin=APP, index=1)
        status, body = await system.refused("general", ticket, origin=APP, index=0)
        assert (status, body["code"]) == (403, "ws_ticket_invalid")
        # The connection cap counts sockets on both instances: alice holds 2, a third fits.
        third = await system.join("alice", index=1)
        status, body = await system.refused(
            "general", system.ticket(system.token("alice"), origin=APP), origin=APP, index=0
        )
        assert (status, body["code"]) == (429, "ws_connection_limit")
        # A removal decided on instance 0 closes bob's socket on instance 1.
        with system.http() as client:
            headers = bearer(system, "alice")
            assert (
                client.post(
                    f"{system.chats[0]}/rooms",
                    json={"name": "den", "members": [bob_id]},
                    headers=headers,
                ).status_code
                == 201
            )
            bob_den = await system.join("bob", "den", index=1)
            url = f"{system.chats[0]}/rooms/den/members/{bob_id}"
            assert client.delete(url, headers=headers).status_code == 204
        assert await bob_den.closed() == (4403, "you were removed from this room")
        await first.close()
        for client_ in (alice, bob, third):
            await client_.close()
        # Closed sockets give their places back across instances.
        await asyncio.sleep(0.2)
        again = await system.join("alice", index=0)
        await again.close()


@pytest.mark.slow
async def test_tls_and_mtls(tmp_path: Path) -> None:
    """wss:// for clients; the chat service redeems tickets over mTLS with its certificate."""
    pki = make_pki(tmp_path / "pki")
    database = f"sqlite+aiosqlite:///{tmp_path / 'barbacana.db'}"
    with chat_system(tmp_path, database, WebSocketSettings(), pki=pki) as system:
        assert system.chat.startswith("https://")
        system.add_user("alice")
        system.add_user("bob")
        alice = await system.join("alice")
        bob = await system.join("bob")
        assert alice.connection.transport.get_extra_info("ssl_object") is not None
        await converse(system, alice, bob)
        await alice.close()
        await bob.close()
        # Over TLS the internal endpoints also demand the chat service's certificate.
        secret = (tmp_path / "secrets" / "chat.client-secret").read_text()
        url = f"{system.auth}/internal/ws/tickets/redeem"
        anonymous = httpx.post(
            url, json={"ticket": "x" * 43}, auth=("chat", secret), verify=system.verify
        )
        assert anonymous.json()["code"] == "peer_certificate_required"
        from barbacana.transport import mtls_sync_client

        with mtls_sync_client(pki, "orders") as orders:
            wrong = orders.post(url, json={"ticket": "x" * 43}, auth=("chat", secret))
        assert (wrong.status_code, wrong.json()["code"]) == (403, "peer_not_allowed")
        with mtls_sync_client(pki, "chat") as chat:
            assert chat.post(url, json={"ticket": "x" * 43}, auth=("chat", secret)).json() == {
                "record": None
            }
