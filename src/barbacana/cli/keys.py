"""``barbacana keys``: list signing keys and rotate them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from ._admin import identity_context
from ._common import DataDirOption, JsonOption, emit, fail, load_settings, run

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


@app.command("rewrap")
def rewrap(
    rotate_kek: Annotated[
        bool,
        typer.Option("--rotate-kek", help="New KEK file (file://kek); move every key to it"),
    ] = False,
    from_kek_ref: Annotated[
        str | None,
        typer.Option("--from-kek-ref", help="The KEK the keys are sealed under now"),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Re-encrypt the sealed signing keys under the current (or a new) key-encryption key.

    Only each key's data key is re-encrypted; running services pick up the new
    KEK the next time they reload their keys, and keep serving meanwhile.
    """
    settings = load_settings(data_dir)
    if rotate_kek == (from_kek_ref is not None):
        fail("give exactly one of --rotate-kek or --from-kek-ref")

    async def go() -> int:
        from ..crypto import KeyEncryptionKey, Sealer
        from ..services._runtime import DataDir, open_sealer

        data = DataDir(settings.data_dir)
        current = await open_sealer(settings)
        async with identity_context(settings, current) as identity:
            if rotate_kek:
                if settings.secrets.kek_ref != "file://kek":
                    fail(
                        "--rotate-kek manages the KEK file of the data directory; "
                        "rotate another KEK at its source"
                    )
                new = KeyEncryptionKey.generate()
                old = current.kek
                moved = await identity.keys.rewrap(Sealer(new, previous=[old]))
                data.write_secret(data.secrets / "kek.previous", old.export().get_secret_value())
                data.write_secret(data.kek, new.export().get_secret_value())
                return moved
            source = settings.secrets.model_copy(update={"kek_ref": from_kek_ref})
            previous = await open_sealer(settings.model_copy(update={"secrets": source}))
            return await identity.keys.rewrap(Sealer(current.kek, previous=[previous.kek]))

    moved = run(go())
    typer.echo(f"rewrapped {moved} key(s)")
