"""The orders service: a resource service built only from Barbacana's public names.

It is the library's first user: it verifies tokens from the identity service's
JWKS, follows revocations, enforces scopes and ownership, and answers every
error as problem+json — exactly as a team's own service would.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Response, Security
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlalchemy import func, insert, select

from ...access import (
    Principal,
    RemoteIdentity,
    ResourceNotFoundError,
    actor_of,
    ensure_owner,
    require,
    require_role,
)
from ...errors import OutboundError
from ...outbound import OutboundPolicy, Resolver, SafeClient
from ...settings import Settings
from ...storage import Database
from ...web import StrictModel, secure
from .._protection import Protection
from ._tables import attachments, orders

__all__ = ["OrderIn", "OrderOut", "create_app"]

MIGRATIONS = Path(__file__).parent / "migrations"
OrderId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
MAX_ATTACHMENT_BYTES = 1_048_576
#: A missing order and someone else's answer alike.
_NO_SUCH_ORDER: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such order (or not yours)"}
}


class AttachmentFetchError(OutboundError):
    """The remote server did not answer the fetch with a success status."""

    code = "attachment_fetch_failed"
    status = 422
    title = "Attachment could not be fetched"


class OrderIn(StrictModel):
    """A complete order."""

    item: str = Field(min_length=1, max_length=200)
    quantity: int = Field(gt=0, le=10_000)


class OrderOut(BaseModel):
    id: int
    item: str
    quantity: int
    owner_id: str
    created_at: float


class AttachmentIn(StrictModel):
    """A remote file to attach, fetched through the SSRF-safe client."""

    url: str = Field(min_length=1, max_length=2048)


class AttachmentOut(BaseModel):
    id: int
    order_id: int
    url: str
    content_type: str | None
    size: int
    sha256: str
    created_at: float


class Dashboard(BaseModel):
    orders: int
    customers: int
    items: int


def _order(row: Any) -> OrderOut:
    return OrderOut(
        id=row.id,
        item=row.item,
        quantity=row.quantity,
        owner_id=row.owner_id,
        created_at=row.created_at,
    )


def create_app(
    settings: Settings,
    *,
    client_factory: Callable[..., httpx.AsyncClient] = httpx.AsyncClient,
    db: Database | None = None,
    resolver: Resolver | None = None,
) -> FastAPI:
    """The orders service.

    Args:
        settings: Service settings; ``tokens.identity_url`` names the identity service.
        client_factory: Builds clients for the identity service (mTLS in production).
        resolver: DNS resolver of the SSRF-safe client (tests pass a stub).
        db: The database (default: from ``settings``).
    """
    database = db or Database.from_settings(settings)
    remote = RemoteIdentity(settings, client_factory=client_factory)
    # Validated now: a bad outbound policy stops start-up with a fix-it message.
    outbound_policy = OutboundPolicy.from_settings(settings.outbound, profile=settings.profile)
    fetcher = SafeClient(outbound_policy, resolver=resolver)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await database.migrate(MIGRATIONS, "alembic_version_orders")
        await protection.open(database, settings.data_dir)
        await remote.start()
        try:
            yield
        finally:
            await remote.stop()
            await fetcher.aclose()
            await protection.close()
            await database.dispose()

    app = FastAPI(
        title="Barbacana orders service",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.barbacana_authenticator = remote.authenticator
    protection = Protection(app, settings, remote.authenticator, service="orders")
    app.state.remote_identity = remote
    app.state.db = database

    @app.get("/orders", response_model=list[OrderOut], summary="Your orders (all, for admins)")
    async def list_orders(
        principal: Principal = Security(require, scopes=["orders:read"]),
    ) -> list[OrderOut]:
        query = select(orders).order_by(orders.c.id).limit(500)
        if "orders:admin" not in principal.scopes:
            query = query.where(orders.c.owner_id == principal.subject)
        async with database.connect() as conn:
            return [_order(row) for row in (await conn.execute(query)).all()]

    @app.post("/orders", response_model=OrderOut, status_code=201, summary="Place an order")
    async def create_order(
        body: OrderIn,
        response: Response,
        principal: Principal = Security(require, scopes=["orders:write"]),
    ) -> OrderOut:
        values = {
            "owner_id": principal.subject,
            "item": body.item,
            "quantity": body.quantity,
            "created_at": time.time(),
        }
        async with database.begin() as conn:
            result = await conn.execute(insert(orders).values(**values).returning(orders.c.id))
            order_id = int(result.scalar_one())
        await protection.record(
            "order.created",
            actor=actor_of(principal),
            outcome="success",
            resource=f"order:{order_id}",
            details={"item": body.item, "quantity": body.quantity},
        )
        response.headers["Location"] = f"/orders/{order_id}"
        return OrderOut(id=order_id, **values)

    @app.get(
        "/orders/{order_id}",
        response_model=OrderOut,
        summary="One order (owner or admin)",
        responses=_NO_SUCH_ORDER,
    )
    async def get_order(
        order_id: OrderId,
        principal: Principal = Security(require, scopes=["orders:read"]),
    ) -> OrderOut:
        async with database.connect() as conn:
            row = (await conn.execute(select(orders).where(orders.c.id == order_id))).first()
        # A missing order and someone else's look the same: 404 either way.
        if row is None:
            raise ResourceNotFoundError("No such resource")
        ensure_owner(principal, row.owner_id, override_scope="orders:admin")
        return _order(row)

    @app.post(
        "/orders/{order_id}/attachments",
        response_model=AttachmentOut,
        status_code=201,
        summary="Attach a small remote file (fetched through the SSRF-safe client)",
        responses=_NO_SUCH_ORDER,
    )
    async def attach(
        order_id: OrderId,
        body: AttachmentIn,
        response: Response,
        principal: Principal = Security(require, scopes=["orders:write"]),
    ) -> AttachmentOut:
        async with database.connect() as conn:
            row = (await conn.execute(select(orders).where(orders.c.id == order_id))).first()
        if row is None:
            raise ResourceNotFoundError("No such resource")
        ensure_owner(principal, row.owner_id, override_scope="orders:admin")
        # Refused URLs raise an OutboundError: a 4xx problem+json at once, nothing stored.
        # The caller's own headers are never passed on.
        try:
            result = await fetcher.fetch(body.url, max_bytes=MAX_ATTACHMENT_BYTES)
        except OutboundError as exc:
            await protection.record(
                "attachment.refused",
                actor=actor_of(principal),
                outcome="denied",
                resource=f"order:{order_id}",
                reason=exc.code,
                details={"url": body.url[:512]},
            )
            raise
        if not 200 <= result.status < 300:
            raise AttachmentFetchError(f"the remote server answered {result.status}")
        values = {
            "order_id": order_id,
            "url": result.url,
            "content_type": result.content_type,
            "size": len(result.content),
            "sha256": hashlib.sha256(result.content).hexdigest(),
            "content": result.content,
            "created_at": time.time(),
        }
        async with database.begin() as conn:
            new_id = (
                await conn.execute(insert(attachments).values(**values).returning(attachments.c.id))
            ).scalar_one()
        response.headers["Location"] = f"/orders/{order_id}/attachments/{new_id}"
        values.pop("content")
        return AttachmentOut(id=int(new_id), **values)

    @app.get("/admin/dashboard", response_model=Dashboard, summary="Totals (role admin)")
    async def dashboard(_: Principal = require_role("admin")) -> Dashboard:
        async with database.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.count(orders.c.id),
                        func.count(func.distinct(orders.c.owner_id)),
                        func.coalesce(func.sum(orders.c.quantity), 0),
                    )
                )
            ).one()
        return Dashboard(orders=row[0], customers=row[1], items=row[2])

    return secure(
        app,
        settings,
        readiness={
            "database": database.check,
            "identity_keys": remote.ready,
            "ratelimit": protection.ready,
        },
        token_url=settings.tokens.endpoint("token"),
    )
