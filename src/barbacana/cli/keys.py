"""``barbacana keys``: list signing keys and rotate them."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from ._admin import identity_context
from ._common import DataDirOption, JsonOption, emit, load_settings, run

app = typer.Typer(help="Signing keys: list, rotate.", no_args_is_help=True)
COLUMNS = ["kid", "alg", "state", "created", "activated", "retire_at"]


def _when(value: object) -> str | None:
    if not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


def _rows(keys: list[dict[str, object]]) -> list[dict[str, object]]:
    return [
        {
            "kid": key["kid"],
            "alg": key["alg"],
            "state": key["state"],
            "created": _when(key["created_at"]),
            "activated": _when(key["activated_at"]),
            "retire_at": _when(key["retire_at"]),
        }
        for key in keys
    ]


@app.command("list")
def list_keys(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Every key with its state (next, active, retiring, retired) and dates."""
    settings = load_settings(data_dir)

    async def go() -> list[dict[str, object]]:
        async with identity_context(settings) as identity:
            return await identity.keys.all()

    emit(_rows(run(go())), COLUMNS, as_json=as_json, title="Signing keys")


@app.command("rotate")
def rotate(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """One rotation step: next → active → retiring → retired (services pick it up)."""
    settings = load_settings(data_dir)

    async def go() -> list[dict[str, object]]:
        async with identity_context(settings) as identity:
            return await identity.rotate_keys({"type": "operator"})

    emit(_rows(run(go())), COLUMNS, as_json=as_json, title="Signing keys after rotation")
