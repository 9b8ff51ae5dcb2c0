"""WebSockets protected as strictly as REST (seed §5.6).

* tickets: a client trades its bearer token for a short, single-use ticket
  bound to its ``Origin`` (:class:`TicketStore`, :class:`IdentityTickets`);
* :class:`WebSocketGuard` authenticates the handshake before accepting it
  (Origin allow-list, ticket, room rules, per-user connection cap) and polices
  each :class:`GuardedConnection`: strict frame models, size and rate limits,
  idle pings, and closes within seconds of a logout or revocation;
* :class:`Broker` fans messages out across instances (Redis pub/sub).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._broker import Broker, MemoryBroker, PayloadHandler, RedisBroker, broker_from_url
from ._frames import CloseCode, ErrorFrame, Frame, FrameParser, PingFrame, PongFrame
from ._limits import (
    ConnectionCounter,
    MemoryConnectionCounter,
    MessageRate,
    RedisConnectionCounter,
    connection_counter_from_url,
)
from ._settings import ROOM_PATTERN, WebSocketSettings, uvicorn_ws_options, valid_room
from ._tickets import (
    MemoryTicketStore,
    RedisTicketStore,
    TicketRecord,
    TicketRedeemer,
    TicketStore,
    new_ticket,
    ticket_digest,
    ticket_expiry,
    ticket_store_from_url,
    well_formed_ticket,
)
from .errors import (
    BrokerUnavailableError,
    ConnectionLimitError,
    ConnectionStoreUnavailableError,
    FrameError,
    OriginNotAllowedError,
    RoomForbiddenError,
    TicketInvalidError,
    TicketMissingError,
    TicketNotAvailableError,
    TicketOriginMismatchError,
    TicketRoomMismatchError,
    TicketStoreFullError,
    TicketStoreUnavailableError,
)

if TYPE_CHECKING:
    from ._guard import (
        TICKET_PROTOCOL_PREFIX,
        AuditRecorder,
        Authorize,
        GuardedConnection,
        SubjectLookup,
        SubjectStatus,
        WebSocketGuard,
    )
    from ._remote import REDEEM_PATH, SUBJECT_PATH, TICKETS_PATH, IdentityTickets
    from ._uvicorn import WebSocketsProtocol

__all__ = [
    "REDEEM_PATH",
    "ROOM_PATTERN",
    "SUBJECT_PATH",
    "TICKETS_PATH",
    "TICKET_PROTOCOL_PREFIX",
    "AuditRecorder",
    "Authorize",
    "Broker",
    "BrokerUnavailableError",
    "CloseCode",
    "ConnectionCounter",
    "ConnectionLimitError",
    "ConnectionStoreUnavailableError",
    "ErrorFrame",
    "Frame",
    "FrameError",
    "FrameParser",
    "GuardedConnection",
    "IdentityTickets",
    "MemoryBroker",
    "MemoryConnectionCounter",
    "MemoryTicketStore",
    "MessageRate",
    "OriginNotAllowedError",
    "PayloadHandler",
    "PingFrame",
    "PongFrame",
    "RedisBroker",
    "RedisConnectionCounter",
    "RedisTicketStore",
    "RoomForbiddenError",
    "SubjectLookup",
    "SubjectStatus",
    "TicketInvalidError",
    "TicketMissingError",
    "TicketNotAvailableError",
    "TicketOriginMismatchError",
    "TicketRecord",
    "TicketRedeemer",
    "TicketRoomMismatchError",
    "TicketStore",
    "TicketStoreFullError",
    "TicketStoreUnavailableError",
    "WebSocketGuard",
    "WebSocketSettings",
    "WebSocketsProtocol",
    "broker_from_url",
    "connection_counter_from_url",
    "new_ticket",
    "ticket_digest",
    "ticket_expiry",
    "ticket_store_from_url",
    "uvicorn_ws_options",
    "valid_room",
    "well_formed_ticket",
]

# The guard and the identity-service client need the web layer (and so the
# settings): loaded on first use, so ``barbacana.settings`` can import this
# package's settings model without a cycle.
_LAZY = {
    "TICKET_PROTOCOL_PREFIX": "._guard",
    "AuditRecorder": "._guard",
    "Authorize": "._guard",
    "GuardedConnection": "._guard",
    "SubjectLookup": "._guard",
    "SubjectStatus": "._guard",
    "WebSocketGuard": "._guard",
    "REDEEM_PATH": "._remote",
    "SUBJECT_PATH": "._remote",
    "TICKETS_PATH": "._remote",
    "IdentityTickets": "._remote",
    "WebSocketsProtocol": "._uvicorn",
}


def __getattr__(name: str) -> Any:
    """Load the guard, the identity-service client and the uvicorn protocol on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module, __name__), name)
