"""WebSocket errors: why a handshake was refused, or a frame was not accepted.

A refused handshake is answered with an HTTP status and a problem+json body
*before* the connection is upgraded, so a refused client never receives a
single WebSocket frame::

    AccessError (barbacana.errors)             403
     ├── TicketMissingError                      no ticket in the handshake
     ├── TicketInvalidError                      unknown, expired, already used, or token void
     ├── TicketOriginMismatchError               the ticket was bound to another Origin
     ├── TicketRoomMismatchError                 the ticket was bound to another room
     ├── TicketNotAvailableError                 a ticket needs a bearer access token
     ├── OriginNotAllowedError                   Origin not on the allow-list (CSWSH)
     └── RoomForbiddenError                      the room's rules do not admit the user
    RateLimitError (barbacana.errors)          429
     ├── ConnectionLimitError                    too many open connections for this user
     └── TicketStoreFullError                    the in-process ticket store is full
    StorageError (barbacana.errors)            503
     ├── TicketStoreUnavailableError             tickets cannot be issued or redeemed now
     ├── ConnectionStoreUnavailableError         connection counts cannot be checked now
     └── BrokerUnavailableError                  messages cannot be published now
    RequestError (barbacana.errors)            400
     └── FrameError                              one frame from a client was refused

:class:`FrameError` never ends a connection by itself: the client gets an
``error`` frame with the same ``code``; repeated bad frames close it (1008).
"""

from __future__ import annotations

from typing import Any

from ..errors import AccessError, RateLimitError, RequestError, StorageError

__all__ = [
    "BrokerUnavailableError",
    "ConnectionLimitError",
    "ConnectionStoreUnavailableError",
    "FrameError",
    "OriginNotAllowedError",
    "RoomForbiddenError",
    "TicketInvalidError",
    "TicketMissingError",
    "TicketNotAvailableError",
    "TicketOriginMismatchError",
    "TicketRoomMismatchError",
    "TicketStoreFullError",
    "TicketStoreUnavailableError",
]


class TicketMissingError(AccessError):
    """The handshake carried no ticket (subprotocol ``barbacana.ticket.*`` or ``?ticket=``)."""

    code = "ws_ticket_missing"
    title = "WebSocket ticket missing"


class TicketInvalidError(AccessError):
    """The ticket is unknown, expired or already used, or its token is no longer valid."""

    code = "ws_ticket_invalid"
    title = "WebSocket ticket invalid"


class TicketOriginMismatchError(AccessError):
    """The ticket was issued to a page of another origin (or to a program without one)."""

    code = "ws_ticket_origin_mismatch"
    title = "WebSocket ticket bound to another origin"


class TicketRoomMismatchError(AccessError):
    """The ticket was issued for another room."""

    code = "ws_ticket_room_mismatch"
    title = "WebSocket ticket bound to another room"


class TicketNotAvailableError(AccessError):
    """Tickets are issued for bearer access tokens only (they carry what revocation needs)."""

    code = "ws_ticket_needs_token"
    title = "WebSocket tickets need a bearer access token"


class OriginNotAllowedError(AccessError):
    """The ``Origin`` is not on the service's allow-list (cross-site WebSocket hijacking)."""

    code = "ws_origin_not_allowed"
    title = "Origin not allowed"


class RoomForbiddenError(AccessError):
    """The room does not exist or its rules do not admit this user (one answer for both)."""

    code = "ws_room_forbidden"
    title = "Room not available"


class ConnectionLimitError(RateLimitError):
    """The user already holds the maximum number of open connections."""

    code = "ws_connection_limit"
    title = "Too many WebSocket connections"


class TicketStoreFullError(RateLimitError):
    """The in-process ticket store holds its maximum of live tickets."""

    code = "ws_ticket_store_full"
    status = 503
    title = "Too many WebSocket tickets"


class TicketStoreUnavailableError(StorageError):
    """The ticket store (Redis, or the identity service) cannot be reached."""

    code = "ws_ticket_store_unavailable"
    title = "WebSocket tickets unavailable"


class ConnectionStoreUnavailableError(StorageError):
    """The shared connection counts (Redis) cannot be reached; the handshake is refused."""

    code = "ws_connection_store_unavailable"
    title = "WebSocket connections unavailable"


class BrokerUnavailableError(StorageError):
    """The message broker (Redis pub/sub) cannot be reached."""

    code = "ws_broker_unavailable"
    title = "Messages cannot be delivered now"


class FrameError(RequestError):
    """A frame from a client was refused; ``code`` names why, for the ``error`` frame.

    Args:
        code: Stable reason (``invalid_json``, ``unknown_type``, ``invalid_frame``...).
        detail: What was wrong, naming the field but never echoing the input.
    """

    code = "ws_frame_invalid"
    title = "Invalid frame"

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.frame_code = code
