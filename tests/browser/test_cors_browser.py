"""Strict CORS in a real browser: headless Chromium, three servers, three origins.

Page A (the allowed origin) and page B (another port, so another origin) each
serve a blank page; the API server runs StrictCORSMiddleware allowing only A,
with credentials. What matters is what each page can *read*: a cross-origin
request blocked by CORS may still reach the server, so the server side is
checked separately.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from tests.conftest import ServerThread, free_port, missing

from barbacana.settings import CorsSettings
from barbacana.web.cors import CorsPolicy, StrictCORSMiddleware

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Recorder:
    """Outermost ASGI layer: records every request that reached the API server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str, str | None, bool]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.seen.append(
                (scope["method"], scope["path"], headers.get("origin"), "authorization" in headers)
            )
        await self.app(scope, receive, send)


def page_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return "<!doctype html><title>page</title><p>page</p>"

    return app


def api_app(allowed_origin: str) -> Recorder:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/me")
    async def me(request: Request, response: Response) -> dict[str, Any]:
        response.headers["X-Total"] = "7"
        response.headers["X-Hidden"] = "internal"
        return {
            "cookie": request.cookies.get("sid"),
            "authorization": request.headers.get("authorization"),
        }

    policy = CorsPolicy.from_settings(
        CorsSettings(
            origins=[allowed_origin],
            allow_credentials=True,
            methods=["GET", "POST"],
            headers=["Authorization", "Content-Type"],
            expose_headers=["X-Total"],
        )
    )
    return Recorder(StrictCORSMiddleware(app, policy))


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Any]]:
    if not CHROMIUM.exists():
        missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    page_a_port = free_port()
    page_a = f"http://127.0.0.1:{page_a_port}"
    api = api_app(page_a)
    with (
        ServerThread(page_app(), port=page_a_port),
        ServerThread(page_app()) as page_b,
        ServerThread(api) as api_server,
    ):
        yield {"a": page_a, "b": page_b.url, "api": api_server.url, "recorder": api}


READ_WITH_COOKIE = """async (api) => {
    try {
        const r = await fetch(api + "/me", {credentials: "include"});
        return {status: r.status, body: await r.json(),
                total: r.headers.get("X-Total"), hidden: r.headers.get("X-Hidden")};
    } catch (e) { return {error: String(e)}; }
}"""

READ_WITH_AUTHORIZATION = """async (api) => {
    try {
        const r = await fetch(api + "/me", {headers: {Authorization: "Bearer page-token"}});
        return {status: r.status, body: await r.json()};
    } catch (e) { return {error: String(e)}; }
}"""


@pytest.mark.slow
async def test_only_the_allowed_origin_reads(servers: dict[str, Any]) -> None:
    """Page A reads the API with a cookie and with Authorization; page B reads nothing."""
    from playwright.async_api import async_playwright

    api, recorder = servers["api"], servers["recorder"]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context()
            await context.add_cookies([{"name": "sid", "value": "s3cret", "url": api}])
            page = await context.new_page()

            await page.goto(servers["a"] + "/")
            allowed = await page.evaluate(READ_WITH_COOKIE, api)
            allowed_auth = await page.evaluate(READ_WITH_AUTHORIZATION, api)

            await page.goto(servers["b"] + "/")
            recorder.seen.clear()
            other = await page.evaluate(READ_WITH_COOKIE, api)
            other_auth = await page.evaluate(READ_WITH_AUTHORIZATION, api)
            seen_from_b = list(recorder.seen)
        finally:
            await browser.close()

    # The allowed origin reads the body, the exposed header, and nothing it was not given.
    assert allowed["status"] == 200
    assert allowed["body"] == {"cookie": "s3cret", "authorization": None}
    assert (allowed["total"], allowed["hidden"]) == ("7", None)
    # Without credentials: "include" the browser sends no cookie cross-origin.
    assert allowed_auth == {
        "status": 200,
        "body": {"cookie": None, "authorization": "Bearer page-token"},
    }

    # The other origin reads nothing: the browser turns both into network errors.
    assert set(other) == {"error"}
    assert set(other_auth) == {"error"}

    # Server side: B's simple GET did arrive (CORS limits reading, not sending), while
    # its Authorization request stopped at the refused preflight and was never sent.
    b = servers["b"]
    assert ("GET", "/me", b, False) in seen_from_b
    assert ("OPTIONS", "/me", b, False) in seen_from_b
    assert not any(method == "GET" and auth for method, _, _, auth in seen_from_b)
