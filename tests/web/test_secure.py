"""secure(): problem+json for every error, headers and request id on every response."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI
from pydantic import Field

from barbacana.settings import Settings, WebSettings
from barbacana.web import StrictModel, secure


class Item(StrictModel):
    name: str = Field(min_length=1)
    quantity: int = Field(gt=0)


class ItemOut(StrictModel):
    name: str
    quantity: int


def make_app(**web: object) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None)

    @app.post("/items", response_model=ItemOut, status_code=201)
    async def create(item: Item) -> ItemOut:
        return ItemOut(name=item.name, quantity=item.quantity)

    @app.get("/boom", response_model=ItemOut)
    async def boom() -> ItemOut:
        raise RuntimeError("/srv/secret/path.py exploded with password=hunter2")

    settings = Settings(web=WebSettings(max_body_bytes=2048, **web))  # type: ignore[arg-type]
    return secure(app, settings)


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


SECURITY_HEADERS = ("x-content-type-options", "x-frame-options", "referrer-policy", "x-request-id")


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    for header in SECURITY_HEADERS:
        assert header in response.headers, header
    body = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


class TestProblems:
    async def test_not_found(self, client: httpx.AsyncClient) -> None:
        """An unknown path is a problem+json 404 with headers."""
        assert_problem(await client.get("/nope"), 404)

    async def test_method_not_allowed(self, client: httpx.AsyncClient) -> None:
        """A wrong method is a problem+json 405."""
        assert_problem(await client.delete("/items"), 405)

    async def test_validation_names_the_field(self, client: httpx.AsyncClient) -> None:
        """A bad field is a 422 naming that field."""
        body = assert_problem(await client.post("/items", json={"name": "a", "quantity": 0}), 422)
        assert "body.quantity" in str(body["detail"])
        assert body["errors"][0]["field"] == "body.quantity"  # type: ignore[index]

    @pytest.mark.parametrize("value", ["5", True, 1.5, None])
    async def test_no_lax_coercion(self, client: httpx.AsyncClient, value: object) -> None:
        """Strings, booleans and floats are not integers."""
        response = await client.post("/items", json={"name": "a", "quantity": value})
        assert_problem(response, 422)

    async def test_unknown_field_refused(self, client: httpx.AsyncClient) -> None:
        """Unknown fields are refused, not ignored (mass assignment)."""
        response = await client.post("/items", json={"name": "a", "quantity": 1, "owner": "x"})
        assert assert_problem(response, 422)["errors"][0]["field"] == "body.owner"  # type: ignore[index]

    async def test_malformed_json(self, client: httpx.AsyncClient) -> None:
        """Malformed JSON is a 4xx problem, not a 500."""
        response = await client.post(
            "/items", content=b'{"name": ', headers={"content-type": "application/json"}
        )
        assert response.status_code in (400, 422)
        assert_problem(response, response.status_code)

    async def test_body_too_large(self, client: httpx.AsyncClient) -> None:
        """A body over the limit is a 413 before the app parses it."""
        response = await client.post("/items", content=b"x" * 4096)
        assert_problem(response, 413)

    async def test_chunked_body_too_large(self, client: httpx.AsyncClient) -> None:
        """A chunked body (no Content-Length) over the limit is a 413 too."""

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(8):
                yield b"x" * 512

        response = await client.post("/items", content=chunks())
        assert_problem(response, 413)

    async def test_unexpected_error_hides_internals(self, client: httpx.AsyncClient) -> None:
        """An unexpected exception is a generic 500: no path, no message, no trace."""
        response = await client.get("/boom")
        body = assert_problem(response, 500)
        text = json.dumps(body)
        for leak in ("/srv", "hunter2", "RuntimeError", "Traceback", "exploded"):
            assert leak not in text


class TestRequestId:
    async def test_generated(self, client: httpx.AsyncClient) -> None:
        """A request without an id gets one."""
        response = await client.get("/health")
        assert len(response.headers["x-request-id"]) == 32

    async def test_echoed(self, client: httpx.AsyncClient) -> None:
        """A well-formed client id is echoed as sent."""
        response = await client.get("/health", headers={"X-Request-ID": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"

    @pytest.mark.parametrize("bad", ["a" * 200, "bad id", "x\tinjected", ""])
    async def test_invalid_replaced(self, client: httpx.AsyncClient, bad: str) -> None:
        """A malformed id is replaced, never echoed (log and header injection)."""
        response = await client.get("/health", headers={"X-Request-ID": bad})
        assert response.headers["x-request-id"] != bad


class TestHeaders:
    async def test_hsts_only_over_https(self) -> None:
        """HSTS is sent over HTTPS and not over plain HTTP (RFC 6797 §7.2)."""
        app = make_app()
        for base, expected in (("https://test", True), ("http://test", False)):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=base) as c:
                response = await c.get("/health")
            assert ("strict-transport-security" in response.headers) is expected

    async def test_ready_and_health(self, client: httpx.AsyncClient) -> None:
        """/health and /ready answer on every secured app."""
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert (await client.get("/ready")).json()["status"] == "ready"


class TestDocs:
    async def test_swagger_without_cdn(self) -> None:
        """Swagger UI loads its assets from the service, never from a CDN."""
        transport = httpx.ASGITransport(app=make_app(docs=True))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            page = await c.get("/docs")
            assert page.status_code == 200
            assert "cdn" not in page.text.lower()
            assert (await c.get("/docs/static/swagger-ui-bundle.js")).status_code == 200
            schema = (await c.get("/openapi.json")).json()
        responses = schema["paths"]["/items"]["post"]["responses"]
        assert "application/problem+json" in responses["422"]["content"]

    async def test_docs_off(self) -> None:
        """With docs off there is no /docs and no /openapi.json."""
        transport = httpx.ASGITransport(app=make_app(docs=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            assert (await c.get("/docs")).status_code == 404
            assert (await c.get("/openapi.json")).status_code == 404
