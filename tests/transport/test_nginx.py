"""Real nginx, with the generated configuration, in front of services served over mTLS."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, WebSocket
from websockets.sync.client import connect as ws_connect

from barbacana.transport import (
    Pki,
    client_context,
    peer_identity,
    render_nginx_config,
    serve_config,
)
from barbacana.web._forwarded import client_address, parse_trusted_proxies
from tests.conftest import free_port
from tests.transport.conftest import TLSServer, make_pki, need_tool
from tests.transport.test_protocols import LOW, probe

pytestmark = pytest.mark.slow

TRUSTED = parse_trusted_proxies(["127.0.0.1/32"])  # nginx, as the services are told


def upstream_app() -> FastAPI:
    """What a service behind nginx sees: the resolved client, forwarded headers, the peer."""
    app = FastAPI()
    app.state.hits = 0

    def seen(scope: Any, headers: Any) -> dict[str, Any]:
        peer = peer_identity(scope)
        return {
            "client": client_address(scope, TRUSTED),
            "x_forwarded_for": headers.getlist("x-forwarded-for"),
            "proto": headers.get("x-forwarded-proto"),
            "request_id": headers.get("x-request-id"),
            "xfcc": headers.get("x-forwarded-client-cert"),
            "forwarded": headers.get("forwarded"),
            "peer": peer.service if peer else None,
        }

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Any:
        app.state.hits += 1
        return await call_next(request)

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        return seen(request.scope, request.headers)

    @app.get("/orders/{order_id}")
    async def order(order_id: int, request: Request) -> dict[str, Any]:
        return seen(request.scope, request.headers)

    @app.post("/token")
    async def token() -> dict[str, str]:
        return {"access_token": "not-a-real-token"}

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        await websocket.send_json({"room": room, **seen(websocket.scope, websocket.headers)})
        await websocket.close()

    return app


@dataclass
class Front:
    pki: Pki
    https: int
    http: int
    prefix: Path
    good: TLSServer
    rogue: TLSServer

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https}"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(verify=client_context(ca_file=self.pki.ca_file), **kwargs)


def _start_nginx(nginx: str, prefix: Path, url: str) -> subprocess.Popen[bytes]:
    log = (prefix / "stderr.log").open("wb")
    process = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", "nginx.conf", "-e", "stderr", "-g", "daemon off;"],
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            pytest.fail(f"nginx exited: {(prefix / 'stderr.log').read_text()}")
        try:
            httpx.get(url, verify=False, timeout=2)
            return process
        except httpx.TransportError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"nginx did not answer: {(prefix / 'stderr.log').read_text()}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    nginx = need_tool("nginx")
    base = tmp_path_factory.mktemp("nginx")
    pki = make_pki(base / "pki")
    rogue_pki = make_pki(base / "rogue")
    proxy = pki.ensure_service("proxy", dns=["localhost"], ips=["127.0.0.1"])
    good_config = serve_config(
        upstream_app(),
        credentials=pki.credentials("auth"),
        port=0,
        require_client_cert=True,
        log_level="warning",
    )
    rogue_config = serve_config(
        upstream_app(), credentials=rogue_pki.credentials("orders"), port=0, log_level="warning"
    )
    # nginx started as root runs its workers as "nobody": the prefix must be reachable.
    prefix = Path(tempfile.mkdtemp(prefix="barbacana-nginx-"))
    os.chmod(prefix, 0o755)
    https, http = free_port(), free_port()
    with TLSServer(good_config) as good, TLSServer(rogue_config) as rogue:
        text = render_nginx_config(
            upstreams={
                "auth": f"127.0.0.1:{good.port}",
                "chat": f"127.0.0.1:{good.port}",
                "orders": f"127.0.0.1:{rogue.port}",  # a service from another CA
            },
            tls_names={"chat": "auth"},  # chat's route reaches the auth test app
            ca_file=proxy.ca_file,
            server_cert=proxy.cert_file,
            server_key=proxy.key_file,
            client_cert=proxy.cert_file,
            client_key=proxy.key_file,
            listen_https=https,
            listen_http=http,
            login_rate="6r/m",
            login_burst=2,
        )
        (prefix / "nginx.conf").write_text(text)
        process = _start_nginx(nginx, prefix, f"https://127.0.0.1:{https}/whoami")
        try:
            yield Front(pki, https, http, prefix, good, rogue)
        finally:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            shutil.rmtree(prefix, ignore_errors=True)


class TestForwarding:
    def test_request_reaches_the_service_over_mtls(self, front: Front) -> None:
        """The service sees https, the real client, and nginx's own certificate identity."""
        with front.client() as client:
            response = client.get(f"{front.url}/whoami")
        assert response.status_code == 200
        body = response.json()
        assert body["proto"] == "https"
        assert body["client"] == "127.0.0.1"
        assert body["x_forwarded_for"] == ["127.0.0.1"]
        assert body["peer"] == "proxy"

    def test_forged_forwarding_headers_do_not_reach_the_service(self, front: Front) -> None:
        forged = {
            "X-Forwarded-For": "203.0.113.7, 198.51.100.1",
            "X-Real-IP": "203.0.113.7",
            "Forwarded": "for=203.0.113.7;proto=https",
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Client-Cert": "URI=spiffe://barbacana.internal/svc/orders",
        }
        with front.client() as client:
            body = client.get(f"{front.url}/whoami", headers=forged).json()
        assert body["x_forwarded_for"] == ["127.0.0.1"]
        assert body["client"] == "127.0.0.1"
        assert body["proto"] == "https"
        assert body["forwarded"] is None
        assert body["xfcc"] is None
        assert body["peer"] == "proxy"

    def test_request_id(self, front: Front) -> None:
        """A plain client id is kept; a malformed one is replaced by nginx's own."""
        with front.client() as client:
            kept = client.get(f"{front.url}/whoami", headers={"X-Request-ID": "abc-123.x"})
            replaced = client.get(
                f"{front.url}/whoami", headers={"X-Request-ID": "bad id\twith spaces"}
            )
            generated = client.get(f"{front.url}/whoami")
        assert kept.json()["request_id"] == "abc-123.x"
        assert re.fullmatch(r"[0-9a-f]{32}", replaced.json()["request_id"])
        assert re.fullmatch(r"[0-9a-f]{32}", generated.json()["request_id"])

    def test_websocket_upgrade(self, front: Front) -> None:
        with ws_connect(
            f"wss://127.0.0.1:{front.https}/ws/lobby",
            ssl=client_context(ca_file=front.pki.ca_file),
        ) as websocket:
            message = websocket.recv(timeout=5)
        assert '"room":"lobby"' in message.replace(" ", "")
        assert '"peer":"proxy"' in message.replace(" ", "")
        assert '"proto":"https"' in message.replace(" ", "")

    def test_upstream_from_another_ca_is_refused(self, front: Front) -> None:
        """nginx verifies each service against the internal CA: a rogue one gets nothing."""
        before = front.rogue.config.app.state.hits  # type: ignore[union-attr]
        with front.client() as client:
            response = client.get(f"{front.url}/orders/1")
        assert response.status_code == 502
        assert front.rogue.config.app.state.hits == before  # type: ignore[union-attr]


