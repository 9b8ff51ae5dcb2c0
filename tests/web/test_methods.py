"""secure(): a 405's Allow lists every method of the path; HEAD is served for GET (RFC 9110)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from barbacana.settings import Settings
from barbacana.web import secure
from tests.conftest import ServerThread


def make_app() -> FastAPI:
    """GET and DELETE on one path, declared directly, through included routers and mounted."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/things/{thing_id}")
    async def read(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @app.delete("/things/{thing_id}", status_code=204)
    async def delete(thing_id: int) -> None:
        return None

    # Two routers on one prefix: FastAPI keeps each behind its own included-router entry.
    readers, writers = APIRouter(prefix="/v1"), APIRouter(prefix="/v1")

    @readers.get("/things/{thing_id}")
    async def read_v1(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @writers.delete("/things/{thing_id}", status_code=204)
    async def delete_v1(thing_id: int) -> None:
        return None

    @writers.patch("/things/{thing_id}")
    async def patch_v1(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    outer = APIRouter(prefix="/api")
    outer.include_router(readers)
    outer.include_router(writers)
    app.include_router(readers)
    app.include_router(writers)
    app.include_router(outer)

    @app.post("/jobs")
    async def submit() -> dict[str, str]:
        return {"state": "queued"}

    @app.api_route("/ping", methods=["GET", "OPTIONS"])
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    @app.put("/locked")
    async def locked() -> None:
        # The handler refuses on its own terms: its Allow is its to give.
        raise HTTPException(405, headers={"Allow": "GET"})

    @app.get("/locked")
    async def read_locked() -> dict[str, bool]:
        return {"locked": True}

    async def plain(request: object) -> PlainTextResponse:
        return PlainTextResponse("plain")

    app.router.routes.append(Route("/plain", plain, methods=["GET"]))
    reports = FastAPI()

    @reports.get("/daily")
    async def daily() -> list[int]:
        return [1, 2, 3]

    @reports.post("/daily")
    async def add_daily() -> list[int]:
        return [4]

    app.mount("/reports", reports)
    return secure(app, Settings())


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def allowed(response: httpx.Response) -> list[str]:
    assert response.status_code == 405, response.text
    return [method.strip() for method in response.headers["allow"].split(",")]


class TestAllow:
    @pytest.mark.parametrize("method", ["PUT", "POST", "PATCH", "OPTIONS", "TRACE"])
    async def test_every_route_of_the_path(self, client: httpx.AsyncClient, method: str) -> None:
        """GET and DELETE on /things/{id} are both listed, with HEAD, whatever was tried."""
        response = await client.request(method, "/things/7")
        assert allowed(response) == ["GET", "HEAD", "DELETE"]
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "method_not_allowed"
        assert "x-request-id" in response.headers

    @pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
    async def test_included_routers(self, client: httpx.AsyncClient, prefix: str) -> None:
        """Routes of several included routers (nested too) on one path are all listed."""
        response = await client.put(f"{prefix}/things/7")
        assert allowed(response) == ["GET", "HEAD", "PATCH", "DELETE"]

    async def test_options_only_when_served(self, client: httpx.AsyncClient) -> None:
        """OPTIONS is listed where a route serves it, and nowhere else."""
        assert allowed(await client.delete("/ping")) == ["GET", "HEAD", "OPTIONS"]
        assert (await client.options("/ping")).status_code == 200
        assert "OPTIONS" not in allowed(await client.options("/things/7"))

    async def test_no_get_no_head(self, client: httpx.AsyncClient) -> None:
        """A path without GET lists neither GET nor HEAD, and refuses HEAD."""
        assert allowed(await client.get("/jobs")) == ["POST"]
        assert allowed(await client.head("/jobs")) == ["POST"]

    async def test_mounted_app(self, client: httpx.AsyncClient) -> None:
        """A mounted app's routes are asked under the mount's prefix."""
        assert allowed(await client.delete("/reports/daily")) == ["GET", "HEAD", "POST"]

    async def test_handler_refusal_keeps_its_allow(self, client: httpx.AsyncClient) -> None:
        """A 405 raised by the handler that matched keeps the Allow it chose."""
        assert allowed(await client.put("/locked")) == ["GET"]

    async def test_unknown_path_is_404(self, client: httpx.AsyncClient) -> None:
        """A path no route matches is 404, without Allow."""
        response = await client.put("/nothing/here")
        assert response.status_code == 404
        assert "allow" not in response.headers


class TestHead:
    @pytest.mark.parametrize("path", ["/things/7", "/v1/things/7", "/api/v1/things/7", "/plain"])
    async def test_head_is_get_without_content(self, client: httpx.AsyncClient, path: str) -> None:
        """HEAD answers with GET's status and headers and no content (RFC 9110 §9.3.2)."""
        get = await client.get(path)
        head = await client.head(path)
        assert (head.status_code, get.status_code) == (200, 200)
        assert head.content == b""
        assert get.content != b""
        assert head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["content-length"] == str(len(get.content))

    async def test_head_error_keeps_status(self, client: httpx.AsyncClient) -> None:
        """A HEAD that GET would refuse gets the same status, without the problem body."""
        head = await client.head("/things/not-a-number")
        assert head.status_code == 422
        assert head.content == b""
        assert head.headers["content-type"] == "application/problem+json"


def test_over_a_real_socket() -> None:
    """The same answers from uvicorn: Allow on the 405, HEAD framed without content."""
    with ServerThread(make_app()) as server, httpx.Client(base_url=server.url) as client:
        refused = client.request("OPTIONS", "/things/7")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD, DELETE"
        head = client.head("/v1/things/7")
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) == len(client.get("/v1/things/7").content)
        assert client.delete("/things/7").status_code == 204
