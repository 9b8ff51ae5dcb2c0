"""Frames: strict Pydantic models for everything a client sends and the server answers.

Every text frame from a client is parsed, in one pass, by a
:class:`FrameParser` over a discriminated union on ``type`` (strict: no
coercion, unknown fields refused), the WebSocket counterpart of validating a
request body (seed §5.4, §5.6). What the server sends is a model too, so it
cannot carry a field nobody declared.

:class:`CloseCode` lists the close codes sent: RFC 6455 §7.4.1 ones, and
4401/4403/4408 from the 4000-4999 range RFC 6455 leaves to applications.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .errors import FrameError

__all__ = [
    "CloseCode",
    "ErrorFrame",
    "Frame",
    "FrameParser",
    "PingFrame",
    "PongFrame",
]

T = TypeVar("T")


class CloseCode(IntEnum):
    """Close codes this package sends."""

    #: RFC 6455: normal closure.
    NORMAL = 1000
    #: RFC 6455: the server is going away (shutdown).
    GOING_AWAY = 1001
    #: RFC 6455: a policy was violated (message rate, repeated bad frames, slow reader).
    POLICY_VIOLATION = 1008
    #: RFC 6455: a frame was larger than the limit.
    MESSAGE_TOO_BIG = 1009
    #: RFC 6455: the server failed unexpectedly.
    INTERNAL_ERROR = 1011
    #: Application: the credentials behind the socket are no longer valid
    #: (logout, revoked family, disabled account, expired token) — like HTTP 401.
    UNAUTHORIZED = 4401
    #: Application: the user may no longer be in this room — like HTTP 403.
    FORBIDDEN = 4403
    #: Application: the client stopped answering pings — like HTTP 408.
    IDLE = 4408


class Frame(BaseModel):
    """Base of every frame: strict, closed, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class PingFrame(Frame):
    """``{"type": "ping"}``: either side asks for a ``pong`` (application keep-alive)."""

    type: Literal["ping"] = "ping"


class PongFrame(Frame):
    """``{"type": "pong"}``: the answer to a ``ping``."""

    type: Literal["pong"] = "pong"


class ErrorFrame(Frame):
    """``{"type": "error", "code": ..., "detail": ...}``: a frame from this client was refused."""

    type: Literal["error"] = "error"
    code: str = Field(max_length=64)
    detail: str = Field(max_length=500)


def _where(loc: tuple[int | str, ...]) -> str:
    # The first element is the union member's tag; the rest names the field.
    path = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(path) or "frame"


class FrameParser(Generic[T]):
    """Parses client frames into a discriminated union of :class:`Frame` models.

    Args:
        frames: The union, e.g. ``Annotated[MessageIn | PingFrame | PongFrame,
            Field(discriminator="type")]``.
    """

    def __init__(self, frames: Any) -> None:
        self._adapter: TypeAdapter[T] = TypeAdapter(frames)

    def parse(self, text: str) -> T:
        """The frame ``text`` encodes.

        Raises:
            FrameError: Not JSON (``invalid_json``), no or unknown ``type``
                (``missing_type``, ``unknown_type``), or a field is missing, extra
                or of the wrong type (``invalid_frame``). The detail names the field,
                never the input.
        """
        try:
            return self._adapter.validate_json(text, strict=True)
        except ValidationError as exc:
            raise _frame_error(exc) from None


def _frame_error(exc: ValidationError) -> FrameError:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0] if errors else {"type": "", "loc": (), "msg": "invalid"}
    kind = first["type"]
    if kind == "json_invalid":
        return FrameError("invalid_json", "the frame is not valid JSON")
    if kind == "union_tag_invalid":
        return FrameError("unknown_type", "unknown frame type")
    if kind == "union_tag_not_found":
        return FrameError("missing_type", "the frame has no 'type' field")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return FrameError("invalid_frame", "a frame must be a JSON object")
    where = _where(tuple(first["loc"]))
    if kind == "extra_forbidden":
        return FrameError("invalid_frame", f"unknown field '{where}'")
    if kind == "missing":
        return FrameError("invalid_frame", f"missing field '{where}'")
    return FrameError("invalid_frame", f"field '{where}': {first['msg']}")
