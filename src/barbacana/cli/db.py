"""``barbacana db upgrade``: migrate every schema and prepare the data directory."""

from __future__ import annotations

import typer

from ._admin import bootstrap
from ._common import DataDirOption, console, load_settings, run

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(data_dir: DataDirOption = None) -> None:
    """Apply pending migrations (identity, orders) and create missing keys and clients."""
    settings = load_settings(data_dir)
    shown = run(bootstrap(settings))
    console.print("schemas up to date.")
    if "admin_password" in shown:
        console.print(
            f"created account {settings.identity.admin_username!r} with password "
            f"{shown['admin_password']} (shown only once)"
        )
