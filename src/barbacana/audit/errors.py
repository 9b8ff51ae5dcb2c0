"""Errors of the audit concern.

::

    AuditError (barbacana.errors)
     ├── AuditUnavailableError      the trail could not be written: the action is refused (503)
     │    └── AuditEventRefusedError    the store refused this one event's content (500);
     │                                  the other events of its batch were stored
     ├── AuditEventError            record() was called with an unknown action or a bad field
     ├── AuditKeyError              the audit key is missing, unreadable, too open, or foreign
     │    └── AuditKeyLockedError       the key file is sealed under a key-encryption key
     │                                  that was not given (or none was)
     ├── AuditTrailNotFoundError    the database holds no audit trail (foreign or unreadable)
     ├── AuditQueryError            a query parameter (limit, cursor, time range) is invalid (400)
     └── AuditProofError            a checkpoint signature or an inclusion/consistency proof fails
"""

from __future__ import annotations

from ..errors import AuditError

__all__ = [
    "AuditError",
    "AuditEventError",
    "AuditEventRefusedError",
    "AuditKeyError",
    "AuditKeyLockedError",
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


class AuditEventRefusedError(AuditUnavailableError):
    """The store refused one event for its content; the other events of its batch were stored.

    Retrying the same event fails the same way, so this is not a 503: the
    request that recorded it is answered 500 (or goes on, with
    ``on_failure="continue"``).
    """

    code = "audit_event_refused"
    status = 500
    title = "Audit event refused"


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


class AuditKeyLockedError(AuditKeyError):
    """An audit key file is sealed under a key-encryption key that was not given.

    ``extra`` names the KEK ids (public hash prefixes): ``sealed_kek_id`` and,
    when known, ``given_kek_id``.
    """

    code = "audit_key_locked"
    title = "Audit key sealed under another key-encryption key"


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
