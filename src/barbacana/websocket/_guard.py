"""The WebSocket guard: authenticate before accept, then police every frame.

:meth:`WebSocketGuard.admit` runs the handshake checks *before* the upgrade,
so a refused client gets an HTTP error (problem+json through the ASGI
WebSocket Denial Response extension, or a bare 403) and never one frame:

1. ``Origin`` must be on the CORS allow-list, or absent (a program, not a
   page). Browsers always send it on WebSocket handshakes (RFC 6455 §4.1,
   item 8) and never let a page forge it, so this stops cross-site WebSocket
   hijacking (DESIGN invariant 7).
2. A ticket must be present: as a ``barbacana.ticket.<ticket>`` value of
   ``Sec-WebSocket-Protocol`` (preferred: it stays out of access logs) or as
   the ``ticket`` query parameter. Tokens never travel in URLs.
3. The ticket is redeemed once; it must be bound to exactly this ``Origin``
   (or to none, for a program that sent none) and, if it names one, to this room.
4. The token behind it must still be valid (not expired, not revoked) and
   hold the ticket scope; the caller's ``authorize`` must admit the user.
5. The user must hold fewer than ``max_connections_per_user`` connections.

Once accepted, :class:`GuardedConnection` parses each text frame into a
strict model, answers bad frames with an ``error`` frame and closes (1008)
after too many, closes (1009) on an oversize frame, applies a token-bucket
message rate (1008), and queues outgoing frames with a bound (a reader too
slow to drain them is closed). Every ``check_interval`` (0.5 s) the guard
checks each open socket: revoked or expired credentials close it with 4401
(or 4403 when the user's roles no longer admit the room), a silent client is
pinged and, if it stays silent, closed with 4408.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, TypeVar
from urllib.parse import parse_qs

import structlog
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from .._clock import Clock, system_clock
from ..errors import BarbacanaError, ConfigurationError
from ..tokens import RevocationState
from ..web import PROBLEM_CONTENT_TYPE, problem_body
from ..web.cors import CorsPolicy
from ._frames import CloseCode, ErrorFrame, Frame, FrameParser, PingFrame, PongFrame
from ._limits import ConnectionCounter, MessageRate
from ._settings import WebSocketSettings
from ._tickets import TicketRecord, TicketRedeemer
from .errors import (
    ConnectionLimitError,
    FrameError,
    OriginNotAllowedError,
    RoomForbiddenError,
    TicketInvalidError,
    TicketMissingError,
    TicketOriginMismatchError,
    TicketRoomMismatchError,
)

__all__ = [
    "TICKET_PROTOCOL_PREFIX",
    "AuditRecorder",
    "Authorize",
    "GuardedConnection",
    "SubjectLookup",
    "SubjectStatus",
    "WebSocketGuard",
]

_log = structlog.get_logger("barbacana.websocket")

T = TypeVar("T")

#: A ``Sec-WebSocket-Protocol`` value carrying a ticket: ``barbacana.ticket.<ticket>``.
TICKET_PROTOCOL_PREFIX = "barbacana.ticket."
_PING = PingFrame().model_dump_json()
_PONG = PongFrame().model_dump_json()
# Close codes that end a connection normally, as opposed to a policy decision.
_ORDINARY = frozenset({1000, 1001, 1005, 1006})
_SENDER_GRACE = 2.0


class AuditRecorder(Protocol):
    """Records security events (``barbacana.audit.AuditTrail.record`` fits)."""

    async def __call__(
        self,
        action: str,
        *,
        actor: dict[str, Any],
        outcome: str,
        resource: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Any: ...


#: Does the room (or other resource) admit the user this record stands for?
Authorize = Callable[[TicketRecord], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class SubjectStatus:
    """A user's current state, as the identity service sees it now."""

    active: bool
    roles: tuple[str, ...] = ()


#: The identity service's view of a user (``None`` when it cannot say).
SubjectLookup = Callable[[str], Awaitable[SubjectStatus | None]]


@dataclass(slots=True)
class _Handshake:
    origin: str | None
    address: str | None
    ticket: str | None
    via: Literal["subprotocol", "query"] | None
    ambiguous: bool


