"""The one audit event model, its action catalogue and its canonical form.

An event answers who (``actor``), did what (``action``, from a catalogue of
consistent dotted names), to what (``resource``), with which result
(``outcome`` and ``reason``), when (``timestamp``, UTC), where (``service``),
and how it correlates with logs and traces (``request_id``, ``traceparent``).

Its canonical form -- JSON with sorted keys, no whitespace, UTF-8 -- is what
the Merkle tree hashes (RFC 6962 §2.1: the leaf hash is
``SHA-256(0x00 || canonical event)``), so it must never change for a stored
event: new fields get a new ``v``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

from .errors import AuditEventError

__all__ = [
    "CATALOGUE",
    "EVENT_VERSION",
    "Actor",
    "ActorType",
    "AuditEvent",
    "Outcome",
    "canonical_json",
    "format_timestamp",
    "parse_timestamp",
]

#: Version of the canonical event layout.
EVENT_VERSION = 1

ActorType = Literal["user", "service", "apikey", "operator", "system", "anonymous"]
Outcome = Literal["success", "failure", "denied"]
_ACTOR_TYPES: frozenset[str] = frozenset(get_args(ActorType))
_OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))
#: Other spellings accepted by :meth:`Actor.coerce` (a principal's ``kind``).
_ACTOR_ALIASES = {"api_key": "apikey"}

#: Well-formed action names: two to four dotted lower-case words.
ACTION_PATTERN = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*){1,3}")

#: The built-in catalogue: every action Barbacana and its reference services record.
#: Services add their own with ``AuditTrail(..., actions=CATALOGUE | {...})``.
CATALOGUE: Mapping[str, str] = MappingProxyType(
    {
        "auth.login.succeeded": "A password or client-credentials grant issued tokens",
        "auth.login.failed": "A grant was refused (bad credentials, locked, disabled)",
        "auth.logout": "A session ended and its refresh family was revoked",
        "auth.refresh.succeeded": "A refresh token was exchanged for a new pair",
        "auth.refresh.reused": "A used refresh token was replayed: its family was revoked",
        "auth.token.revoked": "A token was revoked (RFC 7009)",
        "auth.mfa.succeeded": "A second factor was accepted",
        "auth.mfa.failed": "A second factor was refused",
        "auth.account.locked": "Repeated failures locked an account for a while",
        "user.created": "An account was created",
        "user.unlocked": "An operator lifted a brute-force lock",
        "user.disabled": "An account was disabled",
        "user.enabled": "An account was enabled again",
        "user.roles.changed": "An account's roles changed",
        "user.password.changed": "An account's password changed",
        "key.created": "A signing key was created",
        "key.rotated": "Signing keys moved one step in their lifecycle",
        "key.retired": "A signing key was retired",
        "key.rewrapped": "Sealed keys were re-encrypted under the current key-encryption key",
        "apikey.created": "An API key was created",
        "apikey.revoked": "An API key was revoked",
        "access.denied": "A request was refused: not authenticated or not allowed",
        "access.request": "A request was answered (bulk access record)",
        "ratelimit.exceeded": "A rate limit refused a request",
        "order.created": "An order was created",
        "attachment.fetched": "An attachment was fetched from a user-given URL",
        "attachment.refused": "An attachment URL was refused (SSRF guard, size, type)",
        "ws.ticket.issued": "A single-use WebSocket ticket was issued",
        "ws.connected": "A WebSocket connection was accepted",
        "ws.refused": "A WebSocket connection was refused (ticket, origin, cap)",
        "ws.closed": "A WebSocket connection was closed",
        "cert.issued": "A certificate was issued by the internal CA",
        "cert.rotated": "A service certificate was rotated",
        "secret.rotated": "A secret was rotated in its source",
        "config.changed": "A runtime setting was changed",
        "service.started": "A service started",
        "service.stopped": "A service stopped",
        "audit.checkpoint.forced": "An operator forced an audit checkpoint",
    }
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_timestamp(micros: int) -> str:
    """RFC 3339 UTC timestamp with microseconds, e.g. ``2025-01-31T12:00:00.000001Z``."""
    return (_EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})Z")


def parse_timestamp(value: str) -> int:
    """Microseconds since the epoch of a timestamp written by :func:`format_timestamp`.

    Raises:
        ValueError: ``value`` is not in that exact format.
    """
    match = _TIMESTAMP.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not an audit timestamp: {value!r}")
    year, month, day, hour, minute, second, micro = map(int, match.groups())
    delta = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def canonical_json(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8, no NaN or infinities."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a user, a service client, an API key, an operator at the command
    line, the system itself, or nobody known.

    ``address`` is the client address as resolved by the trusted-proxy rules;
    the trail fills it from the request context when it is not given.
    """

    type: ActorType
    id: str | None = None
    name: str | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.type not in _ACTOR_TYPES:
            raise AuditEventError(
                f"actor type {self.type!r} is not one of {', '.join(sorted(_ACTOR_TYPES))}"
            )
        if self.type not in ("anonymous", "system", "operator") and not self.id:
            raise AuditEventError(f"a {self.type} actor needs an id")

    @classmethod
    def user(cls, id: str, *, name: str | None = None, address: str | None = None) -> Actor:
        """A human user, by stable id (``sub``) and optionally user name."""
        return cls("user", id, name, address)

    @classmethod
    def service(cls, client_id: str, *, address: str | None = None) -> Actor:
        """A service client (client-credentials grant or mTLS peer)."""
        return cls("service", client_id, None, address)

    @classmethod
    def api_key(cls, key_id: str, *, name: str | None = None, address: str | None = None) -> Actor:
        """An API key, by its public id (never the key itself)."""
        return cls("apikey", key_id, name, address)

    @classmethod
    def operator(cls, name: str | None = None) -> Actor:
        """A person running the command line (``barbacana keys rotate``...)."""
        return cls("operator", name, None, None)

    @classmethod
    def system(cls, name: str | None = None) -> Actor:
        """The service itself (a scheduled key rotation, a start-up task)."""
        return cls("system", name, None, None)

    @classmethod
    def anonymous(cls, *, address: str | None = None) -> Actor:
        """A caller that presented no valid identity."""
        return cls("anonymous", None, None, address)

    @classmethod
    def coerce(cls, value: Actor | Mapping[str, Any]) -> Actor:
        """An :class:`Actor` from itself or a mapping with ``type``, ``id``,
        ``name`` (or ``username``) and ``address``.

        Raises:
            AuditEventError: The mapping has another key or a bad value.
        """
        if isinstance(value, Actor):
            return value
        if not isinstance(value, Mapping):
            raise AuditEventError("actor must be an Actor or a mapping")
        unknown = set(value) - {"type", "id", "name", "username", "address"}
        if unknown:
            raise AuditEventError(f"unknown actor field(s): {', '.join(sorted(unknown))}")
        if "type" not in value:
            raise AuditEventError("an actor needs a type")

        def text(key: str) -> str | None:
            item = value.get(key)
            return None if item is None else str(item)

        kind = _ACTOR_ALIASES.get(str(value["type"]), value["type"])
        return cls(
            cast(ActorType, kind),
            text("id"),
            text("name") or text("username"),
            text("address"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The actor as it appears in the canonical event."""
        return {"type": self.type, "id": self.id, "name": self.name, "address": self.address}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Actor:
        """Rebuild an actor from :meth:`to_dict` output."""
        return cls(
            cast(ActorType, data["type"]), data.get("id"), data.get("name"), data.get("address")
        )


@dataclass(frozen=True, slots=True, eq=True)
class AuditEvent:
    """One audit event. Immutable: processors return a changed copy.

    ``seq`` and ``leaf_hash`` are set when the store appends the event;
    ``details`` never shows in ``repr()`` (before redaction it may hold secrets).
    """

    action: str
    outcome: Outcome
    actor: Actor
    resource: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict, repr=False)
    timestamp: str | None = None
    service: str | None = None
    request_id: str | None = None
    traceparent: str | None = None
    seq: int | None = None
    leaf_hash: bytes | None = field(default=None, repr=False, compare=False)

    __hash__ = None  # type: ignore[assignment]  # details is a mapping

    def __post_init__(self) -> None:
        if not ACTION_PATTERN.fullmatch(self.action):
            raise AuditEventError(
                f"action {self.action!r} is not a dotted lower-case name such as 'user.created'"
            )
        if self.outcome not in _OUTCOMES:
            raise AuditEventError(
                f"outcome {self.outcome!r} is not one of {', '.join(sorted(_OUTCOMES))}"
            )
        if not isinstance(self.actor, Actor):
            raise AuditEventError("actor must be an Actor (Actor.user(...), Actor.anonymous()...)")
        if not isinstance(self.details, Mapping):
            raise AuditEventError("details must be a mapping")

    def evolve(self, **changes: Any) -> AuditEvent:
        """A copy with some fields changed (what processors return).

        Unlike :func:`dataclasses.replace` it does not re-validate the unchanged
        fields, which keeps the processor chain cheap; changed fields are
        checked as in the constructor.
        """
        new = object.__new__(AuditEvent)
        for name in _EVENT_FIELDS:
            object.__setattr__(new, name, changes[name] if name in changes else getattr(self, name))
        if changes.keys() & _VALIDATED:
            new.__post_init__()
        return new

    @property
    def micros(self) -> int:
        """The timestamp as microseconds since the epoch.

        Raises:
            AuditEventError: The event has not been stamped yet.
        """
        if self.timestamp is None:
            raise AuditEventError("the event has no timestamp yet")
        return parse_timestamp(self.timestamp)

    @property
    def time(self) -> datetime:
        """The timestamp as an aware UTC datetime."""
        return _EPOCH + timedelta(microseconds=self.micros)

    def to_dict(self) -> dict[str, Any]:
        """The canonical event content (the leaf of the Merkle tree)."""
        return {
            "v": EVENT_VERSION,
            "seq": self.seq,
            "timestamp": self.timestamp,
            "service": self.service,
            "action": self.action,
            "outcome": self.outcome,
            "reason": self.reason,
            "resource": self.resource,
            "actor": self.actor.to_dict(),
            "request_id": self.request_id,
            "traceparent": self.traceparent,
            "details": dict(self.details),
        }

    def canonical(self) -> bytes:
        """The canonical JSON bytes that are hashed into the trail."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, leaf_hash: bytes | None = None) -> AuditEvent:
        """Rebuild an event from its canonical content.

        Raises:
            AuditEventError: The content is not an event of a known version.
        """
        if data.get("v") != EVENT_VERSION:
            raise AuditEventError(f"unknown audit event version {data.get('v')!r}")
        try:
            return cls(
                action=data["action"],
                outcome=data["outcome"],
                actor=Actor.from_dict(data["actor"]),
                resource=data.get("resource"),
                reason=data.get("reason"),
                details=data.get("details") or {},
                timestamp=data.get("timestamp"),
                service=data.get("service"),
                request_id=data.get("request_id"),
                traceparent=data.get("traceparent"),
                seq=data.get("seq"),
                leaf_hash=leaf_hash,
            )
        except (KeyError, TypeError) as exc:
            raise AuditEventError(f"not an audit event: missing or bad field {exc}") from None

    @classmethod
    def from_canonical(cls, body: bytes, *, leaf_hash: bytes | None = None) -> AuditEvent:
        """Parse canonical bytes back into an event.

        Raises:
            AuditEventError: ``body`` is not the JSON of an event.
        """
        try:
            data = json.loads(body)
        except ValueError:
            raise AuditEventError("not an audit event: invalid JSON") from None
        if not isinstance(data, dict):
            raise AuditEventError("not an audit event: not a JSON object")
        return cls.from_dict(data, leaf_hash=leaf_hash)


_EVENT_FIELDS = tuple(f.name for f in fields(AuditEvent))
_VALIDATED = frozenset({"action", "outcome", "actor", "details"})
