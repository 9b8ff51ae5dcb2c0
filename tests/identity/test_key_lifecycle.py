"""Signing-key lifecycle on the identity database: sealed at rest, scheduled rotation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from barbacana.identity import Identity
from barbacana.identity._tables import signing_keys
from barbacana.settings import KeySettings
from barbacana.storage import Database
from tests.conftest import FakeKekSealer, make_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def _identity(tmp_path: Path, url: str, clock: Clock) -> Identity:
    settings = make_settings(
        tmp_path,
        url,
        key=KeySettings(rotation_interval=timedelta(hours=1), publish_delay=timedelta(minutes=2)),
    )
    identity = Identity(settings, Database(url), FakeKekSealer(), clock=clock)
    await identity.migrate()
    await identity.start(background=False)
    return identity


async def test_private_keys_are_sealed_at_rest(tmp_path: Path, database_url: str) -> None:
    """The database holds no private key in clear: only sealed blobs bound to their kid."""
    identity = await _identity(tmp_path, database_url, Clock())
    try:
        key = identity.ring.signing_key()
        async with identity.db.connect() as conn:
            row = (await conn.execute(select(signing_keys))).one()
        assert key.private_pkcs8() not in row.sealed_private_key
        assert b"PRIVATE KEY" not in row.sealed_private_key
        assert "d" not in row.public_jwk
    finally:
        await identity.db.dispose()


async def test_scheduled_rotation_publishes_then_promotes_then_retires(
    tmp_path: Path, database_url: str
) -> None:
    """next is published first, signs only after the publish delay, the old key retires later."""
    clock = Clock()
    identity = await _identity(tmp_path, database_url, clock)
    try:
        first = identity.ring.signing_key().kid
        assert await identity.scheduled_rotation() is False  # not due yet
        clock.now += 3600
        assert await identity.scheduled_rotation() is True
        states = {key.kid: key.state for key in identity.ring.keys}
        assert states[first] == "active" and "next" in states.values()
        assert len(identity.ring.jwks()["keys"]) == 2  # the next key is published before it signs
        clock.now += 60  # publish delay not over: nothing changes
        assert await identity.scheduled_rotation() is False
        clock.now += 61
        assert await identity.scheduled_rotation() is True
        assert identity.ring.signing_key().kid != first
        assert {k.kid: k.state for k in identity.ring.keys}[first] == "retiring"
        clock.now += identity.retire_after + 1
        await identity.scheduled_rotation()
        assert first not in {k.kid for k in identity.ring.keys}
        assert first not in {k["kid"] for k in identity.ring.jwks()["keys"]}
    finally:
        await identity.db.dispose()
