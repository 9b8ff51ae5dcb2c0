"""Errors of the ``tokens`` concern.

Every verification failure is a :class:`~barbacana.errors.TokenError`, which the
web layer answers with 401 and ``WWW-Authenticate: Bearer error="invalid_token"``
(RFC 6750 §3.1). The subclass and its stable ``code`` say which rule failed, for
logs and audit events. Messages say what is wrong and never echo the token, its
header values or its claims::

    TokenError (barbacana.errors)
     ├── MalformedTokenError            not a compact JWS, bad base64url, bad JSON
     ├── TokenTooLargeError             longer than the configured cap
     ├── ForbiddenHeaderError           jku, x5u, jwk or x5c: keys never come from the token
     ├── UnknownCriticalHeaderError     a ``crit`` extension we do not implement
     ├── UnknownAlgorithmError          ``alg`` is not a registered JWS algorithm name
     ├── AlgorithmNotAllowedError       ``alg`` is registered but not on the allow-list
     │    └── AlgorithmMismatchError    ``alg`` differs from the algorithm of the named key
     ├── UnknownKeyError                ``kid`` names no usable key
     ├── InvalidSignatureError          the signature does not verify
     ├── InvalidTypeError               ``typ`` is not ``at+jwt`` (an ID token, a plain JWT)
     ├── TokenExpiredError              ``exp`` has passed
     ├── TokenNotYetValidError          ``nbf`` or ``iat`` lies in the future
     ├── InvalidIssuerError             ``iss`` is not the trusted issuer
     ├── InvalidAudienceError           ``aud`` does not name this service
     ├── MissingClaimError              a required claim is absent
     ├── InvalidClaimError              a claim has the wrong type or shape
     ├── TokenRevokedError              ``jti``, ``sid`` or subject revoked
     ├── JWKSUnavailableError           the issuer's key set cannot be fetched (503)
     └── RevocationUnavailableError     the revocation feed cannot be read (503)

    ConfigurationError (barbacana.errors)
     ├── InvalidKeyError                a key or JWKS document is unacceptable
     └── NoSigningKeyError              the ring has no active key with a private part
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError, TokenError

__all__ = [
    "AlgorithmMismatchError",
    "AlgorithmNotAllowedError",
    "ForbiddenHeaderError",
    "InvalidAudienceError",
    "InvalidClaimError",
    "InvalidIssuerError",
    "InvalidKeyError",
    "InvalidSignatureError",
    "InvalidTypeError",
    "JWKSUnavailableError",
    "MalformedTokenError",
    "MissingClaimError",
    "NoSigningKeyError",
    "RevocationUnavailableError",
    "TokenExpiredError",
    "TokenNotYetValidError",
    "TokenRevokedError",
    "TokenTooLargeError",
    "UnknownAlgorithmError",
    "UnknownCriticalHeaderError",
    "UnknownKeyError",
]


class MalformedTokenError(TokenError):
    """The token is not a well-formed compact JWS (RFC 7515 §7.1)."""

    code = "token_malformed"
    title = "Malformed token"


class TokenTooLargeError(TokenError):
    """The token is longer than the verifier accepts; it was not parsed."""

    code = "token_too_large"
    title = "Token too large"


class ForbiddenHeaderError(TokenError):
    """The header carries key material or a key URL (``jku``, ``x5u``, ``jwk``, ``x5c``)."""

    code = "token_header_forbidden"
    title = "Forbidden token header"


class UnknownCriticalHeaderError(TokenError):
    """The header lists a critical extension this verifier does not implement (RFC 7515 §4.1.11)."""

    code = "token_crit_unknown"
    title = "Unknown critical header"


class UnknownAlgorithmError(TokenError):
    """``alg`` is not a registered JWS algorithm name (names are case-sensitive)."""

    code = "token_algorithm_unknown"
    title = "Unknown algorithm"


class AlgorithmNotAllowedError(TokenError):
    """``alg`` is a registered name that this verifier does not accept (RFC 8725 §3.1)."""

    code = "token_algorithm_not_allowed"
    title = "Algorithm not allowed"


class AlgorithmMismatchError(AlgorithmNotAllowedError):
    """``alg`` is allowed but is not the algorithm the named key was published with."""

    code = "token_algorithm_mismatch"
    title = "Algorithm does not match key"


class UnknownKeyError(TokenError):
    """``kid`` is absent, not a plausible key id, or names no key that may verify."""

    code = "token_key_unknown"
    title = "Unknown signing key"

    def __init__(self, detail: str | None = None, *, kid: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        #: The key id worth asking the issuer about, or ``None`` when no refresh
        #: could help (missing, non-string or implausibly long ``kid``). Kept off
        #: ``extra`` so that it never reaches a response body.
        self.kid = kid


class InvalidSignatureError(TokenError):
    """The signature does not verify with the named key."""

    code = "token_signature_invalid"
    title = "Invalid token signature"


class InvalidTypeError(TokenError):
    """``typ`` is not the expected media type (RFC 9068 §4: ``at+jwt``)."""

    code = "token_type_invalid"
    title = "Invalid token type"


class TokenExpiredError(TokenError):
    """The token's ``exp`` has passed (RFC 7519 §4.1.4)."""

    code = "token_expired"
    title = "Token expired"


class TokenNotYetValidError(TokenError):
    """The token's ``nbf`` or ``iat`` lies in the future beyond the leeway."""

    code = "token_not_yet_valid"
    title = "Token not yet valid"


class InvalidIssuerError(TokenError):
    """``iss`` is not exactly the trusted issuer (RFC 9068 §4)."""

    code = "token_issuer_invalid"
    title = "Invalid token issuer"


class InvalidAudienceError(TokenError):
    """``aud`` does not name this service (RFC 7519 §4.1.3)."""

    code = "token_audience_invalid"
    title = "Invalid token audience"


class MissingClaimError(TokenError):
    """A claim that RFC 9068 §2.2 requires is absent."""

    code = "token_claim_missing"
    title = "Missing token claim"


class InvalidClaimError(TokenError):
    """A claim is present but has the wrong type or shape."""

    code = "token_claim_invalid"
    title = "Invalid token claim"


class TokenRevokedError(TokenError):
    """The token, its session family or its subject's earlier tokens were revoked."""

    code = "token_revoked"
    title = "Token revoked"


class JWKSUnavailableError(TokenError):
    """The issuer's JWKS could not be fetched or was unacceptable."""

    code = "jwks_unavailable"
    status = 503
    title = "Signing keys unavailable"


class RevocationUnavailableError(TokenError):
    """The issuer's revocation feed could not be read or was malformed."""

    code = "revocation_unavailable"
    status = 503
    title = "Revocation feed unavailable"


class InvalidKeyError(ConfigurationError):
    """A key, or a JWKS document, is malformed or not acceptable to Barbacana."""

    code = "invalid_key"
    title = "Invalid key"


class NoSigningKeyError(ConfigurationError):
    """The key ring holds no active key with a private part, so nothing can be signed."""

    code = "no_signing_key"
    title = "No signing key"
