"""Rotation of client secrets, API keys and signing keys, on a fixed clock, with its audit trail."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from barbacana.audit import AuditEvent, AuditTrail, capture_audit
from barbacana.identity import (
    ApiKeyInvalidError,
    ApiKeyNotFoundError,
    ClientNotFoundError,
    Identity,
    InvalidClientError,
    InvalidRequestError,
    RotationInProgressError,
    RotationTooEarlyError,
)
from barbacana.identity._tables import revocations
from barbacana.settings import KeySettings
from barbacana.storage import Database
from tests.conftest import FakeKekSealer, make_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def identity(tmp_path: Path, database_url: str, clock: Clock) -> AsyncIterator[Identity]:
    settings = make_settings(
        tmp_path,
        database_url,
        key=KeySettings(rotation_interval=timedelta(hours=1), publish_delay=timedelta(minutes=2)),
    )
    service = Identity(settings, Database(database_url), FakeKekSealer(), clock=clock)
    trail = AuditTrail.in_memory(clock=clock)
    service.audit = trail.record
    await service.migrate()
    await service.start(background=False)
    try:
        yield service
    finally:
        await trail.close()
        await service.db.dispose()


def _of(events: list[AuditEvent], action: str) -> list[AuditEvent]:
    return [event for event in events if event.action == action]


def _text(events: list[AuditEvent]) -> str:
    return json.dumps([event.to_dict() for event in events])


class TestClientSecretRotation:
    async def test_both_secrets_work_during_the_overlap_then_only_the_new(
        self, identity: Identity, clock: Clock
    ) -> None:
        """The previous secret authenticates until the overlap ends, and not a moment after."""
        _, old = await identity.clients.create("billing", ["orders:read"])
        rotation = await identity.rotate_client_secret("billing", 600)
        assert rotation.previous_valid_until == clock.now + 600
        assert (await identity.clients.authenticate("billing", old)).client_id == "billing"
        await identity.clients.authenticate("billing", rotation.secret)
        listed = {c.client_id: c for c in await identity.clients.all()}
        assert listed["billing"].previous_valid_until == clock.now + 600
        clock.now += 600
        with pytest.raises(InvalidClientError):
            await identity.clients.authenticate("billing", old)
        await identity.clients.authenticate("billing", rotation.secret)
        assert (await identity.clients.get("billing")).previous_valid_until is None  # type: ignore[union-attr]

    async def test_grant_with_either_secret_during_the_overlap(self, identity: Identity) -> None:
        """client_credentials issues tokens for the old and the new secret alike."""
        _, old = await identity.clients.create("billing", ["orders:read"])
        new = (await identity.rotate_client_secret("billing", 60)).secret
        for secret in (old, new):
            issued = await identity.client_credentials_grant("billing", secret, scope=None)
            assert (await identity.verify_access(issued.access_token)).subject == "billing"

    async def test_a_second_rotation_during_the_overlap_needs_force(
        self, identity: Identity, clock: Clock
    ) -> None:
        """Only two secrets work at once: rotating again would cut the first off silently."""
        _, first = await identity.clients.create("billing", [])
        second = (await identity.rotate_client_secret("billing", 600)).secret
        with pytest.raises(RotationInProgressError):
            await identity.rotate_client_secret("billing", 600)
        third = (await identity.rotate_client_secret("billing", 0, force=True)).secret
        for gone in (first, second):
            with pytest.raises(InvalidClientError):
                await identity.clients.authenticate("billing", gone)
        await identity.clients.authenticate("billing", third)
        clock.now += 1
        await identity.rotate_client_secret("billing", 600)  # no overlap left: allowed

    async def test_unknown_client_and_negative_overlap(self, identity: Identity) -> None:
        """An operator's mistake is a 404 or a 400 naming the field, never a client-auth 401."""
        with pytest.raises(ClientNotFoundError):
            await identity.rotate_client_secret("nobody", 60)
        await identity.clients.create("billing", [])
        with pytest.raises(InvalidRequestError) as raised:
            await identity.rotate_client_secret("billing", -1)
        assert raised.value.extra["field"] == "overlap"

    async def test_audited_once_without_the_secret(self, identity: Identity) -> None:
        """One secret.rotated event per rotation, naming the client, never a secret."""
        _, old = await identity.clients.create("billing", [])
        with capture_audit() as events:
            rotation = await identity.rotate_client_secret(
                "billing", 60, actor={"type": "operator"}
            )
        [event] = _of(events, "secret.rotated")
        assert event.resource == "client:billing"
        assert event.details["kind"] == "client_secret"
        assert event.actor.type == "operator"
        assert event.details["previous_valid_until"] == rotation.previous_valid_until
        assert old not in _text(events) and rotation.secret not in _text(events)
        assert rotation.secret not in repr(rotation)


