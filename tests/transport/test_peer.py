"""peer_identity and RequirePeer: the certificate decides; a mesh header only from a sidecar."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from barbacana.errors import AccessError, ConfigurationError
from barbacana.settings import Settings
from barbacana.transport import (
    PeerCertificateRequiredError,
    PeerIdentity,
    PeerNotAllowedError,
    Pki,
    RequirePeer,
    TransportSettings,
    parse_spiffe_id,
    peer_identity,
)
from barbacana.web import secure
from tests.conftest import ServerThread

XFCC = "x-forwarded-client-cert"


def tls_scope(pem: str | None, **extra: Any) -> dict[str, Any]:
    tls = {
        "server_cert": None,
        "client_cert_chain": [pem] if pem else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": 0x1301,
    }
    tls.update(extra)
    return {"type": "http", "client": ("10.1.2.3", 5555), "headers": [], "extensions": {"tls": tls}}


def mesh_scope(peer: str, *headers: tuple[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "client": (peer, 40000),
        "headers": [(k.encode(), v.encode()) for k, v in headers],
    }


MESH = TransportSettings(mesh_identity_header=XFCC, mesh_trusted_sidecars=["127.0.0.1/32"])


class TestCertificate:
    def test_verified_certificate(self, pki: Pki) -> None:
        peer = peer_identity(tls_scope(pki.cert_file("orders").read_text()))
        assert peer == PeerIdentity(
            service="orders",
            spiffe_id="spiffe://barbacana.internal/svc/orders",
            trust_domain="barbacana.internal",
            source="certificate",
            serial_number=pki.info("orders").serial_number,
            not_after=pki.info("orders").not_after,
        )

    def test_no_tls_extension(self) -> None:
        assert peer_identity({"type": "http", "client": ("127.0.0.1", 1), "headers": []}) is None

    def test_empty_chain(self) -> None:
        assert peer_identity(tls_scope(None)) is None

    def test_error_reported_by_server(self, pki: Pki) -> None:
        scope = tls_scope(pki.cert_file("orders").read_text(), client_cert_error="expired")
        assert peer_identity(scope) is None

    def test_expired_during_a_long_connection(self, pki: Pki) -> None:
        """A WebSocket may outlive its certificate; the identity ends with it."""
        pem = pki.cert_file("orders").read_text()
        later = time.time() + 8 * 86400
        assert peer_identity(tls_scope(pem)) is not None
        assert peer_identity(tls_scope(pem), clock=lambda: later) is None

    def test_other_trust_domain(self, pki: Pki) -> None:
        pem = pki.cert_file("orders").read_text()
        settings = TransportSettings(trust_domain="prod.example")
        assert peer_identity(tls_scope(pem), settings) is None

    def test_garbage_chain(self) -> None:
        assert peer_identity(tls_scope("-----BEGIN CERTIFICATE-----\nnope\n")) is None

    @pytest.mark.parametrize(
        ("uri", "expected"),
        [
            ("spiffe://barbacana.internal/svc/orders", "orders"),
            ("spiffe://barbacana.internal/svc/orders/extra", None),
            ("spiffe://barbacana.internal/ns/default/sa/orders", None),
            ("spiffe://evil.example/svc/orders", None),
            ("https://barbacana.internal/svc/orders", None),
            ("spiffe://barbacana.internal/svc/Orders", None),
        ],
    )
    def test_parse_spiffe_id(self, uri: str, expected: str | None) -> None:
        assert parse_spiffe_id(uri, "barbacana.internal") == expected


class TestMesh:
    """The sidecar's header, believed only from the sidecar, and only when configured."""

    def test_off_by_default(self) -> None:
        scope = mesh_scope("127.0.0.1", (XFCC, "URI=spiffe://barbacana.internal/svc/orders"))
        assert peer_identity(scope) is None

    def test_trusted_sidecar(self) -> None:
        value = (
            'By=spiffe://barbacana.internal/svc/chat;Hash=abc;Subject="CN=x,O=y";'
            "URI=spiffe://barbacana.internal/svc/orders"
        )
        peer = peer_identity(mesh_scope("127.0.0.1", (XFCC, value)), MESH)
        assert peer is not None
        assert peer.service == "orders"
        assert peer.source == "mesh"

    def test_last_element_is_the_immediate_hop(self) -> None:
        """Envoy appends; the client-supplied elements on the left are not the caller."""
        value = (
            "URI=spiffe://barbacana.internal/svc/orders,"
            "By=x;URI=spiffe://barbacana.internal/svc/chat"
        )
        peer = peer_identity(mesh_scope("127.0.0.1", (XFCC, value)), MESH)
        assert peer is not None
        assert peer.service == "chat"

    def test_untrusted_peer(self) -> None:
        scope = mesh_scope("10.9.9.9", (XFCC, "URI=spiffe://barbacana.internal/svc/orders"))
        assert peer_identity(scope, MESH) is None

    def test_repeated_header_is_ambiguous(self) -> None:
        scope = mesh_scope(
            "127.0.0.1",
            (XFCC, "URI=spiffe://barbacana.internal/svc/orders"),
            (XFCC, "URI=spiffe://barbacana.internal/svc/chat"),
        )
        assert peer_identity(scope, MESH) is None

    @pytest.mark.parametrize(
        "value",
        [
            "URI=spiffe://evil.example/svc/orders",
            'URI="spiffe://barbacana.internal/svc/orders',  # unterminated quote
            "garbage",
            "URI=spiffe://barbacana.internal/svc/a;URI=spiffe://barbacana.internal/svc/b",
            "URI=" + "a" * 20_000,
        ],
    )
    def test_malformed_values(self, value: str) -> None:
        assert peer_identity(mesh_scope("127.0.0.1", (XFCC, value)), MESH) is None

    def test_uri_format(self) -> None:
        settings = TransportSettings(
            mesh_identity_header="x-peer-id",
            mesh_header_format="uri",
            mesh_trusted_sidecars=["::1/128", "127.0.0.0/8"],
        )
        scope = mesh_scope("127.0.0.2", ("x-peer-id", "spiffe://barbacana.internal/svc/chat"))
        peer = peer_identity(scope, settings)
        assert peer is not None
        assert peer.service == "chat"

    def test_certificate_wins_over_header(self, pki: Pki) -> None:
        scope = tls_scope(pki.cert_file("chat").read_text())
        scope["client"] = ("127.0.0.1", 1)
        scope["headers"] = [(XFCC.encode(), b"URI=spiffe://barbacana.internal/svc/orders")]
        peer = peer_identity(scope, MESH)
        assert peer is not None
        assert peer.service == "chat"


