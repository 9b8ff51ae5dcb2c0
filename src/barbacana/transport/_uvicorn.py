"""Serve an ASGI app over TLS or mTLS with uvicorn, with the peer certificate in the scope.

uvicorn verifies client certificates but does not tell the application which
one it verified. The protocol classes here read the verified certificate once
per connection (``transport.get_extra_info("ssl_object")`` in
``connection_made``) and set the ASGI TLS extension,
``scope["extensions"]["tls"]``, on every request and WebSocket of that
connection: ``server_cert``, ``client_cert_chain``, ``client_cert_name``,
``client_cert_error``, ``tls_version`` and ``cipher_suite``
(https://asgi.readthedocs.io/en/latest/specs/tls.html).

Python 3.11 exposes only the peer's leaf certificate, so ``client_cert_chain``
holds that one certificate. ``client_cert_error`` is always ``None``: a client
certificate that fails verification aborts the handshake, so no request from
it ever reaches the application.
"""

from __future__ import annotations

import asyncio
import functools
import math
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from ..errors import ConfigurationError
from ._pki import ServiceCredentials
from ._reload import CertificateReloader
from ._settings import TransportSettings
from ._tls import server_context

__all__ = [
    "TLSConfig",
    "TLSH11Protocol",
    "TLSHttpToolsProtocol",
    "TLSWebSocketsProtocol",
    "serve_config",
    "tls_extension",
]

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@functools.cache
def _cipher_ids() -> dict[str, int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("ALL:@SECLEVEL=0")
    # ``id`` is OpenSSL's 0x03000000 | IANA code; the ASGI extension wants the IANA code.
    return {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}


def tls_extension(ssl_object: ssl.SSLObject, server_cert: str | None) -> dict[str, Any]:
    """The ASGI TLS extension for the connection behind ``ssl_object``."""
    der = ssl_object.getpeercert(binary_form=True)
    chain: list[str] = []
    name: str | None = None
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    cipher = ssl_object.cipher()
    return {
        "server_cert": server_cert,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": _cipher_ids().get(cipher[0]) if cipher else None,
    }


class _WithTLSExtension:
    """Per-connection wrapper that adds the TLS extension to each scope."""

    __slots__ = ("app", "extension")

    def __init__(self, app: ASGIApp, extension: dict[str, Any]) -> None:
        self.app = app
        self.extension = extension

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            # A fresh copy per scope: one request cannot alter what the next one sees.
            tls = dict(self.extension, client_cert_chain=list(self.extension["client_cert_chain"]))
            scope["extensions"] = {**(scope.get("extensions") or {}), "tls": tls}
        await self.app(scope, receive, send)


def _install(protocol: Any, transport: asyncio.BaseTransport) -> None:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return
    server_cert: str | None = getattr(ssl_object, "served_certificate", None)
    protocol.app = _WithTLSExtension(protocol.app, tls_extension(ssl_object, server_cert))


class TLSH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the ASGI TLS extension."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _install(self, transport)


class TLSWebSocketsProtocol(WebSocketsSansIOProtocol):
    """uvicorn's default WebSocket protocol, plus the ASGI TLS extension."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        _install(self, transport)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
    TLSHttpToolsProtocol: type[asyncio.Protocol] | None = None
else:

    class _TLSHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, plus the ASGI TLS extension."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            _install(self, transport)

    TLSHttpToolsProtocol = _TLSHttpToolsProtocol


class TLSConfig(uvicorn.Config):
    """A :class:`uvicorn.Config` for TLS: our protocols, our context, our reloader.

    Run it with ``await uvicorn.Server(config).serve()``. When ``credentials``
    are given, the certificate files are watched and reloaded into ``context``;
    the watcher is polled from uvicorn's own tick (``callback_notify``) on the
    event-loop thread, at most once a second.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        context: ssl.SSLContext,
        credentials: ServiceCredentials | None,
        http_protocol: type[asyncio.Protocol],
        reload_interval: float,
        **options: Any,
    ) -> None:
        user_notify: Callable[[], Awaitable[None]] | None = options.pop("callback_notify", None)
        self.tls_context = context
        #: PEM of the certificate new handshakes present (the ``server_cert`` field).
        self.server_cert_pem: str | None = None
        self.reloader: CertificateReloader | None = None
        if credentials is not None:
            self.reloader = CertificateReloader(
                context,
                credentials.cert_file,
                credentials.key_file,
                on_reload=self._certificate_reloaded,
            )
            self.server_cert_pem = _pem(self.reloader.certificate)
            context.sslobject_class = _served_sslobject_class(self)

        async def notify() -> None:
            if self.reloader is not None:
                self.reloader.check()
            if user_notify is not None:
                await user_notify()

        if self.reloader is not None:
            options["callback_notify"] = notify
            # uvicorn ticks once a second and calls back when more than this many
            # seconds have passed since the last call.
            options["timeout_notify"] = max(0, math.ceil(reload_interval) - 1)
        elif user_notify is not None:
            options["callback_notify"] = user_notify
        super().__init__(
            app,
            http=http_protocol,
            ws=TLSWebSocketsProtocol,
            ssl_context_factory=lambda _config, _default: context,
            **options,
        )

    def _certificate_reloaded(self, cert: x509.Certificate) -> None:
        self.server_cert_pem = _pem(cert)


