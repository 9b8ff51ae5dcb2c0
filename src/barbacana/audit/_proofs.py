"""Proof documents and their standalone verifier.

``barbacana audit prove SEQ`` writes one JSON document: the event exactly as
hashed, its RFC 9162 §2.1.3 inclusion proof against the latest signed
checkpoint and, when an older exported checkpoint is given, the §2.1.4
consistency proof from it to the latest. :func:`verify_proof` checks such a
document with nothing but the public audit key (and, optionally, a checkpoint
the auditor kept): no database, no Barbacana service, no private key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._checkpoint import Checkpoint
from ._events import AuditEvent
from ._merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from .errors import AuditEventError, AuditProofError

__all__ = ["PROOF_TYPE", "ProofResult", "build_proof", "verify_consistency_proof", "verify_proof"]

PROOF_TYPE = "barbacana.audit.proof/v1"


@dataclass(frozen=True, slots=True)
class ProofResult:
    """What a verified proof document established."""

    event: AuditEvent
    checkpoint: Checkpoint
    #: The older checkpoint the trail was shown to extend, if the document had one.
    consistent_with: Checkpoint | None


def build_proof(
    seq: int,
    body: bytes,
    leaves: Sequence[bytes],
    checkpoint: Checkpoint,
    older: Checkpoint | None = None,
) -> dict[str, Any]:
    """A proof document for the event ``seq`` whose canonical bytes are ``body``.

    ``leaves`` holds at least ``checkpoint.tree_size`` leaf hashes of the trail.

    Raises:
        AuditProofError: ``seq`` is not covered by ``checkpoint``, or ``older``
            is larger than it.
    """
    if not 0 <= seq < checkpoint.tree_size:
        raise AuditProofError(
            f"event {seq} is not covered by the checkpoint at size {checkpoint.tree_size}"
        )
    doc: dict[str, Any] = {
        "type": PROOF_TYPE,
        "seq": seq,
        "event": body.decode("utf-8"),
        "leaf_hash": leaves[seq].hex(),
        "checkpoint": checkpoint.to_json(),
        "inclusion": [h.hex() for h in inclusion_proof(seq, leaves, checkpoint.tree_size)],
        "consistency": None,
    }
    if older is not None:
        if older.tree_size > checkpoint.tree_size:
            raise AuditProofError(
                f"the older checkpoint (size {older.tree_size}) is larger than the latest "
                f"(size {checkpoint.tree_size}): the trail is shorter than it was"
            )
        doc["consistency"] = {
            "from": older.to_json(),
            "proof": [
                h.hex() for h in consistency_proof(older.tree_size, leaves, checkpoint.tree_size)
            ],
        }
    return doc


def _hashes(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise AuditProofError(f"{what} must be a list of hex strings")
    try:
        return [bytes.fromhex(v) for v in values]
    except ValueError:
        raise AuditProofError(f"{what} holds a value that is not hex") from None


def verify_consistency_proof(
    older: Checkpoint, newer: Checkpoint, proof: Sequence[bytes], public_key: Ed25519PublicKey
) -> None:
    """Check that ``newer`` extends ``older`` (both signed by ``public_key``).

    Raises:
        AuditProofError: A signature is invalid, the checkpoints belong to
            different trails, or the trail did not only grow between them.
    """
    older.verify(public_key)
    newer.verify(public_key)
    if older.origin != newer.origin:
        raise AuditProofError("the two checkpoints belong to different audit trails")
    if older.tree_size > newer.tree_size:
        raise AuditProofError(
            f"the trail shrank: checkpoint at size {older.tree_size} is newer than "
            f"one at size {newer.tree_size}"
        )
    if not verify_consistency(
        older.tree_size, newer.tree_size, older.root_hash, newer.root_hash, proof
    ):
        raise AuditProofError(
            f"the trail at size {newer.tree_size} is not an extension of the trail at size "
            f"{older.tree_size}: history was rewritten"
        )


def verify_proof(
    document: Mapping[str, Any],
    public_key: Ed25519PublicKey,
    *,
    trusted: Checkpoint | None = None,
) -> ProofResult:
    """Verify a proof document with only the public audit key.

    Args:
        document: Output of ``barbacana audit prove``.
        public_key: The audit public key (``barbacana audit public-key``).
        trusted: A checkpoint kept outside the trail; when given, the document
            must prove that the trail extends it (or be signed at its size with
            the same root).

    Raises:
        AuditProofError: Any signature, hash, inclusion or consistency check fails.
    """
    if document.get("type") != PROOF_TYPE:
        raise AuditProofError("not a Barbacana audit proof document")
    checkpoint = Checkpoint.from_json(_mapping(document.get("checkpoint"), "checkpoint"))
    checkpoint.verify(public_key)
    seq, body = document.get("seq"), document.get("event")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(body, str):
        raise AuditProofError("the proof needs an integer seq and the event as a string")
    raw = body.encode("utf-8")
    leaf = leaf_hash(raw)
    if document.get("leaf_hash") != leaf.hex():
        raise AuditProofError("the event does not hash to the leaf hash in the proof")
    try:
        event = AuditEvent.from_canonical(raw, leaf_hash=leaf)
    except AuditEventError as exc:
        raise AuditProofError(f"the proof's event is not an audit event: {exc.detail}") from None
    if event.seq != seq:
        raise AuditProofError(f"the event says seq {event.seq}, the proof says {seq}")
    path = _hashes(document.get("inclusion"), "inclusion")
    if not verify_inclusion(seq, checkpoint.tree_size, leaf, path, checkpoint.root_hash):
        raise AuditProofError(
            f"event {seq} is not included in the checkpoint at size {checkpoint.tree_size}"
        )
    older: Checkpoint | None = None
    section = document.get("consistency")
    if section is not None:
        section = _mapping(section, "consistency")
        older = Checkpoint.from_json(_mapping(section.get("from"), "consistency.from"))
        verify_consistency_proof(
            older, checkpoint, _hashes(section.get("proof"), "consistency.proof"), public_key
        )
    if trusted is not None:
        trusted.verify(public_key)
        same_as_latest = (trusted.tree_size, trusted.root_hash) == (
            checkpoint.tree_size,
            checkpoint.root_hash,
        )
        proven = older is not None and (older.tree_size, older.root_hash, older.origin) == (
            trusted.tree_size,
            trusted.root_hash,
            trusted.origin,
        )
        if not (same_as_latest or proven):
            raise AuditProofError(
                f"the proof does not show that the trail extends the trusted checkpoint "
                f"at size {trusted.tree_size}"
            )
    return ProofResult(event=event, checkpoint=checkpoint, consistent_with=older)


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise AuditProofError(f"{what} must be a JSON object")
    return value


def load_proof(text: str) -> dict[str, Any]:
    """Parse a proof document.

    Raises:
        AuditProofError: ``text`` is not a JSON object.
    """
    try:
        doc = json.loads(text)
    except ValueError:
        raise AuditProofError("the proof is not JSON") from None
    if not isinstance(doc, dict):
        raise AuditProofError("the proof is not a JSON object")
    return doc