class WebSocketGuard(Generic[T]):
    """Admits WebSocket clients and polices their connections; see the module docstring.

    Args:
        settings: Limits and keep-alive.
        origins: The CORS policy whose allow-list handshakes must match.
        tickets: Redeems tickets (a :class:`TicketStore`, or the identity service).
        frames: Parses client frames (a union that includes :class:`PingFrame` and
            :class:`PongFrame`; those are answered here and never reach the app).
        revocations: Revocation state to check open sockets against (fed by
            ``RemoteIdentity``'s revocation follower).
        subjects: Asks the identity service for a revoked user's state, to tell a
            disabled account (4401) from roles that no longer admit the room (4403).
        counter: Per-user connection counts (in process or Redis).
        audit: Records ``ws.connected``, ``ws.refused`` and ``ws.closed``.
        subprotocol: The application protocol to select when offered
            (e.g. ``barbacana.chat.v1``).
        clock: Time source.

    Raises:
        ConfigurationError: The CORS policy allows any origin (``*``).
    """

    def __init__(
        self,
        settings: WebSocketSettings,
        *,
        origins: CorsPolicy,
        tickets: TicketRedeemer,
        frames: FrameParser[T],
        revocations: RevocationState | None = None,
        subjects: SubjectLookup | None = None,
        counter: ConnectionCounter | None = None,
        audit: AuditRecorder | None = None,
        subprotocol: str | None = None,
        clock: Clock = system_clock,
    ) -> None:
        if origins.any_origin:
            raise ConfigurationError(
                "WebSockets need an explicit Origin allow-list: with cors.origins ['*'] any "
                "site could open sockets for its visitors. List each origin exactly"
            )
        self.settings = settings
        self._origins = origins
        self._tickets = tickets
        self._parser = frames
        self._revocations = revocations
        self._subjects = subjects
        self._counter = counter
        self._audit = audit
        self._subprotocol = subprotocol
        self._clock = clock
        self._connections: dict[str, GuardedConnection[T]] = {}
        self._task: asyncio.Task[None] | None = None
        self._renew_every = settings.connection_lease.total_seconds() / 3
        self._renewed_at = 0.0

    def __repr__(self) -> str:
        return f"WebSocketGuard(open={len(self._connections)})"

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start checking open sockets every ``check_interval``; idempotent."""
        if self._task is None or self._task.done():
            self._renewed_at = self._clock()
            self._task = asyncio.create_task(self._run(), name="barbacana-ws-guard")

    async def stop(self) -> None:
        """Stop checking, and close every open socket with 1001 (going away)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for connection in list(self._connections.values()):
            connection.close(CloseCode.GOING_AWAY, "server shutting down")

    @property
    def connections(self) -> list[GuardedConnection[T]]:
        """The sockets open on this instance."""
        return list(self._connections.values())

    def close_where(
        self, predicate: Callable[[GuardedConnection[T]], bool], code: int, reason: str
    ) -> int:
        """Close every open socket ``predicate`` selects; returns how many."""
        closed = 0
        for connection in list(self._connections.values()):
            if not connection.closing and predicate(connection):
                connection.close(code, reason)
                closed += 1
        return closed

    # -- the handshake ---------------------------------------------------------

    async def admit(
        self, websocket: WebSocket, *, resource: str, authorize: Authorize
    ) -> GuardedConnection[T] | None:
        """Run the handshake checks; accept and return the connection, or refuse.

        A refusal has already been answered (HTTP 403, or 429 for the connection
        cap, 503 when a store is down) and audited when this returns ``None``.
        """
        shake = self._handshake(websocket)
        actor: dict[str, Any] = {"type": "anonymous", "address": shake.address}
        details: dict[str, Any] = {"origin": shake.origin, "via": shake.via}
        try:
            if shake.origin is not None and not self._origins.is_allowed_origin(shake.origin):
                raise OriginNotAllowedError("this Origin may not open WebSockets here")
            if shake.ambiguous:
                raise TicketInvalidError("present exactly one ticket")
            if shake.ticket is None:
                raise TicketMissingError(
                    "present a ticket from POST /ws/tickets as the Sec-WebSocket-Protocol "
                    f"value '{TICKET_PROTOCOL_PREFIX}<ticket>'"
                )
            record = await self._tickets.redeem(shake.ticket)
            if record is None:
                raise TicketInvalidError("the ticket is unknown, expired or already used")
            actor = {
                "type": "user",
                "id": record.sub,
                "username": record.username,
                "address": shake.address,
            }
            self._check_record(record, shake.origin, resource)
            if not await authorize(record):
                raise RoomForbiddenError("this room does not exist or does not admit you")
        except BarbacanaError as exc:
            await self._refuse(websocket, exc, actor=actor, resource=resource, details=details)
            return None
        connection_id = secrets.token_hex(8)
        limit = self.settings.max_connections_per_user
        try:
            if self._counter is not None and not await self._counter.acquire(
                record.sub, connection_id, limit
            ):
                raise ConnectionLimitError(f"at most {limit} open connections per user")
        except BarbacanaError as exc:
            await self._refuse(websocket, exc, actor=actor, resource=resource, details=details)
            return None
        connection = GuardedConnection(
            self, websocket, record, resource, connection_id, authorize, actor
        )
        try:
            await websocket.accept(subprotocol=self._select_subprotocol(websocket, shake))
        except (WebSocketDisconnect, OSError, RuntimeError):
            # The client left during the handshake.
            if self._counter is not None:
                await self._counter.release(record.sub, connection_id)
            return None
        self._connections[connection_id] = connection
        await self._record(
            "ws.connected",
            actor=actor,
            outcome="success",
            resource=resource,
            details={**details, "connection": connection_id},
        )
        return connection

    def _handshake(self, websocket: WebSocket) -> _Handshake:
        scope = websocket.scope
        origins = [v for k, v in scope.get("headers", []) if k == b"origin"]
        origin = origins[0].decode("latin-1") if len(origins) == 1 else None
        offered = [
            p[len(TICKET_PROTOCOL_PREFIX) :]
            for p in scope.get("subprotocols", [])
            if p.startswith(TICKET_PROTOCOL_PREFIX)
        ]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("ticket", [])
        tickets = offered + query
        client = scope.get("client")
        shake = _Handshake(
            origin=origin,
            address=str(client[0]) if client else None,
            ticket=tickets[0] if len(tickets) == 1 else None,
            via="subprotocol" if offered else ("query" if query else None),
            ambiguous=len(tickets) > 1,
        )
        if len(origins) > 1:
            # Browsers send one Origin; two are a forgery attempt: treat as unlisted.
            shake.origin = "invalid"
        return shake

    def _check_record(self, record: TicketRecord, origin: str | None, resource: str) -> None:
        if record.origin != origin:
            raise TicketOriginMismatchError(
                "the ticket was issued to another origin"
                if origin is not None
                else "the ticket was issued to a page; present it from that page"
            )
        if record.room is not None and record.room != resource:
            raise TicketRoomMismatchError("the ticket was issued for another room")
        if self.settings.ticket_scope not in record.scopes:
            raise TicketInvalidError(f"the token lacks the scope {self.settings.ticket_scope}")
        if record.exp <= self._clock() or (
            self._revocations is not None and self._revocations.is_revoked(record.claims())
        ):
            raise TicketInvalidError("the token behind the ticket is no longer valid")

    def _select_subprotocol(self, websocket: WebSocket, shake: _Handshake) -> str | None:
        offered: list[str] = websocket.scope.get("subprotocols", [])
        if self._subprotocol is not None and self._subprotocol in offered:
            return self._subprotocol
        if shake.via == "subprotocol" and shake.ticket is not None:
            # A browser fails the handshake unless one offered protocol comes back.
            return TICKET_PROTOCOL_PREFIX + shake.ticket
        return None

    async def _refuse(
        self,
        websocket: WebSocket,
        error: BarbacanaError,
        *,
        actor: dict[str, Any],
        resource: str,
        details: dict[str, Any],
    ) -> None:
        body = problem_body(
            error.status,
            code=error.code,
            title=error.title,
            detail=error.detail,
            instance=websocket.scope.get("path"),
        )
        response = Response(
            json.dumps(body, separators=(",", ":")).encode(),
            status_code=error.status,
            media_type=PROBLEM_CONTENT_TYPE,
            headers={"Cache-Control": "no-store"},
        )
        try:
            if "websocket.http.response" in websocket.scope.get("extensions", {}):
                await response(websocket.scope, websocket.receive, websocket.send)
            else:
                # Servers without denial responses answer a close before accept with 403.
                await websocket.close(CloseCode.POLICY_VIOLATION)
        except (OSError, RuntimeError, WebSocketDisconnect):
            pass
        await self._record(
            "ws.refused",
            actor=actor,
            outcome="denied",
            resource=resource,
            reason=error.code,
            details=details,
        )

    # -- checks on open sockets --------------------------------------------------

    async def _run(self) -> None:
        interval = self.settings.check_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_connections()
            except BarbacanaError as exc:
                _log.warning("ws_check_failed", code=exc.code)

    async def check_connections(self) -> None:
        """One round of checks on every open socket (run every ``check_interval``)."""
        now = self._clock()
        ping_after = self.settings.ping_interval.total_seconds()
        idle_after = self.settings.idle_timeout.total_seconds()
        revoked: dict[str, list[GuardedConnection[T]]] = {}
        for connection in list(self._connections.values()):
            if connection.closing:
                continue
            if connection.record.exp <= now:
                connection.close(CloseCode.UNAUTHORIZED, "token expired")
                continue
            if self._revocations is not None and self._revocations.is_revoked(connection.claims):
                revoked.setdefault(connection.record.sub, []).append(connection)
                continue
            silent = now - connection.last_seen
            if silent >= idle_after:
                connection.close(CloseCode.IDLE, "idle timeout")
            elif silent >= ping_after and not connection.pinged:
                connection.pinged = True
                connection.send(_PING)
        if revoked:
            await self._close_revoked(revoked)
        if self._counter is not None and now - self._renewed_at >= self._renew_every:
            self._renewed_at = now
            await self._counter.renew(
                (c.record.sub, c.id) for c in self._connections.values() if not c.closing
            )

    async def _close_revoked(self, revoked: Mapping[str, list[GuardedConnection[T]]]) -> None:
        subjects = list(revoked)
        statuses = await asyncio.gather(*(self._status(s) for s in subjects))
        for subject, status in zip(subjects, statuses, strict=True):
            for connection in revoked[subject]:
                if status is None:
                    connection.close(CloseCode.UNAUTHORIZED, "session revoked")
                elif not status.active:
                    connection.close(CloseCode.UNAUTHORIZED, "account disabled")
                elif not await self._still_admitted(connection, status):
                    connection.close(CloseCode.FORBIDDEN, "your roles no longer admit this room")
                else:
                    connection.close(CloseCode.UNAUTHORIZED, "session revoked")

    @staticmethod
    async def _still_admitted(connection: GuardedConnection[T], status: SubjectStatus) -> bool:
        try:
            return await connection.authorize(connection.record.with_roles(status.roles))
        except BarbacanaError:
            # Cannot tell: the token is void anyway, so close as revoked.
            return True

    async def _status(self, subject: str) -> SubjectStatus | None:
        if self._subjects is None:
            return None
        try:
            timeout = self.settings.check_interval.total_seconds()
            return await asyncio.wait_for(self._subjects(subject), timeout=timeout)
        except (BarbacanaError, TimeoutError):
            return None

    # -- bookkeeping -----------------------------------------------------------

    async def _closed(self, connection: GuardedConnection[T]) -> None:
        self._connections.pop(connection.id, None)
        if self._counter is not None:
            await self._counter.release(connection.record.sub, connection.id)
        code, reason = connection.close_code, connection.close_reason
        await self._record(
            "ws.closed",
            actor=connection.actor,
            outcome="success" if code in _ORDINARY else "denied",
            resource=connection.resource,
            reason=None if code in _ORDINARY else reason,
            details={
                "connection": connection.id,
                "code": code,
                "by": connection.closed_by,
                "seconds": round(self._clock() - connection.opened_at, 3),
            },
        )

    async def _record(self, action: str, **fields: Any) -> None:
        if self._audit is None:
            return
        try:
            await self._audit(action, **fields)
        except BarbacanaError as exc:
            # A refused or closed socket stays refused or closed; the failure is logged.
            _log.error("ws_audit_failed", action=action, code=exc.code)


