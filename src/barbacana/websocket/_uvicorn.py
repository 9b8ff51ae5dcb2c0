"""uvicorn's WebSocket protocol, finishing a denied handshake cleanly.

A handshake refused with an HTTP response (the ASGI WebSocket Denial Response
extension, which :class:`~barbacana.websocket.WebSocketGuard` uses to answer
problem+json) is complete once the response body is sent, but uvicorn 0.54's
sans-I/O protocol does not record that, and logs "ASGI callable returned
without completing handshake" at ERROR for every refusal: noise an attacker
could use to flood the logs. This subclass records it.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["WebSocketsProtocol"]


class WebSocketsProtocol(WebSocketsSansIOProtocol):
    """uvicorn's default WebSocket protocol; a sent denial response completes the handshake."""

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True
