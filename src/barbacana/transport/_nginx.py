"""A hardened nginx configuration for the reference system behind one TLS front door.

nginx terminates TLS for clients with the same policy as our own servers,
redirects HTTP to HTTPS, rate-limits the login route, and forwards to each
service over mTLS, verifying the service against the internal CA and
presenting its own certificate (so services can tell nginx from anyone else).
Every path it writes (pid, temporary files, access log) is relative to the
prefix given with ``nginx -p DIR``, so it runs unprivileged from any folder::

    nginx -p DIR -c nginx.conf -e stderr -g 'daemon off;'
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigurationError
from ._settings import DEFAULT_CIPHERS

__all__ = ["ROUTES", "NginxRoute", "render_nginx_config"]


@dataclasses.dataclass(frozen=True)
class NginxRoute:
    """One ``location``: its nginx match, the service behind it, and its extras."""

    match: str
    service: str
    login: bool = False
    websocket: bool = False


#: Where the reference system's routes live. ``/`` goes to ``auth`` (or the first
#: upstream given when there is no ``auth``).
ROUTES: tuple[NginxRoute, ...] = (
    NginxRoute("= /token", "auth", login=True),
    NginxRoute("= /ws/tickets", "auth"),
    NginxRoute("/ws/", "chat", websocket=True),
    NginxRoute("= /orders", "orders"),
    NginxRoute("/orders/", "orders"),
    NginxRoute("= /admin/dashboard", "orders"),
)

_SERVICE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_RATE = re.compile(r"^[1-9][0-9]{0,5}r/[sm]$")
_SIZE = re.compile(r"^[1-9][0-9]{0,9}[kKmM]?$")
# Characters that would let a path escape its directive (or be read as a variable).
_UNSAFE_PATH = re.compile(r"[\"'$;{}\\\s#]")
# Kept in step with the web layer's own X-Request-ID check.
_REQUEST_ID = r"^[A-Za-z0-9._:-]{1,128}$"


def _address(value: str, what: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"{what}: {value!r} is not HOST:PORT")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        if not _HOST.fullmatch(host):
            raise ConfigurationError(f"{what}: {host!r} is not a host name or address") from None
    return value


def _path(value: str | os.PathLike[str], what: str) -> str:
    text = os.fspath(Path(value).resolve())
    if _UNSAFE_PATH.search(text):
        raise ConfigurationError(f"{what}: the path {text!r} has characters nginx would misread")
    return text


def _proxy_block(
    service: str, tls_name: str, files: Mapping[str, str], *, websocket: bool
) -> list[str]:
    lines = [
        f"proxy_pass https://barbacana_{service};",
        "proxy_http_version 1.1;",
        "proxy_set_header Host $host;",
        # The client's address as nginx saw it, and nothing else: with
        # $proxy_add_x_forwarded_for a client could send "X-Forwarded-For: 1.2.3.4"
        # and nginx would append its real address after the forged one, so an
        # application reading the list would be lied to. One hop, one true value.
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $host;",
        "proxy_set_header X-Request-ID $barbacana_request_id;",
        # Headers a client must never be able to slip through to a service:
        # RFC 7239 Forwarded, and the mesh identity headers that a service may
        # be configured to believe from local sidecars.
        'proxy_set_header Forwarded "";',
        'proxy_set_header X-Forwarded-Client-Cert "";',
        'proxy_set_header L5d-Client-Id "";',
    ]
    if websocket:
        lines += [
            "proxy_set_header Upgrade $http_upgrade;",
            "proxy_set_header Connection $connection_upgrade;",
            "proxy_read_timeout 300s;",
            "proxy_send_timeout 300s;",
        ]
    else:
        # An empty Connection header keeps the upstream connection alive (keepalive).
        lines.append('proxy_set_header Connection "";')
    lines += [
        # mTLS to the service: verify it against the internal CA, by name...
        "proxy_ssl_verify on;",
        "proxy_ssl_verify_depth 2;",
        f'proxy_ssl_trusted_certificate "{files["ca"]}";',
        f"proxy_ssl_name {tls_name};",
        "proxy_ssl_server_name on;",
        # ...and present nginx's own certificate (SPIFFE ID .../svc/proxy).
        f'proxy_ssl_certificate "{files["client_cert"]}";',
        f'proxy_ssl_certificate_key "{files["client_key"]}";',
        "proxy_ssl_protocols TLSv1.2 TLSv1.3;",
        f"proxy_ssl_ciphers {DEFAULT_CIPHERS};",
        "proxy_ssl_session_reuse on;",
    ]
    return lines


def render_nginx_config(
    *,
    upstreams: Mapping[str, str],
    ca_file: str | os.PathLike[str],
    server_cert: str | os.PathLike[str],
    server_key: str | os.PathLike[str],
    client_cert: str | os.PathLike[str],
    client_key: str | os.PathLike[str],
    listen_https: int = 8443,
    listen_http: int | None = 8080,
    listen_address: str = "127.0.0.1",
    server_name: str = "localhost",
    client_max_body_size: str = "1m",
    login_rate: str = "10r/m",
    login_burst: int = 5,
    request_rate: str = "50r/s",
    request_burst: int = 100,
    connections_per_client: int = 100,
    tls_names: Mapping[str, str] | None = None,
    nginx_version: tuple[int, int, int] | None = None,
    routes: tuple[NginxRoute, ...] = ROUTES,
) -> str:
    """Return an ``nginx.conf`` for the services in ``upstreams`` (name → ``HOST:PORT``).

    ``server_cert``/``server_key`` are what clients see; ``client_cert``/``client_key``
    is nginx's identity towards the services (both may be one service certificate,
    which carries ``serverAuth`` and ``clientAuth``). ``tls_names`` gives the name
    each service's certificate is checked against (default: the service name).
    ``nginx_version`` picks ``http2 on;`` (1.25.1 and later) or ``listen … http2``.

    Raises:
        ConfigurationError: a value that is not what it claims to be (addresses,
            names, sizes, rates, paths with characters nginx would misread).
    """
    if not upstreams:
        raise ConfigurationError("give at least one upstream service")
    for name, address in upstreams.items():
        if not _SERVICE.fullmatch(name):
            raise ConfigurationError(f"{name!r} is not a service name")
        _address(address, name)
    names = dict(tls_names or {})
    for service in upstreams:
        names.setdefault(service, service)
    for tls_name in names.values():
        if not _HOST.fullmatch(tls_name):
            raise ConfigurationError(f"{tls_name!r} is not a host name to verify")
    if not _HOST.fullmatch(server_name):
        raise ConfigurationError(f"{server_name!r} is not a server name")
    _address(f"{listen_address}:{listen_https}", "listen_https")
    if listen_http is not None:
        _address(f"{listen_address}:{listen_http}", "listen_http")
    if not _SIZE.fullmatch(client_max_body_size):
        raise ConfigurationError(f"{client_max_body_size!r} is not an nginx size such as 1m")
    for rate in (login_rate, request_rate):
        if not _RATE.fullmatch(rate):
            raise ConfigurationError(f"{rate!r} is not an nginx rate such as 10r/m")
    for number in (login_burst, request_burst, connections_per_client):
        if not 0 < number <= 100_000:
            raise ConfigurationError("bursts and connection limits must be 1 to 100000")
    files = {
        "ca": _path(ca_file, "ca_file"),
        "server_cert": _path(server_cert, "server_cert"),
        "server_key": _path(server_key, "server_key"),
        "client_cert": _path(client_cert, "client_cert"),
        "client_key": _path(client_key, "client_key"),
    }
    http2_directive = nginx_version is not None and nginx_version >= (1, 25, 1)
    listen = f"{listen_address}:{listen_https}"
    if ":" in listen_address:
        listen = f"[{listen_address}]:{listen_https}"
    https_port = "" if listen_https == 443 else f":{listen_https}"

    out: list[str] = []

    def emit(indent: int, *lines: str) -> None:
        out.extend(("    " * indent + line) if line else "" for line in lines)

    emit(
        0,
        "# nginx front door for Barbacana, written by `barbacana proxy-config nginx`.",
        "# Run it from a prefix folder, unprivileged:",
        "#   nginx -p DIR -c nginx.conf -e stderr -g 'daemon off;'",
        "# Service certificates are short-lived: after `barbacana pki rotate proxy`,",
        "# run `nginx -p DIR -s reload` so nginx loads the new one.",
        "",
        "worker_processes 1;",
        "pid nginx.pid;",
        "error_log stderr notice;",
        "",
        "events {",
        "    worker_connections 1024;",
        "}",
        "",
        "http {",
    )
    emit(
        1,
        "# Temporary files inside the prefix: no root-owned /var paths needed.",
        "client_body_temp_path client_body_temp;",
        "proxy_temp_path proxy_temp;",
        "fastcgi_temp_path fastcgi_temp;",
        "uwsgi_temp_path uwsgi_temp;",
        "scgi_temp_path scgi_temp;",
        "",
        "default_type application/octet-stream;",
        "# No version in the Server header or error pages.",
        "server_tokens off;",
        f"client_max_body_size {client_max_body_size};",
        "# Slow clients (slowloris) are cut off instead of holding connections.",
        "client_header_timeout 10s;",
        "client_body_timeout 10s;",
        "send_timeout 10s;",
        "keepalive_timeout 30s;",
        "large_client_header_buffers 4 8k;",
        "",
        "# X-Request-ID: a client's own id is kept when it is short and plain (the",
        "# same rule the services apply), so a caller can correlate its logs with",
        "# ours; anything else (absent, too long, odd characters that could forge",
        "# log lines) is replaced by nginx's random $request_id. The id only",
        "# correlates: nothing trusts it for security.",
        "map $http_x_request_id $barbacana_request_id {",
        "    default $request_id;",
        f'    "~{_REQUEST_ID}" $http_x_request_id;',
        "}",
        "",
        "# Only POST /token counts towards the login limit; an empty key is not counted.",
        "map $request_method $barbacana_login_key {",
        '    default "";',
        "    POST $binary_remote_addr;",
        "}",
        "",
        "map $http_upgrade $connection_upgrade {",
        "    default upgrade;",
        '    "" close;',
        "}",
        "",
        "log_format barbacana '$remote_addr [$time_iso8601] \"$request\" $status '",
        "                     '$body_bytes_sent rid=$barbacana_request_id rt=$request_time';",
        "access_log access.log barbacana;",
        "",
        "# Rate limits per client address; refusals are 429 (RFC 6585 §4).",
        f"limit_req_zone $barbacana_login_key zone=barbacana_login:10m rate={login_rate};",
        f"limit_req_zone $binary_remote_addr zone=barbacana_all:10m rate={request_rate};",
        "limit_conn_zone $binary_remote_addr zone=barbacana_conn:10m;",
        "limit_req_status 429;",
        "limit_conn_status 429;",
        "limit_req_log_level warn;",
        "",
        "# TLS towards clients: the same policy as the services themselves",
        "# (RFC 8996, RFC 9325): TLS 1.2 and 1.3 only, ECDHE + AEAD suites only.",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        f"ssl_ciphers {DEFAULT_CIPHERS};",
        "# Every offered suite is strong, so the client's preference may win (Mozilla).",
        "ssl_prefer_server_ciphers off;",
        "ssl_ecdh_curve X25519:prime256v1:secp384r1;",
        "ssl_session_cache shared:barbacana_tls:10m;",
        "ssl_session_timeout 1d;",
        "# Ticket keys would live as long as nginx and undo forward secrecy.",
        "ssl_session_tickets off;",
        "# nginx never enables TLS compression (CRIME); renegotiation is refused too.",
        "ssl_conf_command Options NoRenegotiation;",
        "",
    )
    for service, address in upstreams.items():
        emit(
            1,
            f"upstream barbacana_{service} {{",
            f"    server {address};",
            "    keepalive 16;",
            "}",
            "",
        )
    if listen_http is not None:
        http_listen = f"{listen_address}:{listen_http}"
        if ":" in listen_address:
            http_listen = f"[{listen_address}]:{listen_http}"
        emit(
            1,
            "# Plain HTTP only redirects, to the configured name (not the Host header).",
            "server {",
            f"    listen {http_listen};",
            f"    server_name {server_name};",
            f"    return 301 https://{server_name}{https_port}$request_uri;",
            "}",
            "",
        )
    emit(1, "server {")
    emit(2, f"listen {listen} ssl{'' if http2_directive else ' http2'};")
    if http2_directive:
        emit(2, "http2 on;")
    emit(
        2,
        f"server_name {server_name};",
        f'ssl_certificate "{files["server_cert"]}";',
        f'ssl_certificate_key "{files["server_key"]}";',
        "",
        f"limit_req zone=barbacana_all burst={request_burst} nodelay;",
        f"limit_conn barbacana_conn {connections_per_client};",
        "error_page 429 = @too_many_requests;",
        "",
        "location @too_many_requests {",
        "    default_type application/problem+json;",
        '    add_header Retry-After "60" always;',
        '    add_header X-Content-Type-Options "nosniff" always;',
        "    add_header X-Request-ID $barbacana_request_id always;",
        '    return 429 \'{"type":"about:blank","title":"Too many requests",'
        '"status":429,"code":"rate_limited",'
        '"detail":"Too many requests from your address; retry later."}\';',
        "}",
    )
    default_service = "auth" if "auth" in upstreams else next(iter(upstreams))
    for route in (*routes, NginxRoute("/", default_service)):
        if route.service not in upstreams:
            continue
        emit(0, "")
        emit(2, f"location {route.match} {{")
        if route.login:
            # Both zones apply: the general one, and the strict one for logins.
            emit(
                3,
                f"limit_req zone=barbacana_all burst={request_burst} nodelay;",
                f"limit_req zone=barbacana_login burst={login_burst} nodelay;",
            )
        emit(
            3,
            *_proxy_block(route.service, names[route.service], files, websocket=route.websocket),
        )
        emit(2, "}")
    emit(1, "}")
    emit(0, "}", "")
    return "\n".join(out)