class _Stop:
    """Wakes the sender to close."""


_STOP = _Stop()


class GuardedConnection(Generic[T]):
    """An accepted, policed WebSocket; use it as ``async with connection:``.

    Iterate :meth:`frames` for the valid application frames; :meth:`send` queues
    a frame (a model or pre-serialised JSON) without waiting; :meth:`close` asks
    for a close from anywhere (idempotent).
    """

    def __init__(
        self,
        guard: WebSocketGuard[T],
        websocket: WebSocket,
        record: TicketRecord,
        resource: str,
        connection_id: str,
        authorize: Authorize,
        actor: dict[str, Any],
    ) -> None:
        settings = guard.settings
        self._guard = guard
        self.websocket = websocket
        self.record = record
        self.claims = record.claims()
        self.resource = resource
        self.id = connection_id
        self.authorize = authorize
        self.actor = actor
        clock = guard._clock
        self._clock = clock
        self.opened_at = clock()
        #: When the client last sent a frame (any frame, pongs included).
        self.last_seen = self.opened_at
        #: A ping was sent since the client last spoke.
        self.pinged = False
        self._rate = MessageRate(settings.message_rate, settings.message_burst, clock=clock)
        self._max_bytes = settings.max_frame_bytes
        self._max_bad = settings.max_bad_frames
        self._queue_limit = settings.send_queue
        self._bad = 0
        self._queue: asyncio.Queue[str | _Stop] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._stop_waiter: asyncio.Future[Any] | None = None
        self._sender: asyncio.Task[None] | None = None
        #: The close code and reason, once closing (sent by us or received).
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by: Literal["server", "client"] | None = None

    def __repr__(self) -> str:
        return f"GuardedConnection(id={self.id!r}, resource={self.resource!r})"

    @property
    def username(self) -> str:
        """The user's name for display (their id when the token carried no name)."""
        return self.record.username or self.record.sub

    @property
    def closing(self) -> bool:
        """True once a close was asked for or received."""
        return self.close_code is not None

    async def __aenter__(self) -> GuardedConnection[T]:
        self._sender = asyncio.create_task(self._send_loop(), name=f"barbacana-ws-{self.id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            _log.error("ws_handler_failed", error=type(exc).__name__, connection=self.id)
            self.close(CloseCode.INTERNAL_ERROR, "internal error")
        elif not self.closing:
            self.close(CloseCode.NORMAL, "")
        sender = self._sender
        if sender is not None:
            try:
                await asyncio.wait_for(asyncio.shield(sender), timeout=_SENDER_GRACE)
            except TimeoutError:
                # A reader that never drains its socket: give up on a polite close.
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
        if self._stop_waiter is not None:
            self._stop_waiter.cancel()
        await self._guard._closed(self)

    def send(self, frame: Frame | str) -> bool:
        """Queue ``frame`` for this client; False if closing or it is not reading.

        A client that lets ``send_queue`` frames pile up is closed (1008), so one
        slow reader cannot make the server buffer without bound.
        """
        if self.closing:
            return False
        if self._queue.qsize() >= self._queue_limit:
            self.close(CloseCode.POLICY_VIOLATION, "not reading fast enough")
            return False
        self._queue.put_nowait(frame if isinstance(frame, str) else frame.model_dump_json())
        return True

    def close(self, code: int, reason: str) -> None:
        """Close with ``code`` and ``reason`` (at most 123 bytes); idempotent."""
        if self.closing:
            return
        self.close_code = int(code)
        self.close_reason = reason.encode()[:123].decode("utf-8", "ignore")
        self.closed_by = "server"
        self._stopping.set()
        self._queue.put_nowait(_STOP)

    async def _send_loop(self) -> None:
        websocket = self.websocket
        try:
            while True:
                item = await self._queue.get()
                if self.closing:
                    break
                if isinstance(item, str):
                    await websocket.send_text(item)
            if self.closed_by == "server" and self.close_code is not None:
                await websocket.close(self.close_code, self.close_reason)
        except (WebSocketDisconnect, OSError, RuntimeError):
            # The client is gone; nothing left to tell it.
            return

    async def _receive(self) -> dict[str, Any] | None:
        if self._stop_waiter is None:
            self._stop_waiter = asyncio.ensure_future(self._stopping.wait())
        receiving = asyncio.ensure_future(self.websocket.receive())
        done, _ = await asyncio.wait(
            (receiving, self._stop_waiter), return_when=asyncio.FIRST_COMPLETED
        )
        if receiving in done:
            return dict(receiving.result())
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await receiving
        return None

    async def frames(self) -> AsyncIterator[T]:
        """The client's valid application frames, until the connection closes."""
        while not self.closing:
            message = await self._receive()
            if message is None or self.closing:
                return
            if message["type"] == "websocket.disconnect":
                self.close_code = int(message.get("code") or 1005)
                self.close_reason = str(message.get("reason") or "")
                self.closed_by = "client"
                self._stopping.set()
                self._queue.put_nowait(_STOP)
                return
            self.last_seen = self._clock()
            self.pinged = False
            if not self._rate.allow():
                self.close(CloseCode.POLICY_VIOLATION, "message rate exceeded")
                return
            text = message.get("text")
            if text is None:
                if not self._bad_frame(FrameError("binary_frame", "send JSON text frames")):
                    return
                continue
            if len(text) * 4 > self._max_bytes and len(text.encode()) > self._max_bytes:
                # The server (ws_max_size) normally refuses it first, unbuffered.
                self.close(CloseCode.MESSAGE_TOO_BIG, "frame too large")
                return
            try:
                frame = self._guard._parser.parse(text)
            except FrameError as exc:
                if not self._bad_frame(exc):
                    return
                continue
            if isinstance(frame, PingFrame):
                self.send(_PONG)
            elif not isinstance(frame, PongFrame):
                yield frame

    def _bad_frame(self, error: FrameError) -> bool:
        """Answer a bad frame; False (and closing) once there were too many."""
        self._bad += 1
        if self._bad > self._max_bad:
            self.close(CloseCode.POLICY_VIOLATION, "too many invalid frames")
            return False
        self.send(ErrorFrame(code=error.frame_code, detail=error.detail))
        return True
