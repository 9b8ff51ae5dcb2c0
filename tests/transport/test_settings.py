"""TransportSettings: safe defaults, and bad values refused at start-up."""

from __future__ import annotations

import ssl
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from barbacana.transport import DEFAULT_CIPHERS, TransportSettings


class TestDefaults:
    def test_defaults(self) -> None:
        settings = TransportSettings()
        assert settings.trust_domain == "barbacana.internal"
        assert settings.cert_lifetime == timedelta(days=7)
        assert settings.renew_before == timedelta(days=2)
        assert settings.minimum_version is ssl.TLSVersion.TLSv1_2
        assert settings.ciphers == DEFAULT_CIPHERS
        assert settings.mesh_identity_header is None

    def test_frozen_and_strict(self) -> None:
        settings = TransportSettings()
        with pytest.raises(ValidationError):
            settings.trust_domain = "x"  # type: ignore[misc]
        with pytest.raises(ValidationError):
            TransportSettings(unknown=1)  # type: ignore[call-arg]

    def test_passphrase_masked(self) -> None:
        settings = TransportSettings(ca_passphrase="hunter2")  # type: ignore[arg-type]
        assert "hunter2" not in repr(settings)


class TestRefused:
    @pytest.mark.parametrize(
        ("values", "message"),
        [
            ({"trust_domain": "Bad Domain"}, "trust_domain"),
            ({"trust_domain": "..x"}, "trust_domain"),
            ({"cert_lifetime": timedelta(seconds=30)}, "at least 5 minutes"),
            ({"renew_before": timedelta(days=8)}, "shorter than cert_lifetime"),
            ({"ciphers": "ECDHE+AES128:ECDHE+AESGCM"}, "not ECDHE with AEAD"),  # adds CBC
            ({"ciphers": "AESGCM"}, "not ECDHE with AEAD"),  # static RSA / DHE too
            ({"ciphers": "NOTHING-AT-ALL"}, "selects no cipher"),
            ({"reload_interval": timedelta(0)}, "positive"),
            ({"mesh_identity_header": "x-forwarded-client-cert"}, "mesh_trusted_sidecars"),
            (
                {"mesh_identity_header": "bad header", "mesh_trusted_sidecars": ["127.0.0.1"]},
                "not an HTTP header",
            ),
            (
                {"mesh_identity_header": "xfcc", "mesh_trusted_sidecars": ["10.0.0.0/33"]},
                "not an IP address or CIDR",
            ),
        ],
    )
    def test_bad_values(self, values: dict[str, Any], message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            TransportSettings(**values)

    def test_mesh_settings(self) -> None:
        settings = TransportSettings(
            mesh_identity_header="X-Forwarded-Client-Cert", mesh_trusted_sidecars=["127.0.0.1/32"]
        )
        assert settings.mesh_identity_header == "x-forwarded-client-cert"

    def test_tls13_only(self) -> None:
        settings = TransportSettings(minimum_tls_version="1.3")
        assert settings.minimum_version is ssl.TLSVersion.TLSv1_3
