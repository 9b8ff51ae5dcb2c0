"""TLS context factories and serve_config: the policy they set, the mistakes they refuse."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from barbacana.errors import ConfigurationError
from barbacana.transport import (
    Pki,
    TLSContextError,
    TLSH11Protocol,
    TLSHttpToolsProtocol,
    TransportSettings,
    client_context,
    serve_config,
    server_context,
)
from tests.transport.conftest import TLSServer, echo_app, mtls_context


class TestServerContext:
    def test_policy(self, pki: Pki) -> None:
        creds = pki.credentials("auth")
        context = server_context(
            creds.cert_file, creds.key_file, ca_file=creds.ca_file, client_auth="required"
        )
        assert context.minimum_version is ssl.TLSVersion.TLSv1_2
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.options & ssl.OP_NO_COMPRESSION
        assert context.options & ssl.OP_NO_RENEGOTIATION
        assert context.options & ssl.OP_NO_TICKET
        assert context.verify_flags & ssl.VERIFY_X509_STRICT
        tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
        assert tls12
        assert all(c["aead"] and c["kea"] == "kx-ecdhe" for c in tls12)

    def test_modes(self, pki: Pki) -> None:
        creds = pki.credentials("auth")
        optional = server_context(
            creds.cert_file, creds.key_file, ca_file=creds.ca_file, client_auth="optional"
        )
        assert optional.verify_mode is ssl.CERT_OPTIONAL
        assert server_context(creds.cert_file, creds.key_file).verify_mode is ssl.CERT_NONE
        tls13 = server_context(
            creds.cert_file,
            creds.key_file,
            settings=TransportSettings(minimum_tls_version="1.3"),
        )
        assert tls13.minimum_version is ssl.TLSVersion.TLSv1_3

    def test_client_auth_needs_a_ca(self, pki: Pki) -> None:
        creds = pki.credentials("auth")
        with pytest.raises(TLSContextError, match="needs ca_file"):
            server_context(creds.cert_file, creds.key_file, client_auth="required")

    def test_mismatched_key(self, pki: Pki) -> None:
        with pytest.raises(TLSContextError, match="cannot load the certificate"):
            server_context(pki.cert_file("auth"), pki.key_file("orders"))

    def test_missing_files(self, tmp_path: Path) -> None:
        with pytest.raises(TLSContextError):
            server_context(tmp_path / "nope.pem", tmp_path / "nope-key.pem")
        with pytest.raises(TLSContextError, match="CA file"):
            client_context(ca_file=tmp_path / "nope.pem")


class TestClientContext:
    def test_policy(self, pki: Pki) -> None:
        context = mtls_context(pki, "orders")
        assert context.check_hostname
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.minimum_version is ssl.TLSVersion.TLSv1_2

    def test_half_a_pair(self, pki: Pki) -> None:
        with pytest.raises(TLSContextError, match="both"):
            client_context(ca_file=pki.ca_file, cert_file=pki.cert_file("orders"))


class TestServeConfig:
    def test_exactly_one_source(self, pki: Pki) -> None:
        with pytest.raises(ConfigurationError, match="exactly one"):
            serve_config(echo_app())
        creds = pki.credentials("auth")
        context = server_context(creds.cert_file, creds.key_file)
        with pytest.raises(ConfigurationError, match="exactly one"):
            serve_config(echo_app(), credentials=creds, context=context)

    @pytest.mark.parametrize("option", ["ssl_certfile", "http", "ws", "ssl_context_factory"])
    def test_tls_options_refused(self, pki: Pki, option: str) -> None:
        with pytest.raises(ConfigurationError, match=option):
            serve_config(echo_app(), credentials=pki.credentials("auth"), **{option: "x"})

    def test_defaults(self, pki: Pki) -> None:
        config = serve_config(echo_app(), credentials=pki.credentials("auth"))
        assert config.proxy_headers is False
        assert config.server_header is False
        assert config.http is TLSHttpToolsProtocol
        assert config.reloader is not None

    def test_prebuilt_context_over_h11(self, pki: Pki) -> None:
        """A ready context is used as is (no reloader); the h11 protocol sets the extension too."""
        creds = pki.credentials("auth")
        context = server_context(
            creds.cert_file, creds.key_file, ca_file=creds.ca_file, client_auth="required"
        )
        config = serve_config(echo_app(), context=context, port=0, http="h11", log_level="warning")
        assert config.http is TLSH11Protocol
        assert config.reloader is None
        with TLSServer(config) as server, httpx.Client(verify=mtls_context(pki, "chat")) as c:
            body = c.get(f"{server.url}/whoami").json()
        assert body["peer"]["service"] == "chat"
        assert body["tls"]["server_cert"] is None  # not known without the files
        assert body["tls"]["tls_version"] == 0x0304
