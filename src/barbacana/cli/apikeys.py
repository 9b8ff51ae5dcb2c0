"""``barbacana apikeys``: create (shown once), list, rotate, revoke."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..identity import ApiKey
from ._admin import OPERATOR, identity_context, parse_duration, when
from ._common import DataDirOption, JsonOption, emit, fail, load_settings, run

app = typer.Typer(help="API keys for programs.", no_args_is_help=True)
COLUMNS = [
    "id",
    "name",
    "owner_id",
    "scopes",
    "expires_at",
    "revoked_at",
    "replaced_by",
    "retire_at",
]


def _row(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "owner_id": key.owner_id,
        "scopes": " ".join(key.scopes),
        "expires_at": when(key.expires_at),
        "revoked_at": when(key.revoked_at),
        "replaced_by": key.replaced_by,
        "retire_at": when(key.retire_at),
    }


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
        async with identity_context(settings, keys=False) as identity:
            user = await identity.users.by_name(owner)
            record, key = await identity.api_keys.create(name, user.id, list(scope))
            await identity.audit(
                "apikey.created",
                actor=OPERATOR,
                outcome="success",
                resource=f"apikey:{record.id}",
                details={"key_id": record.id, "owner": user.id, "scopes": list(record.scopes)},
            )
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
    """List API keys (never the keys themselves); a rotated key shows its replacement."""
    settings = load_settings(data_dir)

    async def go() -> list[dict[str, Any]]:
        async with identity_context(settings, keys=False) as identity:
            return [_row(key) for key in await identity.api_keys.all()]

    emit(run(go()), COLUMNS, as_json=as_json, title="API keys")


@app.command("rotate")
def rotate(
    key_id: Annotated[str, typer.Argument(help="The id of the key to replace")],
    overlap: Annotated[
        float,
        typer.Option(
            "--overlap",
            parser=parse_duration,
            help="How long the old key keeps working: 90s, 15m, 1h, 7d; 0 revokes it now "
            "[default: 1d]",
        ),
    ] = 86_400.0,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace an API key with a new one (printed once): same owner, name and scopes.

    The old key keeps working for --overlap, then is revoked. Recorded on the
    audit trail as ``secret.rotated`` (never the key).
    """
    settings = load_settings(data_dir)

    async def go() -> dict[str, Any]:
        async with identity_context(settings, keys=False) as identity:
            rotation = await identity.rotate_api_key(key_id, overlap, actor=OPERATOR)
        return {
            "id": rotation.new.id,
            "replaces": rotation.old.id,
            "name": rotation.new.name,
            "owner_id": rotation.new.owner_id,
            "scopes": " ".join(rotation.new.scopes),
            "previous_valid_until": when(rotation.previous_valid_until),
            "key": rotation.key,
        }

    row = run(go())
    emit([row], row.keys(), as_json=as_json, title="API key rotated (new key shown once)")


@app.command("revoke")
def revoke(key_id: str, data_dir: DataDirOption = None) -> None:
    """Revoke an API key now."""
    settings = load_settings(data_dir)

    async def go() -> bool:
        async with identity_context(settings, keys=False) as identity:
            revoked = await identity.api_keys.revoke(key_id)
            if revoked:
                await identity.audit(
                    "apikey.revoked",
                    actor=OPERATOR,
                    outcome="success",
                    resource=f"apikey:{key_id}",
                    details={"key_id": key_id},
                )
            return revoked

    if not run(go()):
        fail(f"no active API key with id {key_id!r}")
    typer.echo(f"revoked {key_id}")
