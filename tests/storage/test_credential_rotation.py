"""Database credentials that rotate while the service runs, against a password-checking PostgreSQL.

The secret ``file://db-credentials`` holds ``{"username", "password"}``, as AWS
Secrets Manager's alternating-users rotation writes it. The tests switch it
from one role to the other and check what a DBA would: new sessions log in as
the new role, sessions of the old one end once their work is done, and the old
role can then be locked out without one query failing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from barbacana.errors import ConfigurationError, SecretsError, StorageError
from barbacana.secrets import SecretsSettings
from barbacana.settings import Settings
from barbacana.storage import Credentials, Database, parse_credentials
from tests.storage.conftest import AppRoles, ScramCluster

REF = "file://db-credentials"


def write_credentials(folder: Path, user: str, password: str) -> None:
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "db-credentials"
    path.write_text(json.dumps({"username": user, "password": password}))
    path.chmod(0o600)


def rotating_settings(tmp_path: Path, url: str, **database: object) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database={"url": url, "credentials_ref": REF, **database},
        secrets=SecretsSettings(
            sources=[f"file://{tmp_path / 'secrets'}"],
            ttl=timedelta(seconds=0.2),
            refresh_interval=timedelta(seconds=0.05),
        ),
    )


async def session_user(db: Database) -> str:
    async with db.connect() as conn:
        return str((await conn.execute(text("SELECT session_user"))).scalar_one())


async def until_session_user(db: Database, user: str) -> None:
    """Query until a fresh checkout logs in as ``user`` (the source is re-read every 0.2 s)."""
    for _ in range(400):
        if await session_user(db) == user:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"the database never logged in as {user}")


# -- the secret's shape --------------------------------------------------------


def test_credentials_are_json_with_username_or_a_bare_password() -> None:
    pair = parse_credentials(SecretStr('{"username": "app_b", "password": "s3cret"}'), ref=REF)
    assert pair.username == "app_b"
    assert pair.password.get_secret_value() == "s3cret"
    bare = parse_credentials(SecretStr("only-a-password\n"), ref=REF)
    assert bare == Credentials(None, bare.password)
    assert bare.password.get_secret_value() == "only-a-password"
    assert "s3cret" not in repr(pair)


@pytest.mark.parametrize(
    "value",
    ['{"username": "a"}', '{"username": "a", "password": 5}', "{not json s3cret", "   "],
)
def test_malformed_credentials_are_refused_without_showing_them(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_credentials(SecretStr(value), ref=REF)
    assert REF in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_rotating_credentials_need_postgresql(tmp_path: Path) -> None:
    settings = rotating_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(ConfigurationError, match="PostgreSQL only"):
        Database.from_settings(settings)


# -- against a PostgreSQL that checks passwords ---------------------------------


async def test_the_url_without_the_secret_cannot_log_in(
    scram_cluster: ScramCluster, app_roles: AppRoles, tmp_path: Path
) -> None:
    # The cluster really checks passwords: the bare URL is refused.
    db = Database(scram_cluster.url(app_roles.database, app_roles.first[0]))
    try:
        with pytest.raises(StorageError, match="refused this service's login"):
            await db.check()
    finally:
        await db.dispose()


async def test_a_rotation_moves_new_sessions_and_drains_old_ones(
    scram_cluster: ScramCluster,
    app_roles: AppRoles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    first, second = app_roles.first, app_roles.second
    write_credentials(tmp_path / "secrets", *first)
    settings = rotating_settings(tmp_path, scram_cluster.url(app_roles.database), echo=True)
    db = Database.from_settings(settings)
    rotations: list[str | None] = []
    db.on_rotation(rotations.append)
    try:
        async with db.begin() as conn:
            await conn.execute(text("CREATE TABLE ledger (n integer)"))
        assert await session_user(db) == first[0]

        async with db.begin() as held:  # work in flight across the rotation
            await held.execute(text("INSERT INTO ledger VALUES (1)"))
            write_credentials(tmp_path / "secrets", *second)
            await until_session_user(db, second[0])
            await held.execute(text("INSERT INTO ledger VALUES (2)"))
            assert (await held.execute(text("SELECT session_user"))).scalar_one() == first[0]
        # Given back, the old session is closed: only the new role is connected.
        sessions = await scram_cluster.asessions(app_roles.database)
        assert first[0] not in sessions
        assert second[0] in sessions
        assert len(rotations) == 1

        # The DBA locks the old role out; nothing notices.
        await scram_cluster.aexecute(f'ALTER ROLE "{first[0]}" NOLOGIN')
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO ledger VALUES (3)"))
        results = await asyncio.gather(*(session_user(db) for _ in range(30)))
        assert set(results) == {second[0]}
        async with db.connect() as conn:
            rows = (await conn.execute(text("SELECT n FROM ledger ORDER BY n"))).scalars().all()
        assert rows == [1, 2, 3]
    finally:
        await db.dispose()
    # Logged at DEBUG with SQL echo on, shown in repr: never a password.
    seen = "\n".join([caplog.text, repr(settings), repr(db), repr(db._login)])
    assert "database credentials file://db-credentials changed" in caplog.text
    assert first[1] not in seen
    assert second[1] not in seen


async def test_a_source_ahead_of_the_database_falls_back_to_the_previous_login(
    scram_cluster: ScramCluster,
    app_roles: AppRoles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = app_roles.first, app_roles.second
    write_credentials(tmp_path / "secrets", *first)
    db = Database.from_settings(rotating_settings(tmp_path, scram_cluster.url(app_roles.database)))
    try:
        assert await session_user(db) == first[0]
        # The source already holds the second role's next password; the database not yet.
        upcoming = second[1] + "-next"
        write_credentials(tmp_path / "secrets", second[0], upcoming)
        with caplog.at_level(logging.WARNING, logger="barbacana.storage"):
            for _ in range(100):
                assert await session_user(db) == first[0]  # every query still answers
                if "refused the newest credentials" in caplog.text:
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("no connection was opened with the newest credentials")
        assert upcoming not in caplog.text
        # The database catches up: within the fallback lifetime, sessions move over.
        await scram_cluster.aexecute(f"ALTER ROLE \"{second[0]}\" PASSWORD '{upcoming}'")
        await until_session_user(db, second[0])
    finally:
        await db.dispose()


async def test_start_up_names_the_secret_and_source_when_it_is_missing(
    scram_cluster: ScramCluster, app_roles: AppRoles, tmp_path: Path
) -> None:
    (tmp_path / "secrets").mkdir(mode=0o700)
    db = Database.from_settings(rotating_settings(tmp_path, scram_cluster.url(app_roles.database)))
    try:
        with pytest.raises(SecretsError) as caught:
            await db.check()
        assert "db-credentials" in str(caught.value)
    finally:
        await db.dispose()


async def test_when_both_logins_are_refused_the_newest_refusal_is_reported(
    scram_cluster: ScramCluster, app_roles: AppRoles, tmp_path: Path
) -> None:
    write_credentials(tmp_path / "secrets", app_roles.first[0], "wrong-password")
    db = Database.from_settings(rotating_settings(tmp_path, scram_cluster.url(app_roles.database)))
    try:
        with pytest.raises(StorageError, match="refused this service's login") as caught:
            await db.check()
        assert "wrong-password" not in str(caught.value)
    finally:
        await db.dispose()
