"""``barbacana serve SERVICE``: run one reference service in this process."""

from __future__ import annotations

import functools
from enum import StrEnum
from typing import Annotated, Any

import typer
import uvicorn

from ..logs import configure_logging
from ..services._runtime import DataDir
from ..transport import Pki, mtls_client, serve_config
from ._common import DataDirOption, load_settings, run


class Service(StrEnum):
    auth = "auth"
    orders = "orders"
    chat = "chat"


def serve(
    service: Service,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    data_dir: DataDirOption = None,
    plain_http: Annotated[bool, typer.Option("--plain-http", help="No TLS")] = False,
) -> None:
    """Serve SERVICE with uvicorn until SIGINT/SIGTERM (HTTPS with the data directory's CA)."""
    settings = load_settings(data_dir, service_name=service.value)
    # JSON lines with the request id on every line; secrets redacted (DESIGN invariant 10).
    configure_logging(service.value, "DEBUG" if settings.debug else "INFO")
    pki = None if plain_http else Pki(DataDir(settings.data_dir).pki, settings=settings.transport)
    if service is Service.auth:
        from ..services._runtime import open_sealer
        from ..services.auth.app import create_app

        application = create_app(
            settings,
            sealer=run(open_sealer(settings)),
            reseal=functools.partial(open_sealer, settings),
        )
    elif service is Service.orders:
        from ..services.orders.app import create_app as create_orders

        if pki is None:
            application = create_orders(settings)
        else:
            # Calls to the identity service present this service's certificate (mTLS).
            factory = functools.partial(mtls_client, pki, "orders", settings=settings.transport)
            application = create_orders(settings, client_factory=factory)
    else:
        from ..services.chat.app import create_app as create_chat
        from ..websocket import WebSocketSettings, WebSocketsProtocol, uvicorn_ws_options

        ws: WebSocketSettings = getattr(settings, "websocket", None) or WebSocketSettings()
        if pki is None:
            application = create_chat(settings, ws)
        else:
            # Tickets are redeemed at the identity service with this service's certificate.
            factory = functools.partial(mtls_client, pki, "chat", settings=settings.transport)
            application = create_chat(settings, ws, client_factory=factory)
    options: dict[str, Any] = {"access_log": False, "lifespan": "on", "log_config": None}
    if service is Service.chat:
        # The server refuses oversize frames from their header, and pings idle peers.
        options.update(uvicorn_ws_options(ws))
    if pki is None:
        if service is Service.chat:
            options["ws"] = WebSocketsProtocol
        config = uvicorn.Config(
            application, host=host, port=port, server_header=False, proxy_headers=False, **options
        )
    else:
        # One listener per service with optional client certificates: public routes
        # stay server-auth-only, internal routes demand a verified peer.
        config = serve_config(
            application,
            credentials=pki.credentials(service.value),
            host=host,
            port=port,
            require_client_cert=False,
            settings=settings.transport,
            **options,
        )
        if service is Service.chat:
            from ..transport import TLSWebSocketsProtocol
            from ..websocket import WebSocketsProtocol

            class ChatTLSProtocol(WebSocketsProtocol, TLSWebSocketsProtocol):
                """The TLS extension, and denied handshakes that complete without an error log."""

            config.ws = ChatTLSProtocol
    uvicorn.Server(config).run()
