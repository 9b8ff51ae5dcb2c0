"""``GET /health`` (alive) and ``GET /ready`` (dependencies reachable)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.responses import JSONResponse

from ..errors import BarbacanaError

__all__ = ["ReadinessCheck", "health_router"]

#: An async check that raises a :class:`BarbacanaError` when its dependency is down.
ReadinessCheck = Callable[[], Awaitable[None]]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str]


def health_router(checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    """Routes for liveness and readiness; ``checks`` are looked up at call time."""
    router = APIRouter(tags=["health"])

    @router.get("/health", response_model=Health, summary="The process is alive")
    async def health() -> Health:
        return Health(status="ok")

    @router.get(
        "/ready",
        response_model=Readiness,
        summary="Every dependency is reachable and keys are loaded",
        responses={503: {"model": Readiness, "description": "A dependency is down"}},
    )
    async def ready() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await check()
            except BarbacanaError as exc:
                results[name] = exc.code
            else:
                results[name] = "ok"
        ok = all(value == "ok" for value in results.values())
        body = Readiness(status="ready" if ok else "not_ready", checks=results)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    return router
