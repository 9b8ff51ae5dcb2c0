"""Errors of the audit concern.

::

    AuditError (barbacana.errors)
     ├── AuditUnavailableError      the trail could not be written: the action is refused (503)
     ├── AuditEventError            record() was called with an unknown action or a bad field
     ├── AuditKeyError              the audit key is missing, unreadable, too open, or foreign
     ├── AuditTrailNotFoundError    the database holds no audit trail (foreign or unreadable)
     ├── AuditQueryError            a query parameter (limit, cursor, time range) is invalid (400)
     └── AuditProofError            a checkpoint signature or an inclusion/consistency proof fails
"""

from __future__ import annotations

from ..errors import AuditError

__all__ = [
    "AuditError",
    "AuditEventError",
    "AuditKeyError",
    "AuditProofError",
    "AuditQueryError",
    "AuditTrailNotFoundError",
    "AuditUnavailableError",
]


class AuditUnavailableError(AuditError):
    """The audit trail could not be written, so the audited action is refused."""

    code = "audit_unavailable"
    status = 503
    title = "Audit trail unavailable"


class AuditEventError(AuditError):
    """An audit event was malformed: unknown action, bad outcome, bad actor."""

    code = "audit_bad_event"
    status = 500
    title = "Invalid audit event"


class AuditKeyError(AuditError):
    """The audit signing key or HMAC key is missing, unreadable or does not match the trail."""

    code = "audit_key_error"
    status = 500
    title = "Audit key unusable"


class AuditTrailNotFoundError(AuditError):
    """The database is unreadable or holds no audit trail."""

    code = "audit_trail_not_found"
    status = 500
    title = "No audit trail"


class AuditQueryError(AuditError):
    """A query of the audit trail has an invalid parameter."""

    code = "audit_bad_query"
    status = 400
    title = "Invalid audit query"


class AuditProofError(AuditError):
    """A checkpoint signature, inclusion proof or consistency proof does not verify."""

    code = "audit_bad_proof"
    status = 400
    title = "Audit proof does not verify"
