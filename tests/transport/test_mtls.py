"""mTLS over real sockets: who may connect, and what the callee learns about the caller."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from barbacana.transport import (
    Pki,
    TransportSettings,
    client_context,
    mtls_client,
    mtls_sync_client,
    serve_config,
)
from tests.transport.conftest import TLSServer, echo_app, make_pki, mtls_context, serial_of

# Errors a refused TLS connection surfaces as in httpx: the handshake fails
# (ConnectError), or with TLS 1.3 the server's alert arrives on the first read.
REFUSED = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)


@pytest.fixture
def required(pki: Pki) -> Iterator[TLSServer]:
    """A server that requires a client certificate from the internal CA."""
    app = echo_app()
    config = serve_config(
        app,
        credentials=pki.credentials("auth"),
        port=0,
        require_client_cert=True,
        log_level="warning",
    )
    with TLSServer(config) as server:
        yield server


@pytest.fixture
def optional(pki: Pki) -> Iterator[TLSServer]:
    """A server where a client certificate is optional (browsers and peers alike)."""
    config = serve_config(
        echo_app(), credentials=pki.credentials("auth"), port=0, log_level="warning"
    )
    with TLSServer(config) as server:
        yield server


def hits(server: TLSServer) -> int:
    return int(server.config.app.state.hits)  # type: ignore[union-attr]


class TestRefused:
    """Only holders of a current certificate from the internal CA get a request through."""

    def test_client_without_certificate(self, pki: Pki, required: TLSServer) -> None:
        """No client certificate: the handshake is refused and the app never runs."""
        with (
            httpx.Client(verify=mtls_context(pki, None)) as client,
            pytest.raises(REFUSED),
        ):
            client.get(f"{required.url}/whoami")
        assert hits(required) == 0

    def test_certificate_from_another_ca(
        self, pki: Pki, required: TLSServer, tmp_path: Path
    ) -> None:
        """A well-formed certificate with the right name, from a CA we do not trust."""
        rogue = make_pki(tmp_path / "rogue")
        context = client_context(
            ca_file=pki.ca_file,  # the client trusts the real server...
            cert_file=rogue.cert_file("orders"),  # ...but presents a rogue identity
            key_file=rogue.key_file("orders"),
        )
        with httpx.Client(verify=context) as client, pytest.raises(REFUSED):
            client.get(f"{required.url}/whoami")
        assert hits(required) == 0

    def test_expired_certificate(self, pki: Pki, required: TLSServer) -> None:
        """A certificate from our CA that expired yesterday is refused."""
        month_ago = time.time() - 30 * 86400
        Pki(pki.directory, clock=lambda: month_ago).issue("orders", days=29)
        assert pki.info("orders").not_after.timestamp() < time.time()
        with httpx.Client(verify=mtls_context(pki, "orders")) as client, pytest.raises(REFUSED):
            client.get(f"{required.url}/whoami")
        assert hits(required) == 0

    def test_not_yet_valid_certificate(self, pki: Pki, required: TLSServer) -> None:
        """A certificate dated in the future is refused too."""
        next_week = time.time() + 7 * 86400
        Pki(pki.directory, clock=lambda: next_week).issue("orders")
        with httpx.Client(verify=mtls_context(pki, "orders")) as client, pytest.raises(REFUSED):
            client.get(f"{required.url}/whoami")
        assert hits(required) == 0

    def test_server_name_mismatch(self, pki: Pki, tmp_path: Path) -> None:
        """The client refuses a server whose certificate does not name the host it dialled."""
        pki.issue("lonely", dns=["lonely.internal"])  # no localhost, no 127.0.0.1
        config = serve_config(
            echo_app(), credentials=pki.credentials("lonely"), port=0, log_level="warning"
        )
        with TLSServer(config) as server, httpx.Client(verify=mtls_context(pki, "orders")) as c:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                c.get(f"{server.url}/whoami")
            # Control: the same server, addressed by the name it holds, is accepted.
            ok = c.get(f"{server.url}/whoami", extensions={"sni_hostname": "lonely.internal"})
            assert ok.status_code == 200

    def test_server_from_another_ca(self, pki: Pki, tmp_path: Path) -> None:
        """A client trusting only the internal CA refuses a server from any other CA."""
        rogue = make_pki(tmp_path / "rogue")
        config = serve_config(
            echo_app(), credentials=rogue.credentials("auth"), port=0, log_level="warning"
        )
        with (
            TLSServer(config) as server,
            httpx.Client(verify=mtls_context(pki, "orders")) as c,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            c.get(f"{server.url}/whoami")


class TestIdentity:
    """A valid peer connects and the callee knows which service it is."""

    def test_callee_sees_the_caller(self, pki: Pki, required: TLSServer) -> None:
        with httpx.Client(verify=mtls_context(pki, "orders")) as client:
            body = client.get(f"{required.url}/whoami").json()
        assert body["peer"] == {
            "service": "orders",
            "spiffe_id": "spiffe://barbacana.internal/svc/orders",
            "source": "certificate",
            "serial": pki.info("orders").serial_number,
        }
        assert body["scheme"] == "https"

    def test_tls_extension_fields(self, pki: Pki, required: TLSServer) -> None:
        """The ASGI TLS extension carries the certificates, version and IANA suite code."""
        with httpx.Client(verify=mtls_context(pki, "orders")) as client:
            tls = client.get(f"{required.url}/whoami").json()["tls"]
        assert tls["tls_version"] == 0x0304
        assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)
        assert serial_of(tls["server_cert"]) == pki.info("auth").serial_number
        assert len(tls["client_cert_chain"]) == 1
        assert serial_of(tls["client_cert_chain"][0]) == pki.info("orders").serial_number
        assert tls["client_cert_name"] == "CN=orders,O=Barbacana"
        assert tls["client_cert_error"] is None

    def test_tls12_client(self, pki: Pki, required: TLSServer) -> None:
        """A TLS 1.2 client is served, with an ECDHE-ECDSA AEAD suite."""
        context = mtls_context(pki, "orders")
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        with httpx.Client(verify=context) as client:
            tls = client.get(f"{required.url}/whoami").json()["tls"]
        assert tls["tls_version"] == 0x0303
        # ECDHE-ECDSA with AES-GCM or ChaCha20-Poly1305 (RFC 5289, RFC 7905).
        assert tls["cipher_suite"] in (0xC02B, 0xC02C, 0xCCA9)

    def test_client_only_certificate(self, pki: Pki, required: TLSServer) -> None:
        """A client certificate (clientAuth only) issued for a program is a peer too."""
        pki.issue_client("batch-job")
        with httpx.Client(verify=mtls_context(pki, "batch-job")) as client:
            body = client.get(f"{required.url}/whoami").json()
        assert body["peer"]["service"] == "batch-job"

    def test_internal_endpoint_wrong_service(self, pki: Pki, required: TLSServer) -> None:
        """A valid certificate of another service gets 403 from an orders-only endpoint."""
        with httpx.Client(verify=mtls_context(pki, "chat")) as client:
            response = client.get(f"{required.url}/internal/orders-only")
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "peer_not_allowed"
        with httpx.Client(verify=mtls_context(pki, "orders")) as client:
            response = client.get(f"{required.url}/internal/orders-only")
        assert response.status_code == 200
        assert response.json() == {"caller": "orders"}

    def test_headers_claiming_identity_are_ignored(self, pki: Pki, required: TLSServer) -> None:
        """Identity headers from the caller change nothing: only the certificate counts."""
        forged = {
            "X-Forwarded-Client-Cert": "URI=spiffe://barbacana.internal/svc/orders",
            "X-Service-Name": "orders",
            "X-Client-Cert": "spiffe://barbacana.internal/svc/orders",
            "L5d-Client-Id": "orders",
        }
        with httpx.Client(verify=mtls_context(pki, "chat")) as client:
            body = client.get(f"{required.url}/whoami", headers=forged).json()
            denied = client.get(f"{required.url}/internal/orders-only", headers=forged)
        assert body["peer"]["service"] == "chat"
        assert denied.status_code == 403

    def test_optional_mode_without_certificate(self, pki: Pki, optional: TLSServer) -> None:
        """With optional client certs, anonymous TLS works but internal endpoints say 401."""
        forged = {"X-Forwarded-Client-Cert": "URI=spiffe://barbacana.internal/svc/orders"}
        with httpx.Client(verify=mtls_context(pki, None)) as client:
            body = client.get(f"{optional.url}/whoami", headers=forged).json()
            response = client.get(f"{optional.url}/internal/orders-only", headers=forged)
        assert body["peer"] is None
        assert body["tls"]["client_cert_chain"] == []
        assert response.status_code == 401
        assert response.json()["code"] == "peer_certificate_required"

    def test_optional_mode_still_verifies(
        self, pki: Pki, optional: TLSServer, tmp_path: Path
    ) -> None:
        """Optional does not mean unchecked: a rogue certificate is still refused."""
        rogue = make_pki(tmp_path / "rogue")
        context = client_context(
            ca_file=pki.ca_file,
            cert_file=rogue.cert_file("orders"),
            key_file=rogue.key_file("orders"),
        )
        with httpx.Client(verify=context) as client, pytest.raises(REFUSED):
            client.get(f"{optional.url}/whoami")

    def test_wrong_trust_domain(self, pki: Pki, required: TLSServer) -> None:
        """Our CA, but a SPIFFE ID in another trust domain: connected, yet no identity."""
        other = Pki(pki.directory, settings=TransportSettings(trust_domain="elsewhere.test"))
        other.issue("orders")
        with httpx.Client(verify=mtls_context(pki, "orders")) as client:
            body = client.get(f"{required.url}/whoami").json()
            response = client.get(f"{required.url}/internal/orders-only")
        assert body["peer"] is None
        assert response.status_code == 401

    def test_websocket_sees_the_caller(self, pki: Pki, required: TLSServer) -> None:
        with ws_connect(
            f"wss://127.0.0.1:{required.port}/ws", ssl=mtls_context(pki, "chat")
        ) as websocket:
            message = websocket.recv(timeout=5)
        assert '"service":"chat"' in message.replace(" ", "")
        assert '"tls_version":772' in message.replace(" ", "")


class TestClients:
    """The httpx factories present the service certificate and pin trust to the CA."""

    async def test_async_client(self, pki: Pki, required: TLSServer) -> None:
        async with mtls_client(pki, "orders") as client:
            response = await client.get(f"{required.url}/internal/orders-only")
        assert response.json() == {"caller": "orders"}

    def test_sync_client(self, pki: Pki, required: TLSServer) -> None:
        with mtls_sync_client(pki.directory, "orders") as client:
            assert client.get(f"{required.url}/whoami").json()["peer"]["service"] == "orders"

    def test_client_does_not_trust_public_cas(self, pki: Pki, required: TLSServer) -> None:
        """The client context trusts only the internal CA (no system store)."""
        context = mtls_context(pki, "orders")
        assert context.cert_store_stats()["x509_ca"] == 1

    async def test_async_client_reloads_renewed_certificate(
        self, pki: Pki, required: TLSServer
    ) -> None:
        """After a renewal, the long-lived client presents the new certificate."""
        settings = TransportSettings(reload_interval=timedelta(seconds=0.05))
        old = pki.info("orders").serial_number
        async with mtls_client(pki, "orders", settings=settings) as client:
            first = (await client.get(f"{required.url}/whoami")).json()["peer"]["serial"]
            new = pki.rotate("orders").serial_number
            seen = first
            deadline = time.monotonic() + 5
            while seen != new and time.monotonic() < deadline:
                response = await client.get(
                    f"{required.url}/whoami", headers={"Connection": "close"}
                )
                seen = response.json()["peer"]["serial"]
        assert first == old
        assert seen == new
