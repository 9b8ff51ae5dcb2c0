"""Direct administration of a data directory's identity database (like Django's manage.py)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..audit import migrate as migrate_audit
from ..identity import Identity, KeySealer, UserExistsError
from ..services._runtime import DataDir, open_sealer
from ..services.chat.app import MIGRATIONS as CHAT_MIGRATIONS
from ..services.orders.app import MIGRATIONS as ORDERS_MIGRATIONS
from ..settings import Settings
from ..storage import Database

__all__ = ["INTERNAL_CLIENTS", "bootstrap", "identity_context"]

#: Service clients of the reference system and the scopes they get.
INTERNAL_CLIENTS: dict[str, list[str]] = {"orders": [], "chat": []}


@asynccontextmanager
async def identity_context(
    settings: Settings, sealer: KeySealer | None = None
) -> AsyncIterator[Identity]:
    """An :class:`Identity` on the settings' database, migrated, keys loaded."""
    if sealer is None and settings.secrets.kek_ref == "file://kek":
        DataDir(settings.data_dir).ensure_kek()
    db = Database.from_settings(settings, pool_size=2)
    try:
        identity = Identity(settings, db, sealer or await open_sealer(settings))
        await identity.migrate()
        await identity.start(background=False)
        yield identity
    finally:
        await db.dispose()


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
                    secret = await identity.clients.rotate_secret(client_id, overlap=0.0)
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
