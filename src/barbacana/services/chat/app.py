"""The chat service: ``WS /ws/{room}``, protected as strictly as REST.

Built only from Barbacana's public names, like a team's own service:

- a client trades its bearer token for a single-use ticket at the identity
  service (``POST /ws/tickets``), then opens ``/ws/{room}`` offering the
  subprotocols ``barbacana.chat.v1`` and ``barbacana.ticket.<ticket>``;
- :class:`~barbacana.websocket.WebSocketGuard` refuses the handshake (HTTP
  403) on a missing, unknown, expired, reused or foreign-origin ticket, an
  unlisted ``Origin``, a room whose rules do not admit the user, or one
  connection too many (429); accepted sockets get strict frames, size and
  rate limits, idle pings, and are closed within two seconds of a logout, a
  revoked family, a disabled account or roles that no longer admit the room;
- a message goes to every member of the room, on every instance through
  Redis pub/sub when ``redis.url`` is set (tickets and connection counts then
  live in Redis too).

Rooms open by role come from ``websocket.rooms``; private rooms, with member
lists, are created over REST (``POST /rooms``) and kept in the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import structlog
from fastapi import FastAPI, Response, Security, WebSocket
from fastapi import Path as PathParam
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from ..._clock import Clock, system_clock
from ...access import (
    ClientCredentials,
    Principal,
    RemoteIdentity,
    ResourceNotFoundError,
    require,
)
from ...errors import BarbacanaError, ConfigurationError, RequestError
from ...settings import Settings
from ...storage import Database
from ...web import secure
from ...web.cors import CorsPolicy
from ...websocket import (
    ROOM_PATTERN,
    AuditRecorder,
    Broker,
    CloseCode,
    ErrorFrame,
    FrameParser,
    GuardedConnection,
    IdentityTickets,
    RedisTicketStore,
    TicketRecord,
    TicketRedeemer,
    WebSocketGuard,
    WebSocketSettings,
    broker_from_url,
    connection_counter_from_url,
    valid_room,
)
from ._models import (
    CHAT_PROTOCOL,
    ClientFrame,
    MessageIn,
    MessageOut,
    RoomIn,
    RoomOut,
    WelcomeFrame,
)
from ._tables import members, rooms

__all__ = ["MIGRATIONS", "RoomExistsError", "create_app"]

_log = structlog.get_logger("barbacana.chat")

MIGRATIONS = Path(__file__).parent / "migrations"
RoomName = Annotated[str, PathParam(pattern=ROOM_PATTERN)]
UserId = Annotated[str, PathParam(min_length=1, max_length=256)]
Connection = GuardedConnection[Any]
#: Someone else's private room answers like a missing one.
_NO_SUCH_ROOM: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such room (or not yours)"}
}


class RoomExistsError(RequestError):
    """A room of that name already exists (or is one of the rooms open by role)."""

    code = "room_exists"
    status = 409
    title = "Room exists"


class _Rooms:
    """Who may join which room: role rules from settings, member lists from the database."""

    def __init__(self, db: Database, settings: WebSocketSettings, clock: Clock) -> None:
        self._db = db
        self._open = settings.rooms
        self._clock = clock

    async def admits(self, room: str, record: TicketRecord) -> bool:
        if not valid_room(room):
            return False
        roles = self._open.get(room)
        if roles is not None:
            return any(role in roles for role in record.roles)
        return await self.is_member(room, record.sub)

    def authorizer(self, room: str) -> Callable[[TicketRecord], Any]:
        async def authorize(record: TicketRecord) -> bool:
            return await self.admits(room, record)

        return authorize

    async def is_member(self, room: str, user_id: str) -> bool:
        query = select(members.c.user_id).where(
            members.c.room == room, members.c.user_id == user_id
        )
        async with self._db.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def owner(self, room: str) -> str | None:
        async with self._db.connect() as conn:
            row = (await conn.execute(select(rooms.c.owner_id).where(rooms.c.name == room))).first()
        return None if row is None else str(row[0])

    async def visible(self, principal: Principal) -> list[RoomOut]:
        found = [
            RoomOut(name=name, kind="roles", roles=list(roles))
            for name, roles in sorted(self._open.items())
            if principal.has_role(*roles)
        ]
        query = (
            select(rooms.c.name, rooms.c.owner_id)
            .join(members, members.c.room == rooms.c.name)
            .where(members.c.user_id == principal.subject)
            .order_by(rooms.c.name)
        )
        async with self._db.connect() as conn:
            for row in (await conn.execute(query)).all():
                found.append(RoomOut(name=row.name, kind="members", owner_id=row.owner_id))
        return found

    async def create(self, name: str, owner: str, users: list[str]) -> None:
        if name in self._open:
            raise RoomExistsError(f"room {name!r} is open by role; choose another name")
        now = self._clock()
        try:
            async with self._db.begin() as conn:
                await conn.execute(insert(rooms).values(name=name, owner_id=owner, created_at=now))
                for user in sorted({owner, *users}):
                    await conn.execute(
                        insert(members).values(room=name, user_id=user, added_at=now)
                    )
        except IntegrityError:
            raise RoomExistsError(f"room {name!r} already exists") from None

    async def add(self, room: str, user_id: str) -> None:
        if await self.is_member(room, user_id):
            return
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    insert(members).values(room=room, user_id=user_id, added_at=self._clock())
                )
        except IntegrityError:
            return  # added concurrently

    async def remove(self, room: str, user_id: str) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                delete(members).where(members.c.room == room, members.c.user_id == user_id)
            )


class _Hub:
    """This instance's sockets by room; delivers what the broker hands back.

    Broker payloads are ``m\\n<room>\\n<message JSON>`` (deliver to the room's
    members) and ``k\\n<room>\\n<user id>`` (a member was removed: close their
    sockets in that room with 4403). Room names cannot contain a newline.
    """

    def __init__(self, guard: WebSocketGuard[Any], broker: Broker, clock: Clock) -> None:
        self._guard = guard
        self._broker = broker
        self._clock = clock
        self._rooms: dict[str, set[Connection]] = {}

    def join(self, room: str, connection: Connection) -> None:
        self._rooms.setdefault(room, set()).add(connection)

    def leave(self, room: str, connection: Connection) -> None:
        present = self._rooms.get(room)
        if present is not None:
            present.discard(connection)
            if not present:
                del self._rooms[room]

    async def say(self, room: str, connection: Connection, text: str) -> None:
        frame = MessageOut(room=room, sender=connection.username, text=text, ts=self._clock())
        try:
            await self._broker.publish(f"m\n{room}\n{frame.model_dump_json()}")
        except BarbacanaError as exc:
            connection.send(ErrorFrame(code="delivery_failed", detail=exc.detail))

    async def kick(self, room: str, user_id: str) -> None:
        await self._broker.publish(f"k\n{room}\n{user_id}")

    async def deliver(self, payload: str) -> None:
        kind, _, rest = payload.partition("\n")
        room, _, body = rest.partition("\n")
        if kind == "m":
            for connection in list(self._rooms.get(room, ())):
                connection.send(body)
        elif kind == "k":
            self._guard.close_where(
                lambda c: c.resource == room and c.record.sub == body,
                CloseCode.FORBIDDEN,
                "you were removed from this room",
            )


def _client_credentials(settings: Settings) -> ClientCredentials:
    # Re-read from its file, so chat keeps redeeming tickets across a secret rotation.
    credentials = ClientCredentials.from_settings(settings.client)
    if credentials is None:
        raise ConfigurationError(
            "the chat service redeems tickets as a client of the identity service: set "
            "BARBACANA_CLIENT_ID=chat and BARBACANA_CLIENT_SECRET_FILE"
        )
    return credentials


def create_app(
    settings: Settings,
    websocket: WebSocketSettings | None = None,
    *,
    client_factory: Callable[..., httpx.AsyncClient] = httpx.AsyncClient,
    db: Database | None = None,
    audit: AuditRecorder | None = None,
    clock: Clock = system_clock,
) -> FastAPI:
    """The chat service.

    Args:
        settings: Service settings: ``tokens.identity_url`` names the identity service,
            ``client`` holds this service's credentials there, ``cors.origins`` is the
            Origin allow-list, ``redis.url`` (optional) shares state between instances.
        websocket: WebSocket limits and room rules (default: ``settings.websocket``).
        client_factory: Builds clients for the identity service (mTLS in production).
        db: The database (default: from ``settings``).
        audit: Records ``ws.connected``, ``ws.refused`` and ``ws.closed`` events.
        clock: Time source.

    Raises:
        ConfigurationError: The identity service or this service's credentials are not
            configured, or the CORS or WebSocket settings are invalid.
    """
    ws: WebSocketSettings = websocket or getattr(settings, "websocket", None) or WebSocketSettings()
    if not settings.tokens.identity_url:
        raise ConfigurationError(
            "set BARBACANA_TOKENS_IDENTITY_URL so the chat service can reach the identity service"
        )
    database = db or Database.from_settings(settings)
    remote = RemoteIdentity(settings, client_factory=client_factory)
    policy = CorsPolicy.from_settings(settings.cors)
    identity_client = client_factory(
        timeout=2.0, auth=_client_credentials(settings)
    )
    identity_tickets = IdentityTickets(settings.tokens.identity_url, identity_client)
    redis_url = settings.redis.url.get_secret_value() if settings.redis.url else None
    tickets: TicketRedeemer = (
        RedisTicketStore(redis_url, key_prefix=ws.key_prefix, clock=clock)
        if redis_url
        else identity_tickets
    )
    counter = connection_counter_from_url(
        redis_url, key_prefix=ws.key_prefix, lease=ws.connection_lease.total_seconds()
    )
    broker = broker_from_url(redis_url, key_prefix=ws.key_prefix)
    guard: WebSocketGuard[Any] = WebSocketGuard(
        ws,
        origins=policy,
        tickets=tickets,
        frames=FrameParser(ClientFrame),
        revocations=remote.revocations,
        subjects=identity_tickets.subject,
        counter=counter,
        audit=audit,
        subprotocol=CHAT_PROTOCOL,
        clock=clock,
    )
    room_rules = _Rooms(database, ws, clock)
    hub = _Hub(guard, broker, clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await database.migrate(MIGRATIONS, "alembic_version_chat")
        await remote.start()
        await broker.start(hub.deliver)
        await guard.start()
        try:
            yield
        finally:
            await guard.stop()
            await broker.stop()
            await counter.aclose()
            if isinstance(tickets, RedisTicketStore):
                await tickets.aclose()
            await identity_client.aclose()
            await remote.stop()
            await database.dispose()

    app = FastAPI(
        title="Barbacana chat service",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.barbacana_authenticator = remote.authenticator
    app.state.remote_identity = remote
    app.state.websocket_guard = guard
    app.state.db = database

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str) -> None:
        connection = await guard.admit(
            websocket, resource=room, authorize=room_rules.authorizer(room)
        )
        if connection is None:
            return
        async with connection:
            hub.join(room, connection)
            try:
                connection.send(WelcomeFrame(room=room, user=connection.username))
                async for frame in connection.frames():
                    if isinstance(frame, MessageIn):
                        await hub.say(room, connection, frame.text)
            finally:
                hub.leave(room, connection)

    @app.get("/rooms", response_model=list[RoomOut], summary="Rooms you may join")
    async def list_rooms(
        principal: Principal = Security(require, scopes=[ws.ticket_scope]),
    ) -> list[RoomOut]:
        return await room_rules.visible(principal)

    @app.post(
        "/rooms",
        response_model=RoomOut,
        status_code=201,
        summary="Create a private room",
        responses={409: {"description": "A room of that name exists"}},
    )
    async def create_room(
        body: RoomIn,
        response: Response,
        principal: Principal = Security(require, scopes=[ws.ticket_scope]),
    ) -> RoomOut:
        await room_rules.create(body.name, principal.subject, body.members)
        response.headers["Location"] = f"/rooms/{body.name}"
        return RoomOut(name=body.name, kind="members", owner_id=principal.subject)

    async def _owned(room: str, principal: Principal) -> None:
        owner = await room_rules.owner(room)
        # Someone else's private room looks exactly like a missing one.
        if owner is None or (owner != principal.subject and not principal.has_role("admin")):
            raise ResourceNotFoundError("No such room")

    @app.get(
        "/rooms/{room}/members",
        response_model=list[str],
        summary="Members of a private room",
        responses=_NO_SUCH_ROOM,
    )
    async def list_members(
        room: RoomName, principal: Principal = Security(require, scopes=[ws.ticket_scope])
    ) -> list[str]:
        if not await room_rules.is_member(room, principal.subject) and not principal.has_role(
            "admin"
        ):
            raise ResourceNotFoundError("No such room")
        query = select(members.c.user_id).where(members.c.room == room).order_by(members.c.user_id)
        async with database.connect() as conn:
            return [str(row[0]) for row in (await conn.execute(query)).all()]

    @app.put(
        "/rooms/{room}/members/{user_id}",
        status_code=204,
        response_model=None,
        summary="Add a member (room owner or admin)",
        responses=_NO_SUCH_ROOM,
    )
    async def add_member(
        room: RoomName,
        user_id: UserId,
        principal: Principal = Security(require, scopes=[ws.ticket_scope]),
    ) -> Response:
        await _owned(room, principal)
        await room_rules.add(room, user_id)
        return Response(status_code=204)

    @app.delete(
        "/rooms/{room}/members/{user_id}",
        status_code=204,
        response_model=None,
        summary="Remove a member (room owner or admin); their open sockets close with 4403",
        responses=_NO_SUCH_ROOM,
    )
    async def remove_member(
        room: RoomName,
        user_id: UserId,
        principal: Principal = Security(require, scopes=[ws.ticket_scope]),
    ) -> Response:
        await _owned(room, principal)
        await room_rules.remove(room, user_id)
        await hub.kick(room, user_id)
        return Response(status_code=204)

    return secure(
        app,
        settings,
        readiness={
            "database": database.check,
            "identity_keys": remote.ready,
            "broker": broker.check,
        },
        token_url=settings.tokens.endpoint("token"),
    )
