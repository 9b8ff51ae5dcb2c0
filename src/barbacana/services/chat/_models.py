"""The chat protocol (``barbacana.chat.v1``) and the REST bodies of the chat service.

Client → server, JSON text frames::

    {"type": "message", "text": "hello"}
    {"type": "ping"}                      answered with {"type": "pong"}
    {"type": "pong"}                      the answer to a server ping

Server → client::

    {"type": "welcome", "room": "general", "user": "alice"}
    {"type": "message", "room": "general", "from": "alice", "text": "hello", "ts": 1700000000.0}
    {"type": "error", "code": "invalid_frame", "detail": "unknown field 'x'"}
    {"type": "ping"} / {"type": "pong"}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...web import StrictModel
from ...websocket import ROOM_PATTERN, Frame, PingFrame, PongFrame

__all__ = [
    "CHAT_PROTOCOL",
    "MAX_MESSAGE_CHARS",
    "ClientFrame",
    "MessageIn",
    "MessageOut",
    "RoomIn",
    "RoomOut",
    "WelcomeFrame",
]

#: The application subprotocol the chat service selects when a client offers it.
CHAT_PROTOCOL = "barbacana.chat.v1"
MAX_MESSAGE_CHARS = 2000


class MessageIn(Frame):
    """A message to the room the socket is in; at least one visible character."""

    type: Literal["message"]
    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, pattern=r"\S")


#: Everything a client may send, told apart by ``type``.
ClientFrame = Annotated[MessageIn | PingFrame | PongFrame, Field(discriminator="type")]


class MessageOut(Frame):
    """A message delivered to every member of the room (the sender included)."""

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, serialize_by_alias=True, validate_by_name=True
    )

    type: Literal["message"] = "message"
    room: str
    sender: str = Field(alias="from")
    text: str
    #: UNIX time the service accepted the message.
    ts: float


class WelcomeFrame(Frame):
    """The first frame of an accepted socket: which room, as whom."""

    type: Literal["welcome"] = "welcome"
    room: str
    user: str


class RoomIn(StrictModel):
    """A private room: its name and first members (the creator is always one)."""

    name: str = Field(pattern=ROOM_PATTERN)
    members: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=100
    )


class RoomOut(BaseModel):
    """A room the caller may join."""

    name: str
    #: ``roles``: open to the listed roles; ``members``: a private member list.
    kind: Literal["roles", "members"]
    roles: list[str] | None = None
    owner_id: str | None = None
