"""``barbacana keys``: list signing keys, rotate them, rewrap sealed keys under the KEK."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import typer

from ..audit import Actor, AuditKey, AuditKeyError, AuditTrail, SqlAuditStore
from ..crypto import Rewrapper, Sealer
from ..errors import BarbacanaError
from ..identity import Identity
from ..settings import Settings
from ..storage import Database
from ._admin import identity_context
from ._common import DataDirOption, JsonOption, emit, err_console, fail, load_settings, run

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
    """Re-encrypt the sealed keys under the current (or a new) key-encryption key.

    Moves the token-signing keys (in the database) and the audit key files (in
    the data directory). Only each key's data key is re-encrypted; running
    services pick up the new KEK the next time they reload their keys, and keep
    serving meanwhile. The rewrap is recorded in the audit trail (``key.rewrapped``).
    """
    settings = load_settings(data_dir)
    if rotate_kek == (from_kek_ref is not None):
        fail("give exactly one of --rotate-kek or --from-kek-ref")
    if rotate_kek and settings.secrets.kek_ref != "file://kek":
        fail(
            "--rotate-kek manages the KEK file of the data directory; "
            "rotate another KEK at its source"
        )

    async def go() -> _Rewrapped:
        from ..crypto import KeyEncryptionKey, Sealer
        from ..services._runtime import DataDir, open_sealer

        data = DataDir(settings.data_dir)
        current = await open_sealer(settings)
        staged = data.secrets / "kek.next"
        if rotate_kek:
            old, new = current.kek, KeyEncryptionKey.generate()
            # The new KEK is on disk before anything is sealed under it: a crash part-way
            # never leaves a key sealed under a KEK that exists nowhere.
            data.write_secret(staged, new.export().get_secret_value())
        else:
            source = settings.secrets.model_copy(update={"kek_ref": from_kek_ref})
            old = (await open_sealer(settings.model_copy(update={"secrets": source}))).kek
            new = current.kek
        sealer = Sealer(new, previous=[old])
        keys = await _rewrap_signing_keys(settings, sealer)
        audit_files = _rewrap_audit_files(settings, sealer)
        if rotate_kek:
            data.write_secret(data.secrets / "kek.previous", old.export().get_secret_value())
            os.replace(staged, data.kek)
        done = _Rewrapped(keys, audit_files, old.kek_id_hex, new.kek_id_hex)
        done.recorded = await _record(settings, Sealer(new), done, rotated=rotate_kek)
        return done

    done = run(go())
    typer.echo(f"rewrapped {done.keys} key(s) and {done.audit_files} audit key file(s)")
    if done.recorded is not None:
        err_console.print(
            f"[yellow]warning:[/] the keys were rewrapped, but the audit event was not "
            f"recorded: {done.recorded}"
        )


@dataclass
class _Rewrapped:
    keys: int
    audit_files: int
    old_kek_id: str
    new_kek_id: str
    #: Why the audit event could not be recorded (``None``: it was, or there is no trail).
    recorded: str | None = None


async def _rewrap_signing_keys(settings: Settings, sealer: Sealer) -> int:
    """Move the token-signing keys in the database to ``sealer``'s current KEK; how many moved.

    Only the key store is opened (no audit trail under the old KEK while the
    audit key files move); the rewrap is recorded afterwards, under the new one.
    """
    db = Database.from_settings(settings, pool_size=2)
    try:
        identity = Identity(settings, db, sealer)
        await identity.migrate()
        await identity.start(background=False)
        return await identity.keys.rewrap(sealer)
    finally:
        await db.dispose()


def _rewrap_audit_files(settings: Settings, sealer: Rewrapper) -> int:
    """Move the audit key files to ``sealer``'s current KEK; how many changed."""
    audit = settings.audit
    passphrase = audit.key_passphrase.get_secret_value().encode() if audit.key_passphrase else None
    try:
        return AuditKey.rewrap(
            audit.key_file(settings.data_dir),
            audit.hmac_key_file(settings.data_dir),
            sealer,
            passphrase=passphrase,
        )
    except AuditKeyError as exc:
        fail(
            f"the signing keys were rewrapped, but not the audit key files: {exc.detail}. "
            "Keep the previous KEK until this is fixed"
        )


async def _record(
    settings: Settings, sealer: Sealer, done: _Rewrapped, *, rotated: bool
) -> str | None:
    """Record ``key.rewrapped`` in the data directory's trail, opened under the new KEK alone.

    Returns:
        Why it could not be recorded, or ``None`` (recorded, or no trail to record in).
    """
    if not settings.audit.enabled:
        return None
    db = Database.from_settings(settings, pool_size=2)
    try:
        if not await SqlAuditStore(db).exists():
            return None
        audit = settings.audit.model_copy(update={"log_events": False})
        trail = await AuditTrail.open(
            db, settings.data_dir, audit, service="cli", run_migrations=False, sealer=sealer
        )
        try:
            await trail.record(
                "key.rewrapped",
                actor=Actor.operator(),
                outcome="success",
                resource=f"kek:{done.new_kek_id}",
                details={
                    "kek_id": done.new_kek_id,
                    "previous_kek_id": done.old_kek_id,
                    "kek_rotated": rotated,
                    "rewrapped": {"signing": done.keys, "audit": done.audit_files},
                },
            )
        finally:
            await trail.close()
    except BarbacanaError as exc:
        return exc.detail
    finally:
        await db.dispose()
    return None
