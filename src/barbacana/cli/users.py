"""``barbacana users``: add, list, disable, roles."""

from __future__ import annotations

import secrets
import sys
from typing import Annotated

import typer

from ._admin import identity_context
from ._common import DataDirOption, JsonOption, emit, load_settings, run

app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)

RoleOption = Annotated[list[str], typer.Option("--role", help="A role (repeatable)")]


def _row(user: object) -> dict[str, object]:
    return {
        "id": user.id,  # type: ignore[attr-defined]
        "username": user.username,  # type: ignore[attr-defined]
        "roles": ",".join(user.roles),  # type: ignore[attr-defined]
        "disabled": user.disabled,  # type: ignore[attr-defined]
    }


@app.command("add")
def add(
    name: str,
    role: RoleOption = ["user"],  # noqa: B006 -- typer reads the default, never mutates it
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a user (the data directory is created if needed)."""
    settings = load_settings(data_dir)
    generated = not password_stdin
    password = secrets.token_urlsafe(18) if generated else sys.stdin.readline().rstrip("\r\n")

    async def go() -> dict[str, object]:
        async with identity_context(settings) as identity:
            unknown = [r for r in role if r not in settings.access.roles]
            if unknown:
                from ..identity import InvalidRequestError

                raise InvalidRequestError(f"unknown role(s): {', '.join(unknown)}")
            return _row(await identity.users.create(name, password, list(role)))

    row = run(go())
    if generated:
        row["password"] = password
    emit([row], row.keys(), as_json=as_json, title="User created")
    if generated and not as_json:
        typer.echo("The password is shown only once.")


@app.command("list")
def list_users(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List users."""
    settings = load_settings(data_dir)

    async def go() -> list[dict[str, object]]:
        async with identity_context(settings) as identity:
            return [_row(user) for user in await identity.users.all()]

    emit(run(go()), ["id", "username", "roles", "disabled"], as_json=as_json, title="Users")


@app.command("disable")
def disable(name: str, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Disable a user; every token it holds stops working within 2 seconds."""
    settings = load_settings(data_dir)

    async def go() -> dict[str, object]:
        async with identity_context(settings) as identity:
            user = await identity.users.by_name(name)
            return _row(await identity.users.set_disabled(user.id, True))

    emit(
        [run(go())], ["id", "username", "roles", "disabled"], as_json=as_json, title="User disabled"
    )


@app.command("roles")
def roles(
    name: str, role: RoleOption, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Replace a user's roles; tokens with the old roles stop working."""
    settings = load_settings(data_dir)

    async def go() -> dict[str, object]:
        async with identity_context(settings) as identity:
            unknown = [r for r in role if r not in settings.access.roles]
            if unknown:
                from ..identity import InvalidRequestError

                raise InvalidRequestError(f"unknown role(s): {', '.join(unknown)}")
            user = await identity.users.by_name(name)
            return _row(await identity.users.set_roles(user.id, list(role)))

    emit([run(go())], ["id", "username", "roles", "disabled"], as_json=as_json, title="Roles set")