class TestApiKeyRotation:
    async def _key(self, identity: Identity, ttl: float | None = None) -> tuple[str, str, str]:
        user = await identity.users.create("robot", "robot-password-long", ["user"])
        record, key = await identity.api_keys.create("ci", user.id, ["orders:read"], ttl=ttl)
        return user.id, record.id, key

    async def test_new_key_keeps_owner_name_and_scopes(self, identity: Identity) -> None:
        """The replacement acts for the same owner with the same scopes."""
        owner, key_id, _ = await self._key(identity)
        rotation = await identity.rotate_api_key(key_id, 3600)
        assert rotation.new.id != key_id
        assert (rotation.new.owner_id, rotation.new.name, rotation.new.scopes) == (
            owner,
            "ci",
            ("orders:read",),
        )
        assert rotation.old.replaced_by == rotation.new.id
        principal = await identity.verify_api_key(rotation.key)
        assert principal.credential_id == rotation.new.id and principal.subject == owner

    async def test_old_key_stops_at_the_end_of_the_window_without_a_sweep(
        self, identity: Identity, clock: Clock
    ) -> None:
        """verify() checks the window itself: nothing needs to run for the old key to stop."""
        _, key_id, old = await self._key(identity)
        rotation = await identity.rotate_api_key(key_id, 300)
        await identity.api_keys.verify(old)
        await identity.api_keys.verify(rotation.key)
        assert (await identity.introspect(old))["active"] is True
        clock.now += 300
        with pytest.raises(ApiKeyInvalidError):
            await identity.api_keys.verify(old)
        assert await identity.introspect(old) == {"active": False}
        await identity.api_keys.verify(rotation.key)

    async def test_sweep_records_the_revocation_once(
        self, identity: Identity, clock: Clock
    ) -> None:
        """After the window the old key is revoked: listing, revocation log and trail show it."""
        _, key_id, _ = await self._key(identity)
        rotation = await identity.rotate_api_key(key_id, 300)
        assert await identity.retire_api_keys() == []  # window still open
        clock.now += 301
        with capture_audit() as events:
            [retired] = await identity.retire_api_keys()
            assert await identity.retire_api_keys() == []  # once only
        assert retired.id == key_id and retired.revoked_at == rotation.old.retire_at
        listed = {k.id: k for k in await identity.api_keys.all()}
        assert listed[key_id].revoked_at == rotation.old.retire_at
        assert listed[rotation.new.id].revoked_at is None
        async with identity.db.connect() as conn:
            logged = (await conn.execute(select(revocations.c.kind, revocations.c.value))).all()
        assert ("apikey", key_id) in logged
        assert identity.revoked_api_key(key_id)
        [event] = _of(events, "apikey.revoked")
        assert event.reason == "rotated" and event.details["key_id"] == key_id
        assert event.details["replaced_by"] == rotation.new.id

    async def test_zero_overlap_revokes_at_once(self, identity: Identity) -> None:
        """With no overlap the old key is revoked in the same transaction."""
        _, key_id, old = await self._key(identity)
        rotation = await identity.rotate_api_key(key_id, 0)
        assert rotation.old.revoked_at is not None
        with pytest.raises(ApiKeyInvalidError):
            await identity.api_keys.verify(old)
        assert identity.revoked_api_key(key_id)

    async def test_rotated_key_is_not_rotated_twice(self, identity: Identity) -> None:
        """The old key has a replacement already: rotate that one."""
        _, key_id, _ = await self._key(identity)
        rotation = await identity.rotate_api_key(key_id, 60)
        with pytest.raises(RotationInProgressError):
            await identity.rotate_api_key(key_id, 60)
        again = await identity.rotate_api_key(rotation.new.id, 60)
        assert again.old.id == rotation.new.id

    async def test_inactive_keys_are_not_found(self, identity: Identity, clock: Clock) -> None:
        """Unknown, revoked and expired keys cannot be rotated back to life."""
        _, key_id, _ = await self._key(identity, ttl=100)
        with pytest.raises(ApiKeyNotFoundError):
            await identity.rotate_api_key("000000000000", 60)
        clock.now += 100
        with pytest.raises(ApiKeyNotFoundError):
            await identity.rotate_api_key(key_id, 60)
        user = await identity.users.by_name("robot")
        revoked, _ = await identity.api_keys.create("gone", user.id, [])
        await identity.api_keys.revoke(revoked.id)
        with pytest.raises(ApiKeyNotFoundError):
            await identity.rotate_api_key(revoked.id, 60)
        with pytest.raises(InvalidRequestError):
            await identity.rotate_api_key(key_id, -5)

    async def test_lifetime_carries_over(self, identity: Identity, clock: Clock) -> None:
        """A key made to expire after a day is replaced by one that expires a day later."""
        _, key_id, _ = await self._key(identity, ttl=86_400)
        clock.now += 3600
        rotation = await identity.rotate_api_key(key_id, 60)
        assert rotation.new.expires_at == clock.now + 86_400
        assert rotation.previous_valid_until == clock.now + 60

    async def test_audited_once_without_the_key(self, identity: Identity) -> None:
        """One secret.rotated event per rotation, with ids only."""
        _, key_id, old = await self._key(identity)
        with capture_audit() as events:
            rotation = await identity.rotate_api_key(key_id, 60, actor={"type": "operator"})
        [event] = _of(events, "secret.rotated")
        assert (event.details["kind"], event.details["key_id"]) == ("api_key", key_id)
        assert event.details["replaced_by"] == rotation.new.id
        text = _text(events)
        assert old not in text and rotation.key not in text
        assert rotation.key not in repr(rotation)


