"""Strict CORS over real HTTP: exact origins, preflights, Vary, credentials, refused configs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from barbacana.errors import ConfigurationError
from barbacana.settings import CorsSettings, Settings
from barbacana.web.cors import CorsPolicy, StrictCORSMiddleware, normalize_origin
from tests.conftest import ServerThread

APP = "https://app.example.com"
DEV = "http://localhost:3000"
EVIL = "https://evil.example"


def aca_headers(response: httpx.Response) -> dict[str, str]:
    """Every Access-Control-* response header."""
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def vary(response: httpx.Response) -> set[str]:
    return {v.strip().lower() for v in ",".join(response.headers.get_list("vary")).split(",") if v}


def make_app(policy: CorsPolicy) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.hits = []

    @app.get("/items")
    async def items(request: Request, response: Response) -> dict[str, Any]:
        request.app.state.hits.append(("GET", request.headers.get("origin")))
        response.headers["X-Total"] = "2"
        return {"items": ["a", "b"], "cookie": request.cookies.get("sid")}

    @app.put("/items")
    async def put_items(request: Request) -> dict[str, str]:
        request.app.state.hits.append(("PUT", request.headers.get("origin")))
        return {"ok": "yes"}

    @app.get("/rogue")
    async def rogue(response: Response) -> dict[str, str]:
        # A handler that tries to set its own CORS headers: the policy wins.
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Accept-Encoding"
        return {"rogue": "yes"}

    app.add_middleware(StrictCORSMiddleware, policy=policy)
    return app


STRICT = CorsSettings(
    origins=[APP, DEV],
    allow_credentials=True,
    methods=["GET", "POST", "PUT"],
    headers=["Authorization", "Content-Type", "X-Request-ID"],
    expose_headers=["X-Request-ID", "X-Total"],
    max_age=600,
)


@pytest.fixture(scope="module")
def strict() -> Iterator[tuple[str, FastAPI]]:
    app = make_app(CorsPolicy.from_settings(STRICT))
    with ServerThread(app) as server:
        yield server.url, app


@pytest.fixture(scope="module")
def public() -> Iterator[str]:
    policy = CorsPolicy.from_settings(CorsSettings(origins=["*"], expose_headers=[]))
    with ServerThread(make_app(policy)) as server:
        yield server.url


@pytest.fixture
async def client(strict: tuple[str, FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=strict[0], trust_env=False) as c:
        yield c


class TestActualRequests:
    """Simple requests: allow headers only for listed origins, Vary always."""

    async def test_allowed_origin(self, client: httpx.AsyncClient) -> None:
        """The exact origin is echoed, with credentials and exposed headers."""
        r = await client.get("/items", headers={"Origin": APP})
        assert r.status_code == 200
        assert aca_headers(r) == {
            "access-control-allow-origin": APP,
            "access-control-allow-credentials": "true",
            "access-control-expose-headers": "X-Request-ID, X-Total",
        }
        assert "origin" in vary(r)

    @pytest.mark.parametrize(
        "origin",
        [
            EVIL,
            "https://app.example.com.evil.example",
            "https://evilapp.example.com",
            "https://sub.app.example.com",
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://APP.example.com",
            "https://app.example.com/",
            "null",
            "",
            "http://localhost:3001",
            "http://localhost",
        ],
    )
    async def test_unlisted_origin(
        self, client: httpx.AsyncClient, strict: tuple[str, FastAPI], origin: str
    ) -> None:
        """The request reaches the app, but the response carries no allow headers."""
        hits = strict[1].state.hits
        before = len(hits)
        r = await client.get("/items", headers={"Origin": origin})
        assert r.status_code == 200
        assert aca_headers(r) == {}
        assert "origin" in vary(r)
        assert hits[before:] == [("GET", origin)]

    async def test_no_origin(self, client: httpx.AsyncClient) -> None:
        """Same-origin and non-browser requests get no CORS headers, but Vary: Origin."""
        r = await client.get("/items")
        assert aca_headers(r) == {}
        assert "origin" in vary(r)

    async def test_two_origin_headers(self, client: httpx.AsyncClient) -> None:
        """Duplicate Origin headers are not a browser's: nothing is allowed."""
        r = await client.get("/items", headers=[("Origin", APP), ("Origin", APP)])
        assert aca_headers(r) == {}

    async def test_app_cannot_widen_the_policy(self, client: httpx.AsyncClient) -> None:
        """CORS headers set by a handler are replaced; its Vary is kept and extended."""
        r = await client.get("/rogue", headers={"Origin": EVIL})
        assert aca_headers(r) == {}
        assert vary(r) == {"accept-encoding", "origin"}
        r = await client.get("/rogue", headers={"Origin": APP})
        assert r.headers["access-control-allow-origin"] == APP
        assert r.headers.get_list("access-control-allow-origin") == [APP]


