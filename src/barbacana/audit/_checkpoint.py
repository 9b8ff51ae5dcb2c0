"""Signed checkpoints: ``(origin, tree size, root hash, time)`` under the audit key.

A checkpoint commits to every event before ``tree_size``: the root hash of
RFC 6962 §2.1 over their leaf hashes. The signed statement is canonical JSON
(sorted keys, no whitespace, UTF-8) with a ``type`` for domain separation, so a
checkpoint signature can never be mistaken for anything else the key signs::

    {"key_id":"…","origin":"<trail uuid>","root_hash":"<hex>","timestamp":"…Z",
     "tree_size":1024,"type":"barbacana.audit.checkpoint/v1"}

Exported as one JSON object per line (the statement plus ``signature``,
base64url), a checkpoint kept elsewhere later proves the trail only grew.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._events import canonical_json, parse_timestamp
from ._keys import AuditKey, key_id, verify_signature
from .errors import AuditProofError

__all__ = ["CHECKPOINT_TYPE", "Checkpoint", "read_checkpoints"]

CHECKPOINT_TYPE = "barbacana.audit.checkpoint/v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head of the audit trail."""

    origin: str
    tree_size: int
    root_hash: bytes
    timestamp: str
    key_id: str
    signature: bytes = b""

    def statement(self) -> bytes:
        """The exact bytes that are signed."""
        return canonical_json(
            {
                "type": CHECKPOINT_TYPE,
                "origin": self.origin,
                "tree_size": self.tree_size,
                "root_hash": self.root_hash.hex(),
                "timestamp": self.timestamp,
                "key_id": self.key_id,
            }
        )

    @classmethod
    def sign(
        cls, key: AuditKey, *, origin: str, tree_size: int, root_hash: bytes, timestamp: str
    ) -> Checkpoint:
        """Build and sign a checkpoint with the audit key."""
        unsigned = cls(origin, tree_size, root_hash, timestamp, key.key_id)
        return cls(
            origin, tree_size, root_hash, timestamp, key.key_id, key.sign(unsigned.statement())
        )

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Check the signature and that it names this public key.

        Raises:
            AuditProofError: The signature is invalid or made by another key.
        """
        if self.key_id != key_id(public_key):
            raise AuditProofError(
                f"checkpoint at size {self.tree_size} was signed by key {self.key_id}, "
                f"not by the given public key {key_id(public_key)}"
            )
        if not verify_signature(public_key, self.signature, self.statement()):
            raise AuditProofError(f"checkpoint at size {self.tree_size} has an invalid signature")

    def is_valid(self, public_key: Ed25519PublicKey) -> bool:
        """Whether :meth:`verify` passes."""
        try:
            self.verify(public_key)
        except AuditProofError:
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        """The exported form: the statement's fields plus the signature."""
        data: dict[str, Any] = json.loads(self.statement())
        data["signature"] = _b64(self.signature)
        return data

    def to_line(self) -> str:
        """One JSON line (canonical) for ``barbacana audit export --checkpoints``."""
        return canonical_json(self.to_json()).decode("utf-8")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Parse an exported checkpoint.

        Raises:
            AuditProofError: A field is missing or malformed.
        """
        try:
            if data["type"] != CHECKPOINT_TYPE:
                raise AuditProofError(f"not a checkpoint: type {data['type']!r}")
            size = data["tree_size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise AuditProofError("checkpoint tree_size must be a non-negative integer")
            root = bytes.fromhex(data["root_hash"])
            if len(root) != 32:
                raise AuditProofError("checkpoint root_hash must be 32 bytes")
            parse_timestamp(data["timestamp"])
            return cls(
                origin=str(data["origin"]),
                tree_size=size,
                root_hash=root,
                timestamp=data["timestamp"],
                key_id=str(data["key_id"]),
                signature=_unb64(str(data["signature"])),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise AuditProofError(f"not a checkpoint: bad or missing field {exc}") from None


def read_checkpoints(lines: Iterable[str]) -> list[Checkpoint]:
    """Parse JSON lines written by ``barbacana audit export --checkpoints``.

    Raises:
        AuditProofError: A line is not a checkpoint.
    """
    out: list[Checkpoint] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            raise AuditProofError(f"line {number} is not JSON") from None
        if not isinstance(data, dict):
            raise AuditProofError(f"line {number} is not a JSON object")
        out.append(Checkpoint.from_json(data))
    return out
