"""``barbacana clients``: service clients (list) and their secrets (rotate-secret).

A rotation gives the client a new secret and keeps the previous one working
for ``--overlap``. The new secret is written where the reference services read
it (``<data-dir>/secrets/<client>.client-secret``, their
``BARBACANA_CLIENT_SECRET_FILE``): a running service re-reads it, at the latest
when the identity service first refuses the previous one, so nothing restarts
and no request fails. For a service that reads its secret elsewhere (Vault, AWS
Secrets Manager), ``--show`` prints the new secret once instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ..identity import ServiceClient
from ..services._runtime import DataDir
from ._admin import OPERATOR, identity_context, parse_duration, when, write_secret_file
from ._common import DataDirOption, JsonOption, emit, err_console, fail, load_settings, run

app = typer.Typer(help="Service clients and their secrets.", no_args_is_help=True)
COLUMNS = ["client_id", "scopes", "disabled", "created", "previous_valid_until"]


def _row(client: ServiceClient) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "scopes": " ".join(client.scopes),
        "disabled": client.disabled,
        "created": when(client.created_at),
        "previous_valid_until": when(client.previous_valid_until),
    }


@app.command("list")
def list_clients(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Service clients; ``previous_valid_until`` is set while a rotation overlaps."""
    settings = load_settings(data_dir)

    async def go() -> list[dict[str, Any]]:
        async with identity_context(settings, keys=False) as identity:
            return [_row(client) for client in await identity.clients.all()]

    emit(run(go()), COLUMNS, as_json=as_json, title="Service clients")


@app.command("rotate-secret")
def rotate_secret(
    client_id: Annotated[str, typer.Argument(help="The client, e.g. orders")],
    overlap: Annotated[
        float,
        typer.Option(
            "--overlap",
            parser=parse_duration,
            help="How long the previous secret keeps working: 90s, 15m, 1h, 7d; 0 ends it now "
            "[default: 1h]",
        ),
    ] = 3600.0,
    secret_file: Annotated[
        Path | None,
        typer.Option(
            "--secret-file",
            help="Where the service reads its secret "
            "[default: <data-dir>/secrets/<client>.client-secret]",
        ),
    ] = None,
    show: Annotated[
        bool, typer.Option("--show", help="Print the new secret once instead of writing a file")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Rotate even while a previous rotation still overlaps"),
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give CLIENT a new secret; the previous one keeps working for --overlap.

    Recorded on the audit trail as ``secret.rotated`` (never the secret).
    """
    settings = load_settings(data_dir)
    target = None if show else secret_file or DataDir(settings.data_dir).client_secret(client_id)
    if target is not None:
        # Before rotating: a secret that cannot be stored must not replace the current one.
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            fail(f"cannot create {target.parent} ({exc.strerror}); nothing was rotated")
        if not os.access(target.parent, os.W_OK):
            fail(f"cannot write in {target.parent}; nothing was rotated")

    async def go() -> dict[str, Any]:
        async with identity_context(settings, keys=False) as identity:
            rotation = await identity.rotate_client_secret(
                client_id, overlap, actor=OPERATOR, force=force
            )
        row: dict[str, Any] = {
            "client_id": rotation.client_id,
            "previous_valid_until": when(rotation.previous_valid_until),
        }
        if target is not None:
            try:
                write_secret_file(target, rotation.secret)
            except OSError as exc:
                # Rotated but not stored: show it once rather than lose it.
                err_console.print(
                    f"[bold red]error:[/] cannot write {target} ({exc.strerror}); store the "
                    "secret below there yourself before the previous one stops working"
                )
            else:
                row["secret_file"] = str(target)
                return row
        row["client_secret"] = rotation.secret
        return row

    row = run(go())
    emit([row], row.keys(), as_json=as_json, title="Client secret rotated")
    if "client_secret" in row and not as_json:
        typer.echo("The secret is shown only once.")
