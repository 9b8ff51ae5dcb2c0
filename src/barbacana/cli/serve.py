"""``barbacana serve SERVICE``: run one reference service in this process."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
import uvicorn

from ._common import DataDirOption, load_settings

class Service(str, Enum):
    auth = "auth"
    orders = "orders"


def serve(
    service: Service,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    data_dir: DataDirOption = None,
) -> None:
    """Serve SERVICE with uvicorn until SIGINT/SIGTERM."""
    settings = load_settings(data_dir, service_name=service.value)
    if service is Service.auth:
        from ..services._runtime import load_sealer
        from ..services.auth.app import create_app

        application = create_app(settings, sealer=load_sealer(settings))
    else:
        from ..services.orders.app import create_app as create_orders

        application = create_orders(settings)
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()
