"""Start the reference system's auth and chat services on loopback, and drive them.

Clients are the real ``websockets`` library over real sockets; servers are
uvicorn (the WebSocket implementation ``barbacana serve chat`` uses) in
background threads, or TLS servers from ``serve_config``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from barbacana.cli._admin import bootstrap
from barbacana.services._runtime import DataDir
from barbacana.services.auth._tickets import ticket_router
from barbacana.services.auth.app import create_app as create_auth
from barbacana.services.chat._models import CHAT_PROTOCOL
from barbacana.services.chat.app import create_app as create_chat
from barbacana.settings import ClientSettings, CorsSettings, KeySettings, TokenSettings
from barbacana.transport import Pki, mtls_client, serve_config
from barbacana.websocket import (
    TICKET_PROTOCOL_PREFIX,
    WebSocketSettings,
    WebSocketsProtocol,
    uvicorn_ws_options,
)
from tests.conftest import FakeKekSealer, ServerThread, free_port, make_settings

ISSUER = "https://issuer.test"
APP = "https://app.example"
OTHER = "https://other.example"
EVIL = "https://evil.example"


class AuditLog:
    """An audit recorder that keeps events in a list (thread-safe appends)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    async def __call__(self, action: str, **fields: Any) -> None:
        with self._lock:
            self.events.append({"action": action, **fields})

    def find(self, action: str, **match: Any) -> list[dict[str, Any]]:
        with self._lock:
            events = list(self.events)
        return [
            e
            for e in events
            if e["action"] == action and all(e.get(k) == v for k, v in match.items())
        ]


def with_ticket_router(app: Any, settings: Any, ws: WebSocketSettings) -> Any:
    """The identity app with the ticket endpoints (unless create_app already has them)."""
    if not any(getattr(route, "path", None) == "/ws/tickets" for route in app.routes):
        app.include_router(ticket_router(settings, ws))
    return app


