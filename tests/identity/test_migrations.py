"""The identity schema's migrations: upgrade a database holding data, and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, select

from barbacana.identity import ApiKeyStore, RevocationLog
from barbacana.identity._service import MIGRATIONS
from barbacana.identity._tables import api_keys, users
from barbacana.storage import Database

VERSION_TABLE = "alembic_version_identity"


async def _migrate(db: Database, target: str, *, down: bool = False) -> None:
    """Move the identity schema to ``target`` (up or down), as Database.migrate does to head."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)

    def step(sync_conn: Any) -> None:
        def revisions(rev: Any, _context: Any) -> Any:
            if down:
                return script._downgrade_revs(target, rev)
            return script._upgrade_revs(target, rev)

        with EnvironmentContext(config, script, fn=revisions, destination_rev=target) as env:
            env.configure(connection=sync_conn, version_table=VERSION_TABLE)
            with env.begin_transaction():
                env.run_migrations()

    async with db.begin() as conn:
        await conn.run_sync(step)


async def _columns(db: Database) -> set[str]:
    async with db.connect() as conn:
        return set(
            await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("api_keys")}
            )
        )


async def _version(db: Database) -> str:
    async with db.connect() as conn:
        found = await conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}")
        return str(found.scalar())


# The 0001 schema, spelled out: the current table objects have the new columns.
_KEY_0001 = {
    "id": "0123456789ab",
    "name": "ci",
    "owner_id": "u-1",
    "key_hash": "0" * 64,
    "scopes": ["orders:read"],
    "created_at": 1.0,
    "expires_at": None,
    "revoked_at": None,
}


async def test_rotation_columns_are_added_to_existing_keys(database_url: str) -> None:
    """Keys made before the rotation columns existed survive the upgrade, never rotated."""
    db = Database(database_url)
    try:
        await _migrate(db, "identity_0001")
        assert {"replaced_by", "retire_at"}.isdisjoint(await _columns(db))
        async with db.begin() as conn:
            await conn.execute(
                insert(users).values(
                    id="u-1",
                    username="robot",
                    password_hash="x",
                    roles=["user"],
                    disabled=False,
                    created_at=1.0,
                    tokens_valid_after=0.0,
                )
            )
            await conn.execute(insert(api_keys).values(**_KEY_0001))
            assert (await conn.execute(select(api_keys.c.id))).scalar() == "0123456789ab"
        await db.migrate(MIGRATIONS, VERSION_TABLE)
        assert await _version(db) == "identity_0002"
        assert {"replaced_by", "retire_at"} <= await _columns(db)
        [key] = await ApiKeyStore(db, RevocationLog(db)).all()
        assert (key.id, key.replaced_by, key.retire_at, key.revoked_at) == (
            "0123456789ab",
            None,
            None,
            None,
        )
    finally:
        await db.dispose()


async def test_downgrade_never_revives_a_rotated_key(database_url: str, tmp_path: Path) -> None:
    """Back on the old schema, a key in its overlap is revoked rather than valid forever."""
    db = Database(database_url)
    try:
        await db.migrate(MIGRATIONS, VERSION_TABLE)
        async with db.begin() as conn:
            await conn.execute(
                insert(users).values(
                    id="u-1",
                    username="robot",
                    password_hash="x",
                    roles=["user"],
                    disabled=False,
                    created_at=1.0,
                    tokens_valid_after=0.0,
                )
            )
        store = ApiKeyStore(db, RevocationLog(db))
        old, _ = await store.create("ci", "u-1", ["orders:read"])
        kept, _ = await store.create("other", "u-1", ["orders:read"])
        rotation = await store.rotate(old.id, 3600)
        await _migrate(db, "identity_0001", down=True)
        assert await _version(db) == "identity_0001"
        assert {"replaced_by", "retire_at"}.isdisjoint(await _columns(db))
        async with db.connect() as conn:
            revoked = dict(
                (await conn.exec_driver_sql("SELECT id, revoked_at FROM api_keys")).all()
            )
        assert revoked[old.id] == rotation.old.retire_at
        assert revoked[kept.id] is None and revoked[rotation.new.id] is None
        await db.migrate(MIGRATIONS, VERSION_TABLE)  # and up again
        assert await _version(db) == "identity_0002"
    finally:
        await db.dispose()