def _served_sslobject_class(config: TLSConfig) -> type[ssl.SSLObject]:
    """An SSLObject class that notes which certificate its connection presents.

    OpenSSL copies the context's certificate into each connection when the
    connection object is created (``SSL_new``, at accept time), not when the
    handshake runs; a reload landing in between does not change what that
    connection presents. Creation and reload both run on the event-loop thread,
    so the certificate current at creation is the one served.
    """

    class ServedSSLObject(ssl.SSLObject):
        served_certificate: str | None

        def __new__(cls, *args: Any, **kwargs: Any) -> ServedSSLObject:
            instance = super().__new__(cls)
            instance.served_certificate = config.server_cert_pem
            return instance

    return ServedSSLObject


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


_FORBIDDEN = frozenset(
    {
        "http",
        "ws",
        "ssl_keyfile",
        "ssl_certfile",
        "ssl_keyfile_password",
        "ssl_version",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ciphers",
        "ssl_context_factory",
    }
)


def serve_config(
    app: ASGIApp,
    *,
    credentials: ServiceCredentials | None = None,
    context: ssl.SSLContext | None = None,
    host: str = "127.0.0.1",
    port: int = 8443,
    require_client_cert: bool = False,
    settings: TransportSettings | None = None,
    http: Literal["httptools", "h11"] = "httptools",
    **uvicorn_options: Any,
) -> TLSConfig:
    """A uvicorn configuration serving ``app`` over TLS, with peer identity in the scope.

    Give either ``credentials`` (from :meth:`Pki.ensure_service`): the context is
    built here, client certificates are verified against the internal CA
    (optional, or required with ``require_client_cert``), and renewals of the
    certificate files are loaded without a restart; or a ready ``context``
    (nothing is reloaded).

    uvicorn's proxy-header rewriting and ``server`` header are off by default:
    forwarded headers are resolved by the web layer from its trusted-proxy list,
    and the server software is nobody's business.

    Raises:
        ConfigurationError: both or neither of ``credentials`` and ``context``, or
            an option that would replace the TLS setup (``ssl_*``, ``http``, ``ws``).
    """
    if (credentials is None) == (context is None):
        raise ConfigurationError("serve_config needs exactly one of credentials or context")
    clashing = sorted(_FORBIDDEN & uvicorn_options.keys())
    if clashing:
        raise ConfigurationError(
            f"serve_config sets up TLS itself; do not pass {', '.join(clashing)}"
        )
    settings = settings or TransportSettings()
    if credentials is not None:
        context = server_context(
            credentials.cert_file,
            credentials.key_file,
            ca_file=credentials.ca_file,
            client_auth="required" if require_client_cert else "optional",
            settings=settings,
        )
    elif context is None:  # unreachable: checked above; narrows the type
        raise ConfigurationError("serve_config needs a TLS context")
    if http not in ("httptools", "h11"):
        raise ConfigurationError(f"http must be 'httptools' or 'h11', not {http!r}")
    if http == "h11" or TLSHttpToolsProtocol is None:
        protocol: type[asyncio.Protocol] = TLSH11Protocol
    else:
        protocol = TLSHttpToolsProtocol
    uvicorn_options.setdefault("proxy_headers", False)
    uvicorn_options.setdefault("server_header", False)
    return TLSConfig(
        app,
        context=context,
        credentials=credentials,
        http_protocol=protocol,
        reload_interval=settings.reload_interval.total_seconds(),
        host=host,
        port=port,
        **uvicorn_options,
    )