class TestPreflight:
    """Preflights are answered by the middleware; refusals carry no allow headers."""

    @staticmethod
    def preflight(origin: str, method: str = "PUT", headers: str | None = None) -> dict[str, str]:
        h = {"Origin": origin, "Access-Control-Request-Method": method}
        if headers is not None:
            h["Access-Control-Request-Headers"] = headers
        return h

    async def test_allowed(self, client: httpx.AsyncClient, strict: tuple[str, FastAPI]) -> None:
        """204 with origin, methods, headers, credentials and max age; the app is not called."""
        before = len(strict[1].state.hits)
        r = await client.options(
            "/items", headers=self.preflight(APP, "PUT", "authorization, content-type")
        )
        assert r.status_code == 204
        assert aca_headers(r) == {
            "access-control-allow-origin": APP,
            "access-control-allow-credentials": "true",
            "access-control-expose-headers": "X-Request-ID, X-Total",
            "access-control-allow-methods": "GET, POST, PUT",
            "access-control-allow-headers": "Authorization, Content-Type, X-Request-ID",
            "access-control-max-age": "600",
        }
        assert {
            "origin",
            "access-control-request-method",
            "access-control-request-headers",
        } <= vary(r)
        assert len(strict[1].state.hits) == before

    async def test_safelisted_header_allowed(self, client: httpx.AsyncClient) -> None:
        """Accept-Language and friends may be named without being configured."""
        r = await client.options("/items", headers=self.preflight(DEV, "GET", "accept-language"))
        assert r.status_code == 204

    @pytest.mark.parametrize(
        ("origin", "method", "headers", "reason"),
        [
            (EVIL, "PUT", None, "origin"),
            ("null", "GET", None, "origin"),
            ("https://app.example.com:443", "GET", None, "origin"),
            (APP, "DELETE", None, "method"),
            (APP, "put", None, "method"),
            (APP, "PUT", "authorization, x-evil", "header"),
            (APP, "PUT", "cookie", "header"),
        ],
    )
    async def test_refused(
        self,
        client: httpx.AsyncClient,
        origin: str,
        method: str,
        headers: str | None,
        reason: str,
    ) -> None:
        """403 problem+json naming what was refused, and no allow header at all."""
        r = await client.options("/items", headers=self.preflight(origin, method, headers))
        assert r.status_code == 403
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert (body["status"], body["code"]) == (403, "cors_preflight_refused")
        assert reason in body["detail"]
        assert aca_headers(r) == {}
        assert "origin" in vary(r)

    async def test_plain_options_is_not_a_preflight(self, client: httpx.AsyncClient) -> None:
        """OPTIONS without Access-Control-Request-Method goes to the app like any request."""
        r = await client.options("/items", headers={"Origin": APP})
        assert r.status_code == 405
        assert r.headers["access-control-allow-origin"] == APP


class TestWildcard:
    """``*`` without credentials: any origin reads, nobody's cookies are involved."""

    async def test_any_origin(self, public: str) -> None:
        """``*`` is sent, never credentials, and the response does not vary by Origin."""
        async with httpx.AsyncClient(base_url=public, trust_env=False) as c:
            r = await c.get("/items", headers={"Origin": EVIL})
            assert aca_headers(r) == {"access-control-allow-origin": "*"}
            assert "origin" not in vary(r)
            p = await c.options(
                "/items", headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"}
            )
            assert p.status_code == 204
            assert p.headers["access-control-allow-origin"] == "*"
            assert "access-control-allow-credentials" not in p.headers
            n = await c.get("/items", headers={"Origin": "null"})
            assert aca_headers(n) == {}