@dataclass
class ChatSystem:
    auth: str
    chats: list[str]
    admin_password: str
    data_dir: Path
    audit: AuditLog
    verify: Any = True
    ssl: Any = None
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def chat(self) -> str:
        return self.chats[0]

    def ws_url(self, room: str, index: int = 0, query: str = "") -> str:
        base = self.chats[index].replace("https://", "wss://").replace("http://", "ws://")
        return f"{base}/ws/{room}" + (f"?{query}" if query else "")

    _client: httpx.Client | None = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def http(self) -> httpx.Client:
        """A shared client (building one costs a TLS context each time)."""
        if self._client is None:
            self._client = httpx.Client(verify=self.verify, timeout=10)
        return _Shared(self._client)  # type: ignore[return-value]

    def login(self, username: str = "admin", password: str | None = None) -> dict[str, Any]:
        secret = password or self.passwords.get(username) or self.admin_password
        with self.http() as client:
            response = client.post(
                f"{self.auth}/token",
                data={"grant_type": "password", "username": username, "password": secret},
            )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def token(self, username: str = "admin") -> str:
        return str(self.login(username)["access_token"])

    def add_user(self, username: str, roles: list[str] | None = None) -> str:
        """Create a user; returns their id."""
        password = f"{username}-password-long"
        with self.http() as client:
            response = client.post(
                f"{self.auth}/users",
                json={"username": username, "password": password, "roles": roles or ["user"]},
                headers={"Authorization": f"Bearer {self.token()}"},
            )
        assert response.status_code == 201, response.text
        self.passwords[username] = password
        return str(response.json()["id"])

    def ticket_response(
        self, token: str, *, origin: str | None = None, room: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if origin is not None:
            headers["Origin"] = origin
        with self.http() as client:
            if room is None:
                return client.post(f"{self.auth}/ws/tickets", headers=headers)
            return client.post(f"{self.auth}/ws/tickets", headers=headers, json={"room": room})

    def ticket(self, token: str, *, origin: str | None = None, room: str | None = None) -> str:
        response = self.ticket_response(token, origin=origin, room=room)
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        return str(response.json()["ticket"])

    async def open(
        self,
        room: str,
        ticket: str | None,
        *,
        origin: str | None = None,
        via: str = "subprotocol",
        index: int = 0,
        extra_protocols: tuple[str, ...] = (CHAT_PROTOCOL,),
        **options: Any,
    ) -> ClientConnection:
        protocols = list(extra_protocols)
        query = ""
        if ticket is not None and via == "subprotocol":
            protocols.append(TICKET_PROTOCOL_PREFIX + ticket)
        elif ticket is not None:
            query = f"ticket={ticket}"
        return await connect(
            self.ws_url(room, index, query),
            origin=origin,  # type: ignore[arg-type]
            subprotocols=protocols or None,  # type: ignore[arg-type]
            ssl=self.ssl,
            open_timeout=10,
            **options,
        )

    async def refused(
        self, room: str, ticket: str | None, **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        """Open a socket that must be refused; the HTTP status and problem body."""
        try:
            connection = await self.open(room, ticket, **kwargs)
        except InvalidStatus as exc:
            raw = exc.response.body or b"{}"
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"text": raw.decode("utf-8", "replace")}
            return exc.response.status_code, body
        await connection.close()
        raise AssertionError("the handshake was accepted")

    async def join(self, username: str, room: str = "general", **kwargs: Any) -> Client:
        token = self.token(username)
        origin = kwargs.pop("origin", APP)
        ticket = self.ticket(token, origin=origin)
        connection = await self.open(room, ticket, origin=origin, **kwargs)
        client = Client(connection)
        welcome = await client.next("welcome")
        assert welcome["room"] == room
        return client


class _Shared:
    """``with system.http() as client:`` without closing the shared client."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def __enter__(self) -> httpx.Client:
        return self._client

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class Client:
    """A chat client that answers the server's pings and queues what it receives."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._done = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                frame = json.loads(raw)
                if frame.get("type") == "ping":
                    await self.connection.send(json.dumps({"type": "pong"}))
                    continue
                await self.frames.put(frame)
        except ConnectionClosed:
            pass
        finally:
            received = self.connection.close_code
            self.close_code = received
            self.close_reason = self.connection.close_reason
            self._done.set()

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.connection.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def next(self, type_: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {type_ or 'frame'} within {timeout} s")
            frame = await asyncio.wait_for(self.frames.get(), remaining)
            if type_ is None or frame.get("type") == type_:
                return frame

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        await asyncio.wait_for(self._done.wait(), timeout)
        return self.close_code, self.close_reason

    @property
    def is_open(self) -> bool:
        return not self._done.is_set()

    async def close(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.connection.close()
        await self._done.wait()


class ChatServer(ServerThread):
    """ServerThread with the chat service's WebSocket options (what ``serve chat`` sets)."""

    def __init__(self, app: Any, ws: WebSocketSettings) -> None:
        super().__init__(app, ws=WebSocketsProtocol, **uvicorn_ws_options(ws))


class ConfigThread(ServerThread):
    """A prepared uvicorn config (TLS from ``serve_config``) served in a background thread."""

    def __init__(self, config: uvicorn.Config) -> None:
        self.port = config.port
        self._serve(config)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@contextlib.contextmanager
def chat_system(
    tmp_path: Path,
    database_url: str,
    ws: WebSocketSettings,
    *,
    redis_url: str | None = None,
    instances: int = 1,
    origins: tuple[str, ...] = (APP, OTHER),
    pki: Pki | None = None,
) -> Iterator[ChatSystem]:
    """auth and ``instances`` chat services on loopback.

    Plain HTTP by default; with ``pki``, both serve HTTPS and the chat service
    calls the identity service over mTLS with its ``chat`` certificate.
    """
    sealer = FakeKekSealer()
    common: dict[str, Any] = {
        "cors": CorsSettings(origins=list(origins)),
        "websocket": ws,  # ignored until Settings has the field
        # The identity service's request limits count per client address, and every
        # login, ticket and redemption here comes from 127.0.0.1: they are tested
        # on their own; WebSocket limits are what these tests are about.
        "ratelimit": {"enabled": False},
    }
    if redis_url is not None:
        common["redis"] = {"url": redis_url}
    settings = make_settings(
        tmp_path,
        database_url,
        tokens=TokenSettings(issuer=ISSUER),
        key=KeySettings(publish_delay=timedelta(seconds=1)),
        **common,
    )
    # In a thread of its own: callers may be coroutines with a running loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        shown = pool.submit(asyncio.run, bootstrap(settings, sealer)).result()
    audit = AuditLog()
    auth_app = with_ticket_router(create_auth(settings, sealer=sealer), settings, ws)
    with contextlib.ExitStack() as stack:
        if pki is None:
            auth_url = stack.enter_context(ServerThread(auth_app)).url
            factory: Any = httpx.AsyncClient
        else:
            auth_config = serve_config(
                auth_app, credentials=pki.credentials("auth"), port=free_port(), log_level="warning"
            )
            auth_url = stack.enter_context(ConfigThread(auth_config)).url
            factory = functools.partial(mtls_client, pki, "chat")
        chat_settings = make_settings(
            tmp_path,
            database_url,
            tokens=TokenSettings(issuer=ISSUER, identity_url=auth_url),
            client=ClientSettings(id="chat", secret_file=DataDir(tmp_path).client_secret("chat")),
            **common,
        )
        urls = []
        for _ in range(instances):
            app = create_chat(chat_settings, ws, audit=audit, client_factory=factory)
            if pki is None:
                urls.append(stack.enter_context(ChatServer(app, ws)).url)
            else:
                config = serve_config(
                    app,
                    credentials=pki.credentials("chat"),
                    port=free_port(),
                    log_level="warning",
                    **uvicorn_ws_options(ws),
                )
                urls.append(stack.enter_context(ConfigThread(config)).url)
        system = ChatSystem(auth_url, urls, shown["admin_password"], tmp_path, audit)
        if pki is not None:
            system.verify = system.ssl = ssl.create_default_context(cafile=str(pki.ca_file))
        try:
            yield system
        finally:
            # An idle TLS keep-alive would hold the server's shutdown until it times out.
            system.close()


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


__all__ = [
    "APP",
    "EVIL",
    "OTHER",
    "AuditLog",
    "ChatServer",
    "ChatSystem",
    "Client",
    "chat_system",
    "uvicorn",
    "wait_for",
    "with_ticket_router",
]
