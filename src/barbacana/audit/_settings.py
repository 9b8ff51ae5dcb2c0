"""Settings of the audit trail (``BARBACANA_AUDIT_<FIELD>``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = ["AuditSettings", "OnFailure"]

#: What ``record()`` does when the trail cannot be written.
OnFailure = Literal["refuse", "continue"]


class AuditSettings(BaseModel):
    """The audit trail: durability, checkpoints, batching, keys and redaction.

    Checkpoints bound the window in which an attacker with write access to the
    database could rewrite recent events unnoticed: every event older than the
    newest signed checkpoint is covered by a signature the database cannot forge.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Record events at all. Off, events still pass the processors, reach
    #: ``capture_audit()`` and the logs, but nothing is stored.
    enabled: bool = True
    #: When the trail cannot be written: ``refuse`` makes ``record()`` raise
    #: :class:`~barbacana.audit.AuditUnavailableError` (the web layer answers 503),
    #: so no security decision stands without its audit event; ``continue`` logs
    #: the failure and lets the action proceed.
    on_failure: OnFailure = "refuse"
    #: Write a signed checkpoint at least every this many events...
    checkpoint_every_events: int = Field(256, ge=1, le=1_000_000)
    #: ...and at least this often while events are not yet covered by one.
    checkpoint_every_seconds: float = Field(5.0, gt=0, le=86_400)
    #: Bulk access events (``record_access``) are committed in groups of this many...
    batch_size: int = Field(256, ge=1, le=5_000)
    #: ...or after this many milliseconds, whichever comes first.
    batch_interval_ms: int = Field(200, ge=1, le=60_000)
    #: Bulk events waiting for a commit before ``record_access`` waits for one.
    max_pending: int = Field(10_000, ge=1)
    #: The Ed25519 audit signing key, sealed under the key-encryption key
    #: (``secrets.kek_ref``). Default ``<data_dir>/audit/audit-key.pem``; its public
    #: half, plain, is written beside it (``audit-key.pub.pem``).
    key_path: Path | None = None
    #: The HMAC key (per-event MACs, blind indexes), sealed the same way.
    #: Default ``<data_dir>/audit/audit-hmac.key``.
    hmac_key_path: Path | None = None
    #: Deprecated: the key-encryption key protects the audit keys now. Set it only
    #: to read a passphrase-protected signing key written by an earlier version,
    #: once: the services then seal that key under the KEK and no longer need it.
    #: (Without a key-encryption key -- ``AuditTrail.open`` with no ``sealer`` --
    #: new signing keys are still encrypted with it, as before.)
    key_passphrase: SecretStr | None = None
    #: Detail fields kept only as keyed HMACs ("blind indexes"), e.g. ``["email"]``:
    #: searchable with ``barbacana audit hmac VALUE``, never stored in clear.
    blind_index_fields: list[str] = Field(default_factory=list)
    #: Field names redacted on top of the built-in ones (passwords, tokens, keys...).
    secret_fields: list[str] = Field(default_factory=list)
    #: Also emit every audit event as a structured log line (``barbacana.audit``).
    log_events: bool = True

    def key_file(self, data_dir: Path) -> Path:
        """Where the audit signing key lives for a data directory."""
        return self.key_path or data_dir / "audit" / "audit-key.pem"

    def hmac_key_file(self, data_dir: Path) -> Path:
        """Where the audit HMAC key lives for a data directory."""
        return self.hmac_key_path or data_dir / "audit" / "audit-hmac.key"
