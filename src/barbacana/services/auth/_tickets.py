"""WebSocket tickets on the identity service: ``POST /ws/tickets`` and two internal endpoints.

``POST /ws/tickets`` trades the caller's bearer token for a single-use
ticket (see :mod:`barbacana.websocket`); its body is empty, ``{}`` or
``{"room": "general"}``. The ticket is bound to the ``Origin`` of the request
(which must be on the CORS allow-list) or, for a program that sent none, to
no origin. The internal endpoints are for the chat service only — its peer
certificate over TLS and its client credentials, like ``/internal/revocations``:

- ``POST /internal/ws/tickets/redeem`` takes a ticket once and answers what it stands for;
- ``GET /internal/ws/subjects/{sub}`` answers whether a user is active and their roles.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Request, Security
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...access import Principal, actor_of, require
from ...identity import Identity, ServiceClient, UserNotFoundError
from ...settings import Settings
from ...web import StrictModel
from ...web.cors import CorsPolicy
from ...websocket import (
    REDEEM_PATH,
    ROOM_PATTERN,
    SUBJECT_PATH,
    TICKETS_PATH,
    OriginNotAllowedError,
    TicketNotAvailableError,
    TicketRecord,
    TicketStore,
    WebSocketSettings,
    ticket_expiry,
    ticket_store_from_url,
)

__all__ = ["TicketIn", "TicketOut", "ticket_router"]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: The only service that may redeem tickets and read users' state.
TICKET_CLIENTS = ("chat",)


class TicketIn(StrictModel):
    """Optional body of ``POST /ws/tickets``: bind the ticket to one room."""

    room: str | None = Field(None, pattern=ROOM_PATTERN)


class TicketOut(BaseModel):
    """A ticket to present in the WebSocket handshake, once, within ``expires_in`` seconds."""

    ticket: str
    expires_in: int


class RedeemIn(StrictModel):
    ticket: str = Field(min_length=1, max_length=128)


class RedeemOut(BaseModel):
    #: What the ticket stood for; ``null`` when it was unknown, expired or used.
    record: TicketRecord | None


class SubjectOut(BaseModel):
    sub: str
    active: bool
    roles: list[str]


def _identity(request: Request) -> Identity:
    identity: Identity = request.app.state.identity
    return identity


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _origin(request: Request, policy: CorsPolicy) -> str | None:
    origins = request.headers.getlist("origin")
    if not origins:
        return None
    if len(origins) > 1 or not policy.is_allowed_origin(origins[0]):
        raise OriginNotAllowedError("this Origin may not obtain WebSocket tickets")
    return origins[0]


def ticket_router(
    settings: Settings,
    websocket: WebSocketSettings | None = None,
    *,
    store: TicketStore | None = None,
) -> APIRouter:
    """The ticket endpoints, for ``app.include_router`` on the identity service.

    Args:
        settings: The identity service's settings (CORS allow-list, Redis URL).
        websocket: WebSocket settings (default: ``settings.websocket``).
        store: Where tickets wait (default: Redis when ``settings.redis.url`` is set,
            else this process). The router closes it when the app stops.
    """
    from .app import ServiceClientAuth

    ws: WebSocketSettings = websocket or getattr(settings, "websocket", None) or WebSocketSettings()
    redis_url = settings.redis.url.get_secret_value() if settings.redis.url else None
    tickets = store or ticket_store_from_url(redis_url, key_prefix=ws.key_prefix)
    # Validated now: a bad CORS configuration stops start-up.
    policy = CorsPolicy.from_settings(settings.cors)
    ttl = ws.ticket_ttl.total_seconds()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await tickets.aclose()

    router = APIRouter(tags=["websocket"], lifespan=lifespan)

    @router.post(
        TICKETS_PATH,
        response_model=TicketOut,
        summary="A single-use WebSocket ticket for the calling user",
        responses={403: {"description": "Origin not allowed, or not a bearer token"}},
    )
    async def issue(
        request: Request,
        body: Annotated[TicketIn | None, Body()] = None,
        principal: Principal = Security(require, scopes=[ws.ticket_scope]),
    ) -> JSONResponse:
        identity = _identity(request)
        token = _bearer(request)
        if token is None or principal.kind == "api_key":
            raise TicketNotAvailableError("send an access token: Authorization: Bearer <token>")
        origin = _origin(request, policy)
        # Verified a moment ago by require(): this hits the verified-token cache.
        claims = identity.verifier.verify(token)
        now = identity.clock()
        room = body.room if body is not None else None
        record = TicketRecord.from_claims(
            claims, origin=origin, room=room, expires_at=ticket_expiry(now, ttl, claims.exp)
        )
        ticket = await tickets.issue(record)
        await identity.audit(
            "ws.ticket.issued",
            actor=actor_of(principal),
            outcome="success",
            resource=f"room:{room}" if room else None,
            details={"origin": origin},
        )
        out = TicketOut(ticket=ticket, expires_in=max(1, round(record.expires_at - now)))
        return JSONResponse(out.model_dump(), headers=_NO_STORE)

    @router.post(
        REDEEM_PATH,
        response_model=RedeemOut,
        summary="Redeem a WebSocket ticket (chat service only)",
    )
    async def redeem(
        body: RedeemIn,
        client: ServiceClient = Depends(ServiceClientAuth(*TICKET_CLIENTS)),
    ) -> JSONResponse:
        record = await tickets.redeem(body.ticket)
        out = {"record": None if record is None else record.model_dump(mode="json")}
        return JSONResponse(out, headers=_NO_STORE)

    @router.get(
        SUBJECT_PATH,
        response_model=SubjectOut,
        summary="Whether a user is active, and their roles (chat service only)",
    )
    async def subject(
        request: Request,
        sub: Annotated[str, Path(min_length=1, max_length=256)],
        client: ServiceClient = Depends(ServiceClientAuth(*TICKET_CLIENTS)),
    ) -> dict[str, Any]:
        try:
            user = await _identity(request).users.get(sub)
        except UserNotFoundError:
            return {"sub": sub, "active": False, "roles": []}
        return {"sub": user.id, "active": not user.disabled, "roles": list(user.roles)}

    return router