class TestConfiguration:
    """Unsafe or malformed configurations stop start-up with a fix-it message."""

    @pytest.mark.parametrize(
        ("settings", "fragment"),
        [
            ({"origins": ["*"], "allow_credentials": True}, "turn credentials off"),
            ({"origins": ["*", APP]}, "either '*' alone"),
            ({"origins": ["null"]}, "must not contain 'null'"),
            ({"origins": ["NULL"]}, "must not contain 'null'"),
            ({"origins": [APP + "/"]}, "remove the trailing slash"),
            ({"origins": [APP + "/app"]}, "path, query or fragment"),
            ({"origins": [APP + "?x=1"]}, "path, query or fragment"),
            ({"origins": [APP + "#top"]}, "path, query or fragment"),
            ({"origins": ["https://user@app.example.com"]}, "userinfo"),
            ({"origins": ["ftp://app.example.com"]}, "http or https"),
            ({"origins": ["app.example.com"]}, "scheme://host[:port]"),
            ({"origins": ["https://*.example.com"]}, "list each one"),
            ({"origins": ["https://app.example.com:99999"]}, "invalid port"),
            ({"origins": ["https://app.example.com:x"]}, "invalid port"),
            ({"origins": [" https://app.example.com"]}, "spaces"),
            ({"origins": ["https://[::1"]}, "IPv6"),
            ({"origins": ["https://"]}, "no host"),
            ({"origins": ["https://exa_mple.com"]}, "invalid host name"),
            ({"origins": ["http://127.1"]}, "four decimal numbers"),
            ({"methods": ["*"]}, "not '*'"),
            ({"methods": ["TRACE"]}, "browsers never send it"),
            ({"methods": ["GE T"]}, "not an HTTP method"),
            ({"headers": ["*"]}, "not '*'"),
            ({"headers": ["X Bad"]}, "not a header name"),
            ({"expose_headers": ["*"]}, "not '*'"),
        ],
    )
    def test_refused(self, settings: dict[str, Any], fragment: str) -> None:
        """Each is a ConfigurationError whose message says how to fix it."""
        with pytest.raises(ConfigurationError, match=re.escape(fragment)):
            CorsPolicy.from_settings(CorsSettings(**settings))

    def test_wildcard_with_credentials_from_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Invariant 7, as an operator would hit it: env settings that cannot start."""
        monkeypatch.setenv("BARBACANA_CORS_ORIGINS", '["*"]')
        monkeypatch.setenv("BARBACANA_CORS_ALLOW_CREDENTIALS", "true")
        settings = Settings(_env_file=None)
        with pytest.raises(ConfigurationError, match="credentials"):
            CorsPolicy.from_settings(settings.cors)

    @pytest.mark.parametrize(
        ("configured", "normalised"),
        [
            ("HTTPS://App.Example.COM:443", "https://app.example.com"),
            ("http://localhost:80", "http://localhost"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("https://b\u00fccher.example", "https://xn--bcher-kva.example"),
            ("http://[0:0::1]:8080", "http://[::1]:8080"),
            ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ],
    )
    def test_normalisation(self, configured: str, normalised: str) -> None:
        """Configured origins become what browsers send."""
        assert normalize_origin(configured) == normalised
        policy = CorsPolicy.from_settings(CorsSettings(origins=[configured]))
        assert policy.is_allowed_origin(normalised)

    def test_is_allowed_origin(self) -> None:
        """Missing, empty and ``null`` never match, even with ``*``."""
        for origins in ([APP], ["*"]):
            policy = CorsPolicy.from_settings(CorsSettings(origins=origins))
            assert not policy.is_allowed_origin(None)
            assert not policy.is_allowed_origin("")
            assert not policy.is_allowed_origin("null")
        assert CorsPolicy.from_settings(CorsSettings(origins=["*"])).is_allowed_origin(EVIL)
        assert not CorsPolicy.from_settings(CorsSettings(origins=[APP])).is_allowed_origin(EVIL)

    def test_middleware_needs_a_policy(self) -> None:
        """Passing settings instead of a validated policy is a configuration error."""
        with pytest.raises(ConfigurationError):
            StrictCORSMiddleware(make_app, STRICT)  # type: ignore[arg-type]


async def test_websocket_scope_passes_through() -> None:
    """WebSocket handshakes are left to the WebSocket origin check."""
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    middleware = StrictCORSMiddleware(app, CorsPolicy.from_settings(STRICT))
    scope = {"type": "websocket", "headers": [(b"origin", EVIL.encode())], "path": "/ws"}
    await middleware(scope, None, None)  # type: ignore[arg-type]
    assert seen == ["websocket"]