class TestSigningKeyRotationAudit:
    async def test_on_demand_rotation_and_refusal_are_recorded(
        self, identity: Identity, clock: Clock
    ) -> None:
        """A rotation step is one event; a step refused as too early is a failure event."""
        with capture_audit() as events:
            await identity.rotate_keys({"type": "operator"})  # publishes a next key
            with pytest.raises(RotationTooEarlyError):
                await identity.rotate_keys({"type": "operator"})
        done, refused = _of(events, "key.rotated")
        assert done.outcome == "success" and "next" in done.details["states"].values()
        assert (refused.outcome, refused.reason) == ("failure", "rotation_too_early")

    async def test_scheduled_rotation_records_every_step(
        self, identity: Identity, clock: Clock
    ) -> None:
        """Publish, promote and retire by the schedule each leave an event, as the system."""
        first = identity.ring.signing_key().kid
        with capture_audit() as events:
            clock.now += 3600
            await identity.scheduled_rotation()
            clock.now += 121
            await identity.scheduled_rotation()
            clock.now += identity.retire_after + 1
            await identity.scheduled_rotation()
        rotated = _of(events, "key.rotated")
        assert len(rotated) == 2
        assert all(event.actor.type == "system" for event in rotated)
        [retired] = _of(events, "key.retired")
        assert retired.resource == f"key:{first}"
        assert "PRIVATE" not in _text(events)
