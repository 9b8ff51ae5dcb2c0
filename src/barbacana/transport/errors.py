"""Transport errors: certificates, TLS contexts and peer identity.

::

    TransportError
     ├── CertificateError              the internal CA or a certificate is unusable
     │    ├── CertificateNotFoundError a named certificate (or the CA) does not exist
     │    ├── CertificateExistsError   ``init`` refuses to overwrite an existing CA
     │    ├── CertificateBuilderError  a builder field is missing, set twice or invalid
     │    └── KeyPassphraseError       the CA key is encrypted and the passphrase is wrong or absent
     └── TLSContextError               a TLS context could not be built from the given files
    AccessError
     ├── PeerCertificateRequiredError  no verified client certificate (401)
     └── PeerNotAllowedError           a verified peer, but not one this endpoint accepts (403)
"""

from __future__ import annotations

from ..errors import AccessError, TransportError

__all__ = [
    "CertificateBuilderError",
    "CertificateError",
    "CertificateExistsError",
    "CertificateNotFoundError",
    "KeyPassphraseError",
    "PeerCertificateRequiredError",
    "PeerNotAllowedError",
    "TLSContextError",
    "TransportError",
]


class CertificateError(TransportError):
    """The internal CA or a certificate cannot be used."""

    code = "certificate_error"
    title = "Certificate error"


class CertificateNotFoundError(CertificateError):
    """The named certificate, or the CA, does not exist in the PKI directory."""

    code = "certificate_not_found"
    status = 404
    title = "Certificate not found"


class CertificateExistsError(CertificateError):
    """A CA already exists; creating another would orphan every issued certificate."""

    code = "certificate_exists"
    status = 409
    title = "Certificate already exists"


class CertificateBuilderError(CertificateError):
    """A certificate builder field is missing, set twice, or holds a bad value."""

    code = "certificate_builder_error"
    status = 400
    title = "Invalid certificate request"


class KeyPassphraseError(CertificateError):
    """The CA key is encrypted and the passphrase is missing or wrong."""

    code = "key_passphrase_error"
    title = "Wrong or missing key passphrase"


class TLSContextError(TransportError):
    """A TLS context could not be built (unreadable files, mismatched key, bad ciphers)."""

    code = "tls_context_error"
    title = "TLS configuration error"


class PeerCertificateRequiredError(AccessError):
    """The caller presented no verified client certificate from the internal CA.

    Answered with 401. No ``WWW-Authenticate`` challenge is sent: HTTP has no
    registered scheme for TLS client certificates, and inventing one would
    mislead clients; the problem+json ``code`` tells a program what to do.
    """

    code = "peer_certificate_required"
    status = 401
    title = "Client certificate required"


class PeerNotAllowedError(AccessError):
    """The caller is a verified internal peer, but not one this endpoint accepts."""

    code = "peer_not_allowed"
    status = 403
    title = "Peer not allowed"
