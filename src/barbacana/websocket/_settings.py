"""WebSocket settings: tickets, frame limits, rates, caps, keep-alive and room rules.

Read from the environment as ``BARBACANA_WEBSOCKET_<FIELD>`` once wired into
:class:`~barbacana.settings.Settings` as ``websocket``; for example
``BARBACANA_WEBSOCKET_MAX_FRAME_BYTES=8192`` or
``BARBACANA_WEBSOCKET_ROOMS='{"general": ["user", "admin"], "ops": ["admin"]}'``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigurationError

__all__ = ["ROOM_PATTERN", "WebSocketSettings", "uvicorn_ws_options", "valid_room"]

#: Room names: lowercase letters, digits, ``-`` and ``_``; at most 64 characters.
ROOM_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_ROOM = re.compile(ROOM_PATTERN)


def valid_room(name: object) -> bool:
    """True when ``name`` is a well-formed room name (see :data:`ROOM_PATTERN`)."""
    return isinstance(name, str) and _ROOM.fullmatch(name) is not None


class WebSocketSettings(BaseModel):
    """Limits of every WebSocket connection, and who may join which room.

    Defaults follow the chapter (§5.6): short single-use tickets instead of
    tokens in URLs, bounded frames, a per-connection message rate, a per-user
    connection cap, and keep-alive pings that find dead peers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: How long a ticket may wait before it is presented (single use either way).
    ticket_ttl: timedelta = Field(
        timedelta(seconds=30), ge=timedelta(seconds=1), le=timedelta(minutes=5)
    )
    #: Scope a token must hold to obtain a ticket.
    ticket_scope: str = Field("chat:use", min_length=1, max_length=64)
    #: Largest frame (or fragmented message) a client may send; larger closes with 1009
    #: before it is buffered (uvicorn ``ws_max_size``).
    max_frame_bytes: int = Field(16_384, ge=256, le=1_048_576)
    #: Sustained messages per second per connection (token bucket refill rate).
    message_rate: float = Field(5.0, gt=0, le=100_000)
    #: Messages a connection may send at once (token bucket size).
    message_burst: int = Field(10, ge=1, le=100_000)
    #: Open connections one user may hold, across every instance when Redis is shared.
    max_connections_per_user: int = Field(5, ge=1, le=1000)
    #: After this much silence from a client, the server pings it (protocol and application ping).
    ping_interval: timedelta = Field(timedelta(seconds=20), gt=timedelta(0))
    #: A client silent this long (no frame, no pong) is closed with 4408.
    idle_timeout: timedelta = Field(timedelta(seconds=60), gt=timedelta(0))
    #: Bad frames answered with an ``error`` frame; the next one closes with 1008.
    max_bad_frames: int = Field(3, ge=0, le=1000)
    #: Outgoing frames queued for one slow reader before it is closed (1008).
    send_queue: int = Field(256, ge=1, le=100_000)
    #: How often open sockets are checked against revocations, expiry and idleness.
    check_interval: timedelta = Field(
        timedelta(milliseconds=500), gt=timedelta(0), le=timedelta(seconds=5)
    )
    #: A connection count held in Redis by an instance that died is forgotten after this.
    connection_lease: timedelta = Field(timedelta(seconds=60), ge=timedelta(seconds=3))
    #: permessage-deflate: off, since compressing secrets next to attacker-chosen text
    #: leaks them through sizes (CRIME/BREACH) and inflating costs CPU.
    per_message_deflate: bool = False
    #: Prefix of the Redis keys and channel of tickets, connection counts and messages.
    key_prefix: str = Field("brb:ws", min_length=1, max_length=64)
    #: Rooms open by role: room name → roles admitted. Other rooms are private, with
    #: a member list kept by the chat service.
    rooms: dict[str, list[str]] = Field(
        default_factory=lambda: {"general": ["user", "admin"], "admins": ["admin"]}
    )

    @field_validator("rooms")
    @classmethod
    def _check_rooms(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, roles in value.items():
            if not valid_room(name):
                raise ConfigurationError(
                    f"websocket.rooms: {name!r} is not a room name (lowercase letters, digits, "
                    "'-' and '_', at most 64 characters)"
                )
            if not roles:
                raise ConfigurationError(
                    f"websocket.rooms: room {name!r} admits no role; list at least one"
                )
        return value

    @field_validator("key_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if "{" in value or "}" in value or any(c.isspace() for c in value):
            raise ConfigurationError("websocket.key_prefix must not contain braces or spaces")
        return value

    @model_validator(mode="after")
    def _check_keepalive(self) -> WebSocketSettings:
        if self.idle_timeout <= self.ping_interval:
            raise ConfigurationError(
                "websocket.idle_timeout must be longer than websocket.ping_interval, so a "
                "pinged client has time to answer"
            )
        return self


def uvicorn_ws_options(settings: WebSocketSettings) -> dict[str, Any]:
    """uvicorn options that make the server enforce these limits.

    ``ws_max_size`` makes the server refuse an oversize frame from its header,
    before buffering it (close 1009); protocol pings find dead TCP peers even when
    the application is idle. Pass them to ``uvicorn.Config`` or ``serve_config``.
    """
    interval = settings.ping_interval.total_seconds()
    return {
        "ws_max_size": settings.max_frame_bytes,
        "ws_ping_interval": interval,
        "ws_ping_timeout": settings.idle_timeout.total_seconds() - interval,
        "ws_per_message_deflate": settings.per_message_deflate,
    }