class TestRequirePeer:
    def test_needs_a_service(self) -> None:
        with pytest.raises(ConfigurationError, match="at least one service"):
            RequirePeer()

    def test_errors(self) -> None:
        dependency = RequirePeer("orders")
        missing = dependency.refuse(None)
        assert isinstance(missing, PeerCertificateRequiredError)
        assert isinstance(missing, AccessError)
        assert missing.status == 401
        peer = PeerIdentity("chat", "spiffe://barbacana.internal/svc/chat", "x", "certificate")
        wrong = dependency.refuse(peer)
        assert isinstance(wrong, PeerNotAllowedError)
        assert wrong.status == 403
        assert wrong.code == "peer_not_allowed"

    @pytest.mark.parametrize(
        ("sidecars", "header", "expected"),
        [
            (["127.0.0.1/32"], "URI=spiffe://barbacana.internal/svc/orders", 200),
            (["127.0.0.1/32"], "URI=spiffe://barbacana.internal/svc/chat", 403),
            (["127.0.0.1/32"], None, 401),
            (["10.0.0.0/8"], "URI=spiffe://barbacana.internal/svc/orders", 401),
        ],
    )
    def test_mesh_over_a_real_socket(
        self, sidecars: list[str], header: str | None, expected: int
    ) -> None:
        """Plain HTTP from a sidecar on loopback, as a mesh deployment runs it."""
        settings = TransportSettings(mesh_identity_header=XFCC, mesh_trusted_sidecars=sidecars)
        app = FastAPI()
        secure(app, Settings())

        @app.get("/internal")
        async def internal(
            peer: PeerIdentity = Depends(RequirePeer("orders", settings=settings)),
        ) -> dict[str, str]:
            return {"caller": peer.service, "source": peer.source}

        headers = {XFCC: header} if header else {}
        with ServerThread(app) as server:
            response = httpx.get(f"{server.url}/internal", headers=headers)
        assert response.status_code == expected
        if expected == 200:
            assert response.json() == {"caller": "orders", "source": "mesh"}
