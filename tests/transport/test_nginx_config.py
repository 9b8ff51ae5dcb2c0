"""render_nginx_config: the hardening it writes, and input that could inject directives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from barbacana.errors import ConfigurationError
from barbacana.transport import Pki, render_nginx_config


def render(pki: Pki, **overrides: Any) -> str:
    values: dict[str, Any] = {
        "upstreams": {"auth": "127.0.0.1:9001", "orders": "127.0.0.1:9002", "chat": "[::1]:9003"},
        "ca_file": pki.ca_file,
        "server_cert": pki.cert_file("auth"),
        "server_key": pki.key_file("auth"),
        "client_cert": pki.cert_file("auth"),
        "client_key": pki.key_file("auth"),
    }
    values.update(overrides)
    return render_nginx_config(**values)


def location(text: str, match: str) -> str:
    start = text.index(f"location {match} {{")
    return text[start : text.index("\n        }", start)]


class TestContent:
    def test_tls_policy(self, pki: Pki) -> None:
        text = render(pki)
        assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
        assert "ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;" in text
        assert "ssl_session_tickets off;" in text
        assert "server_tokens off;" in text
        assert "client_max_body_size 1m;" in text
        assert "listen 127.0.0.1:8443 ssl http2;" in text

    def test_forwarded_for_is_the_peer_only(self, pki: Pki) -> None:
        text = render(pki)
        assert "$proxy_add_x_forwarded_for;" not in text.replace("# $proxy_add", "")
        for block in ("= /token", "/orders/", "/ws/", "/"):
            body = location(text, block)
            assert "proxy_set_header X-Forwarded-For $remote_addr;" in body
            assert "proxy_set_header X-Forwarded-Proto $scheme;" in body
            assert 'proxy_set_header X-Forwarded-Client-Cert "";' in body
            assert "proxy_ssl_verify on;" in body
            assert f'proxy_ssl_trusted_certificate "{pki.ca_file.resolve()}";' in body
            assert f'proxy_ssl_certificate "{pki.cert_file("auth").resolve()}";' in body

    def test_routes(self, pki: Pki) -> None:
        text = render(pki)
        assert "proxy_pass https://barbacana_auth;" in location(text, "= /token")
        assert "limit_req zone=barbacana_login" in location(text, "= /token")
        assert "limit_req zone=barbacana_login" not in location(text, "/")
        chat = location(text, "/ws/")
        assert "proxy_pass https://barbacana_chat;" in chat
        assert "proxy_set_header Upgrade $http_upgrade;" in chat
        assert "proxy_ssl_name chat;" in chat
        assert "proxy_pass https://barbacana_auth;" in location(text, "= /ws/tickets")
        assert "proxy_pass https://barbacana_orders;" in location(text, "= /admin/dashboard")
        assert "server [::1]:9003;" in text

    def test_missing_services_get_no_route(self, pki: Pki) -> None:
        text = render(pki, upstreams={"orders": "127.0.0.1:9002"})
        assert "location = /token" not in text
        assert "proxy_pass https://barbacana_orders;" in location(text, "/")

    def test_unprivileged_paths(self, pki: Pki) -> None:
        text = render(pki)
        for directive in (
            "pid",
            "client_body_temp_path",
            "proxy_temp_path",
            "fastcgi_temp_path",
            "uwsgi_temp_path",
            "scgi_temp_path",
        ):
            line = next(x for x in text.splitlines() if x.strip().startswith(directive + " "))
            assert "/" not in line.split()[1], line  # relative: inside the -p prefix
        assert "user " not in text

    def test_redirect_and_http2_variants(self, pki: Pki) -> None:
        text = render(pki, listen_http=None, nginx_version=(1, 27, 0), listen_https=443)
        assert "return 301" not in text
        assert "listen 127.0.0.1:443 ssl;" in text
        assert "http2 on;" in text
        text = render(pki, listen_http=80, listen_https=443)
        assert "return 301 https://localhost$request_uri;" in text


class TestInjection:
    @pytest.mark.parametrize(
        "overrides",
        [
            {"upstreams": {"auth": "127.0.0.1:9001; include /etc/passwd"}},
            {"upstreams": {"auth": "127.0.0.1:99999"}},
            {"upstreams": {"Auth Service": "127.0.0.1:9001"}},
            {"upstreams": {}},
            {"server_name": "example.com; return 200"},
            {"client_max_body_size": "1m; x"},
            {"login_rate": "10r/m; x"},
            {"login_burst": 0},
            {"tls_names": {"auth": "a b"}},
            {"listen_address": "0.0.0.0; x"},
        ],
    )
    def test_refused(self, pki: Pki, overrides: dict[str, Any]) -> None:
        with pytest.raises(ConfigurationError):
            render(pki, **overrides)

    def test_path_with_metacharacters(self, pki: Pki, tmp_path: Path) -> None:
        evil = tmp_path / 'x";\n}' / "ca.pem"
        with pytest.raises(ConfigurationError, match="misread"):
            render(pki, ca_file=evil)
        with pytest.raises(ConfigurationError, match="misread"):
            render(pki, server_key=tmp_path / "$host.pem")
