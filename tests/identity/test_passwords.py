"""Passwords: Argon2id by default; a legacy bcrypt hash verifies once and is upgraded."""

from __future__ import annotations

from pathlib import Path

import bcrypt
from sqlalchemy import select, update

from barbacana.identity import Identity
from barbacana.identity._tables import users
from barbacana.storage import Database
from tests.conftest import FakeKekSealer, make_settings


async def test_bcrypt_hash_is_rehashed_with_argon2id_on_login(
    tmp_path: Path, database_url: str
) -> None:
    """A user imported with a bcrypt hash logs in, and the stored hash becomes Argon2id."""
    identity = Identity(
        make_settings(tmp_path, database_url), Database(database_url), FakeKekSealer()
    )
    await identity.migrate()
    await identity.start(background=False)
    try:
        user = await identity.users.create("legacy", "legacy-password-1", ["user"])
        legacy = bcrypt.hashpw(b"legacy-password-1", bcrypt.gensalt(rounds=4)).decode()
        async with identity.db.begin() as conn:
            await conn.execute(
                update(users).where(users.c.id == user.id).values(password_hash=legacy)
            )
        response = await identity.password_grant(
            "legacy", "legacy-password-1", scope=None, client_id="public", address="127.0.0.1"
        )
        assert response.access_token
        async with identity.db.connect() as conn:
            stored = (await conn.execute(select(users.c.password_hash))).scalar_one()
        assert stored.startswith("$argon2id$")
        # The upgraded hash still verifies; a wrong password still fails.
        ok, _ = await identity.passwords.verify("legacy-password-1", stored)
        bad, _ = await identity.passwords.verify("legacy-password-2", stored)
        assert ok
        assert not bad
    finally:
        await identity.db.dispose()


async def test_new_hashes_are_argon2id(tmp_path: Path) -> None:
    """New passwords are stored as Argon2id, never in clear."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    identity = Identity(make_settings(tmp_path, url), Database(url), FakeKekSealer())
    await identity.migrate()
    try:
        await identity.users.create("fresh", "fresh-password-1", ["user"])
        found = await identity.users.find("fresh")
        assert found is not None
        assert found[1].startswith("$argon2id$")
        assert "fresh-password-1" not in found[1]
    finally:
        await identity.db.dispose()
