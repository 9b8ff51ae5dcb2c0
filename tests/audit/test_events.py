"""The event model: validation, canonical form, actors."""

from __future__ import annotations

import json

import pytest

from barbacana.audit import Actor, AuditEvent, AuditEventError, canonical_json
from barbacana.audit._events import format_timestamp, parse_timestamp


class TestActor:
    """Actors name who acted."""

    def test_constructors(self) -> None:
        """Each kind of actor has a constructor."""
        assert Actor.user("u1", name="bob").to_dict() == {
            "type": "user",
            "id": "u1",
            "name": "bob",
            "address": None,
        }
        assert Actor.service("orders").type == "service"
        assert Actor.api_key("key-1").type == "apikey"
        assert Actor.anonymous(address="203.0.113.9").address == "203.0.113.9"
        assert Actor.system().type == "system"
        assert Actor.operator("root").id == "root"

    def test_coerce_mapping(self) -> None:
        """A mapping with type/id/username/address becomes an Actor."""
        actor = Actor.coerce({"type": "user", "id": 7, "username": "bob", "address": "::1"})
        assert actor == Actor("user", "7", "bob", "::1")
        assert Actor.coerce({"type": "api_key", "id": "k1"}) == Actor.api_key("k1")

    @pytest.mark.parametrize(
        "value",
        [
            {"type": "robot", "id": "x"},
            {"type": "user"},
            {"id": "x"},
            {"type": "user", "id": "1", "pw": "x"},
        ],
    )
    def test_bad_actors(self, value: dict[str, str]) -> None:
        """Unknown types, missing ids and unknown fields are refused."""
        with pytest.raises(AuditEventError):
            Actor.coerce(value)


class TestEvent:
    """Events validate their fields and have one canonical form."""

    def test_canonical_form(self) -> None:
        """Sorted keys, no whitespace, UTF-8, and it parses back to the same event."""
        event = AuditEvent(
            "user.created",
            "success",
            Actor.user("u1"),
            resource="user:ñ",
            details={"b": 1, "a": [1, 2]},
            timestamp=format_timestamp(1_700_000_000_123_456),
            seq=4,
        )
        body = event.canonical()
        assert body == canonical_json(json.loads(body))
        assert b" " not in body.replace(b"user:\xc3\xb1", b"")
        assert "ñ".encode() in body
        assert AuditEvent.from_canonical(body) == event

    @pytest.mark.parametrize(
        ("action", "outcome"),
        [("Created", "success"), ("user", "success"), ("user.created", "ok"), ("a..b", "success")],
    )
    def test_refuses_bad_fields(self, action: str, outcome: str) -> None:
        """Actions are dotted lower-case names; outcomes come from a short list."""
        with pytest.raises(AuditEventError):
            AuditEvent(action, outcome, Actor.anonymous())  # type: ignore[arg-type]

    def test_details_not_in_repr(self) -> None:
        """repr() never shows details (they may hold secrets before redaction)."""
        event = AuditEvent("user.created", "success", Actor.anonymous(), details={"password": "pw"})
        assert "pw" not in repr(event)

    def test_timestamps(self) -> None:
        """Timestamps are RFC 3339 UTC with microseconds, and round-trip exactly."""
        micros = 1_700_000_000_000_001
        text = format_timestamp(micros)
        assert text == "2023-11-14T22:13:20.000001Z"
        assert parse_timestamp(text) == micros

    def test_from_canonical_refuses_garbage(self) -> None:
        """Not JSON, not an object, or an unknown version: an audit error."""
        for body in (b"{", b"[]", b'{"v": 99}', b'{"v": 1}'):
            with pytest.raises(AuditEventError):
                AuditEvent.from_canonical(body)
