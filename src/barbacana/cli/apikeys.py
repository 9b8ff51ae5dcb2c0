"""``barbacana apikeys``: create (shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

import typer

from ._admin import identity_context
from ._common import DataDirOption, JsonOption, emit, fail, load_settings, run

app = typer.Typer(help="API keys for programs.", no_args_is_help=True)
COLUMNS = ["id", "name", "owner_id", "scopes", "revoked_at"]


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="What the key is for")],
    owner: Annotated[str, typer.Option("--owner", help="Username the key acts for")],
    scope: Annotated[list[str], typer.Option("--scope", help="A scope (repeatable)")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key; the key is printed once and stored only as a hash."""
    settings = load_settings(data_dir)
    unknown = [s for s in scope if s not in settings.access.scopes]
    if unknown:
        fail(f"unknown scope(s): {' '.join(unknown)}")

    async def go() -> dict[str, object]:
        async with identity_context(settings) as identity:
            user = await identity.users.by_name(owner)
            record, key = await identity.api_keys.create(name, user.id, list(scope))
            return {
                "id": record.id,
                "name": record.name,
                "owner_id": record.owner_id,
                "scopes": " ".join(record.scopes),
                "key": key,
            }

    row = run(go())
    emit([row], row.keys(), as_json=as_json, title="API key created (shown once)")


@app.command("list")
def list_keys(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List API keys (never the keys themselves)."""
    settings = load_settings(data_dir)

    async def go() -> list[dict[str, object]]:
        async with identity_context(settings) as identity:
            return [
                {
                    "id": k.id,
                    "name": k.name,
                    "owner_id": k.owner_id,
                    "scopes": " ".join(k.scopes),
                    "revoked_at": k.revoked_at,
                }
                for k in await identity.api_keys.all()
            ]

    emit(run(go()), COLUMNS, as_json=as_json, title="API keys")


@app.command("revoke")
def revoke(key_id: str, data_dir: DataDirOption = None) -> None:
    """Revoke an API key."""
    settings = load_settings(data_dir)

    async def go() -> bool:
        async with identity_context(settings) as identity:
            return await identity.api_keys.revoke(key_id)

    if not run(go()):
        fail(f"no active API key with id {key_id!r}")
    typer.echo(f"revoked {key_id}")
