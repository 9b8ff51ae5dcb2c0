"""Fixtures for transport tests: a PKI on disk and TLS servers on 127.0.0.1."""

from __future__ import annotations

import shutil
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from fastapi import Depends, FastAPI, Request, WebSocket

from barbacana.settings import Settings
from barbacana.transport import (
    PeerIdentity,
    Pki,
    RequirePeer,
    TransportSettings,
    client_context,
    peer_identity,
)
from barbacana.web import secure
from tests.conftest import missing

SERVICES = ("auth", "orders", "chat")


def make_pki(directory: Path, **kwargs: Any) -> Pki:
    """A CA with a certificate for each reference service (DNS: name, localhost; IP: 127.0.0.1)."""
    pki = Pki(directory, **kwargs)
    pki.init()
    for name in SERVICES:
        pki.ensure_service(name, dns=[name, "localhost"], ips=["127.0.0.1"])
    return pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


class TLSServer:
    """A uvicorn server for a prepared config, in a thread, on an ephemeral port."""

    def __init__(self, config: uvicorn.Config) -> None:
        self.config = config
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> TLSServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the TLS server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def _peer_dict(peer: PeerIdentity | None) -> dict[str, Any] | None:
    if peer is None:
        return None
    return {
        "service": peer.service,
        "spiffe_id": peer.spiffe_id,
        "source": peer.source,
        "serial": peer.serial_number,
    }


def echo_app(settings: TransportSettings | None = None) -> FastAPI:
    """An app that echoes what it knows about the caller, and one internal endpoint."""
    settings = settings or TransportSettings()
    app = FastAPI()
    app.state.hits = 0
    # The web layer turns our errors into problem+json, as in a real service.
    secure(app, Settings())

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Any:
        app.state.hits += 1
        return await call_next(request)

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        tls = dict(request.scope.get("extensions", {}).get("tls") or {})
        return {
            "peer": _peer_dict(peer_identity(request.scope, settings)),
            "tls": tls,
            "scheme": request.url.scheme,
        }

    @app.get("/internal/orders-only")
    async def internal(
        peer: PeerIdentity = Depends(RequirePeer("orders", settings=settings)),
    ) -> dict[str, Any]:
        return {"caller": peer.service}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        peer = peer_identity(websocket.scope, settings)
        tls = websocket.scope.get("extensions", {}).get("tls") or {}
        await websocket.send_json({"peer": _peer_dict(peer), "tls_version": tls.get("tls_version")})
        await websocket.close()

    return app


def mtls_context(pki: Pki, name: str | None) -> ssl.SSLContext:
    """A client context trusting the PKI's CA, presenting ``name``'s certificate if given."""
    if name is None:
        return client_context(ca_file=pki.ca_file)
    return client_context(
        ca_file=pki.ca_file, cert_file=pki.cert_file(name), key_file=pki.key_file(name)
    )


def serial_of(pem_or_der: str | bytes) -> int:
    if isinstance(pem_or_der, str):
        return x509.load_pem_x509_certificate(pem_or_der.encode()).serial_number
    return x509.load_der_x509_certificate(pem_or_der).serial_number


def need_tool(name: str) -> str:
    """The path of a command-line tool, or skip (fail under BARBACANA_REQUIRE_ALL=1)."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed")
    assert path is not None
    return path
