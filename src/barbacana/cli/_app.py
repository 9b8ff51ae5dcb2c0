"""The ``barbacana`` typer app: one sub-app per command group."""

from __future__ import annotations

import typer

from . import apikeys, audit, check, clients, db, keys, pki, proxy, serve, up, users

app = typer.Typer(
    name="barbacana",
    help="Defense in depth for Python microservices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(up.app)
app.command("serve", hidden=True)(serve.serve)
app.add_typer(users.app, name="users")
app.add_typer(keys.app, name="keys")
app.add_typer(apikeys.app, name="apikeys")
app.add_typer(clients.app, name="clients")
app.add_typer(db.app, name="db")
app.add_typer(pki.app, name="pki")
app.add_typer(proxy.app, name="proxy-config")
app.add_typer(audit.app, name="audit")
app.command("check")(check.check)


def main() -> None:
    """Console-script entry point."""
    app()
