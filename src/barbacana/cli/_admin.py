"""Direct administration of a data directory's identity database (like Django's manage.py)."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import typer

from ..audit import AuditTrail
from ..audit import migrate as migrate_audit
from ..errors import ConfigurationError
from ..identity import Identity, KeySealer, UserExistsError
from ..services._runtime import DataDir, audit_sealer, open_sealer
from ..services.chat.app import MIGRATIONS as CHAT_MIGRATIONS
from ..services.orders.app import MIGRATIONS as ORDERS_MIGRATIONS
from ..settings import Settings
from ..storage import Database

__all__ = [
    "INTERNAL_CLIENTS",
    "OPERATOR",
    "bootstrap",
    "identity_context",
    "parse_duration",
    "when",
    "write_secret_file",
]

#: Service clients of the reference system and the scopes they get.
INTERNAL_CLIENTS: dict[str, list[str]] = {"orders": [], "chat": []}
#: The audit actor of a command run at the command line.
OPERATOR: dict[str, str] = {"type": "operator"}
#: Longest overlap a rotation may give the old credential (30 days, as over HTTP).
MAX_OVERLAP = 30 * 86_400
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


class _NoSigningKeys:
    """The sealer of a command that never touches signing keys (no KEK needed)."""

    def seal(self, plaintext: bytes, *, aad: bytes) -> bytes:
        raise ConfigurationError("this command does not use signing keys")

    def open(self, blob: bytes, *, aad: bytes) -> bytes:
        raise ConfigurationError("this command does not use signing keys")


@asynccontextmanager
async def identity_context(
    settings: Settings, sealer: KeySealer | None = None, *, keys: bool = True
) -> AsyncIterator[Identity]:
    """An :class:`Identity` on the settings' database, migrated, keys loaded.

    Its security events go to the data directory's audit trail, stamped
    ``service: cli``, so what an operator does at the command line is on
    the same trail as what the services do.

    Args:
        settings: The CLI's settings.
        sealer: Seals signing keys (default: the KEK named by ``secrets.kek_ref``).
        keys: Load (and on a fresh database create) the signing keys; commands on
            users, clients and API keys pass ``False`` and need no KEK.
    """
    if keys and sealer is None and settings.secrets.kek_ref == "file://kek":
        DataDir(settings.data_dir).ensure_kek()
    db = Database.from_settings(settings, pool_size=2)
    trail: AuditTrail | None = None
    try:
        if sealer is None:
            sealer = await open_sealer(settings) if keys else _NoSigningKeys()
        identity = Identity(settings, db, sealer)
        await identity.migrate()
        trail = await AuditTrail.open(
            db,
            settings.data_dir,
            # Events stay off the command's output (--json must stay parsable).
            settings.audit.model_copy(update={"log_events": False}),
            service="cli",
            # The audit keys are sealed as the services seal them (secrets.kek_ref).
            sealer=await audit_sealer(settings),
        )
        identity.audit = trail.record
        if keys:
            await identity.start(background=False)
        yield identity
    finally:
        if trail is not None:
            await trail.close()
        await db.dispose()


def parse_duration(value: str | float) -> float:
    """Seconds in ``value``: plain seconds, or with a unit (``90s``, ``15m``, ``1h``, ``7d``).

    Raises:
        typer.BadParameter: Not a duration, or longer than 30 days.
    """
    match = _DURATION.match(str(value).strip().lower())
    if match is None:
        raise typer.BadParameter(f"{value!r} is not a duration such as 90s, 15m, 1h or 7d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_OVERLAP:
        raise typer.BadParameter("an overlap is at most 30 days")
    return seconds


def when(value: float | None) -> str | None:
    """A UNIX time as an ISO 8601 UTC string (``None`` stays ``None``)."""
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


def write_secret_file(path: Path, value: str) -> None:
    """Replace a secret file atomically, readable by the owner only.

    A service re-reading it sees the old secret or the new one, never a
    truncated file.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        DataDir(path.parent).write_secret(staging, value)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


async def bootstrap(settings: Settings, sealer: KeySealer | None = None) -> dict[str, str]:
    """Prepare a data directory for ``barbacana up``; idempotent.

    Migrates every schema, creates the first signing key, the service clients
    (secrets in files, 0600) and the ``admin`` account.

    Returns:
        Secrets created *now* and shown once (``admin_password`` on first run).
    """
    data = DataDir(settings.data_dir)
    data.create()
    shown: dict[str, str] = {}
    async with identity_context(settings, sealer) as identity:
        await identity.db.migrate(ORDERS_MIGRATIONS, "alembic_version_orders")
        await migrate_audit(identity.db)
        await identity.db.migrate(CHAT_MIGRATIONS, "alembic_version_chat")
        for client_id, scopes in INTERNAL_CLIENTS.items():
            path = data.client_secret(client_id)
            if await identity.clients.get(client_id) is None or not path.exists():
                if await identity.clients.get(client_id) is None:
                    _, secret = await identity.clients.create(client_id, scopes)
                else:
                    # The file is gone, so no one can hold the current secret: no overlap.
                    rotation = await identity.rotate_client_secret(
                        client_id, 0.0, actor={"type": "system", "name": "bootstrap"}, force=True
                    )
                    secret = rotation.secret
                data.write_secret(path, secret)
        admin = settings.identity.admin_username
        if await identity.users.find(admin) is None:
            password = secrets.token_urlsafe(18)
            try:
                await identity.users.create(admin, password, ["admin"])
                shown["admin_password"] = password
            except UserExistsError:
                pass  # another process created it between the lookup and the insert
    return shown
