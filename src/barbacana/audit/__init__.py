"""Audit: events, redaction, a tamper-evident append-only trail, and its verification.

A service opens the trail once, records security events durably and access
events in bulk, and an operator verifies it with ``barbacana audit verify``::

    trail = await AuditTrail.open(
        db, settings.data_dir, settings.audit, service="auth", sealer=sealer
    )
    await trail.record("auth.login.failed", actor=Actor.user(user_id), outcome="failure",
                       reason="invalid_credentials", details={"username": name})
    ...
    await trail.close()

Events are leaves of an RFC 6962 Merkle tree; signed checkpoints (Ed25519,
key outside the database, sealed at rest under the key-encryption key that
``sealer`` holds) commit to its root every N events or T seconds.
"""

from ._asgi import AUDIT_REASON_KEY, AuditMiddleware, Identify
from ._checkpoint import Checkpoint, read_checkpoints
from ._events import CATALOGUE, Actor, ActorType, AuditEvent, Outcome, canonical_json
from ._keys import AuditKey, key_id, load_public_key, public_key_file
from ._merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from ._processors import Processor, Redact, Stamp
from ._proofs import ProofResult, build_proof, verify_consistency_proof, verify_proof
from ._redact import REDACTED, Redactor
from ._settings import AuditSettings, OnFailure
from ._store import (
    AuditStore,
    CheckpointPolicy,
    MemoryAuditStore,
    SqlAuditStore,
    TrailHead,
    hash_event,
)
from ._testing import capture_audit
from ._trail import MIGRATIONS, VERSION_TABLE, AuditTrail, migrate
from ._verify import Problem, VerifyReport, verify_trail
from .errors import (
    AuditError,
    AuditEventError,
    AuditEventRefusedError,
    AuditKeyError,
    AuditKeyLockedError,
    AuditProofError,
    AuditQueryError,
    AuditTrailNotFoundError,
    AuditUnavailableError,
)

__all__ = [
    "AUDIT_REASON_KEY",
    "CATALOGUE",
    "MIGRATIONS",
    "REDACTED",
    "VERSION_TABLE",
    "Actor",
    "ActorType",
    "AuditError",
    "AuditEvent",
    "AuditEventError",
    "AuditEventRefusedError",
    "AuditKey",
    "AuditKeyError",
    "AuditKeyLockedError",
    "AuditMiddleware",
    "AuditProofError",
    "AuditQueryError",
    "AuditSettings",
    "AuditStore",
    "AuditTrail",
    "AuditTrailNotFoundError",
    "AuditUnavailableError",
    "Checkpoint",
    "CheckpointPolicy",
    "CompactRange",
    "Identify",
    "MemoryAuditStore",
    "OnFailure",
    "Outcome",
    "Problem",
    "Processor",
    "ProofResult",
    "Redact",
    "Redactor",
    "SqlAuditStore",
    "Stamp",
    "TrailHead",
    "VerifyReport",
    "build_proof",
    "canonical_json",
    "capture_audit",
    "consistency_proof",
    "hash_event",
    "inclusion_proof",
    "key_id",
    "leaf_hash",
    "load_public_key",
    "migrate",
    "node_hash",
    "public_key_file",
    "read_checkpoints",
    "root_hash",
    "verify_consistency",
    "verify_consistency_proof",
    "verify_inclusion",
    "verify_proof",
    "verify_trail",
]