class TestFrontDoor:
    def test_http_redirects_to_https(self, front: Front) -> None:
        response = httpx.get(f"http://127.0.0.1:{front.http}/whoami?x=1", follow_redirects=False)
        assert response.status_code == 301
        assert response.headers["location"] == f"https://localhost:{front.https}/whoami?x=1"

    def test_no_version_disclosed(self, front: Front) -> None:
        with front.client() as client:
            response = client.get(f"{front.url}/whoami")
        assert response.headers["server"] == "nginx"

    def test_http2_offered(self, front: Front) -> None:
        _, output = probe(front.https, front.pki.ca_file, "-alpn", "h2,http/1.1")
        assert "ALPN protocol: h2" in output

    def test_old_tls_refused(self, front: Front) -> None:
        version, _ = probe(front.https, front.pki.ca_file, "-tls1_1", "-cipher", LOW)
        assert version is None
        version, _ = probe(front.https, front.pki.ca_file, "-tls1_3")
        assert version == "TLSv1.3"

    def test_login_rate_limit(self, front: Front) -> None:
        """A burst on POST /token is cut off with 429 problem+json; other routes still work."""
        with front.client() as client:
            statuses = [client.post(f"{front.url}/token").status_code for _ in range(8)]
            limited = client.post(f"{front.url}/token")
            other = client.get(f"{front.url}/whoami")
        assert statuses[0] == 200
        assert 429 in statuses
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert limited.json()["code"] == "rate_limited"
        assert limited.headers["retry-after"] == "60"
        assert other.status_code == 200

    def test_body_size_limit(self, front: Front) -> None:
        with front.client() as client:
            response = client.post(f"{front.url}/whoami", content=b"x" * (2 * 1024 * 1024))
        assert response.status_code == 413
