"""``barbacana users``: add, list, disable, roles."""

from __future__ import annotations

import os
import secrets
import ssl
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from ._admin import identity_context
from ._common import DataDirOption, JsonOption, emit, fail, load_settings, run

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


UrlOption = Annotated[
    str, typer.Option("--url", help="The identity service, e.g. https://127.0.0.1:8000")
]
CaOption = Annotated[Path | None, typer.Option("--ca", help="CA file to trust (the dev CA)")]


def _admin_client(url: str, ca: Path | None) -> httpx.Client:
    token = os.environ.get("BARBACANA_TOKEN")
    if not token:
        fail("set BARBACANA_TOKEN to an access token with the users:write scope")
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if ca else True
    return httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, verify=verify, timeout=10
    )


def _answer(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        fail(f"{response.status_code}: {detail}")
    return response.json() if response.content else None


@app.command("locked")
def locked(url: UrlOption, ca: CaOption = None, as_json: JsonOption = False) -> None:
    """Accounts and addresses locked by brute-force protection (asks the running service)."""
    with _admin_client(url, ca) as client:
        rows = _answer(client.get("/users/lockouts"))
    emit(rows, ["kind", "name", "until"], as_json=as_json, title="Locked")


@app.command("unlock")
def unlock(name: str, url: UrlOption, ca: CaOption = None) -> None:
    """Lift the lock of an account (or client address) before it expires."""
    with _admin_client(url, ca) as client:
        _answer(client.delete(f"/users/lockouts/{name}"))
    typer.echo(f"unlocked {name}")
