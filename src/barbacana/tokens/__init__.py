"""Access tokens: keys and rotation, issue, strict verification, JWKS and revocation.

``tokens`` knows nothing of HTTP frameworks: the web layer turns every
:class:`~barbacana.errors.TokenError` into a 401 problem+json answer.
"""

from ._claims import AccessClaims
from ._follower import RevocationFollower
from ._issue import IssuedToken, TokenIssuer
from ._jwks import JWKSCache
from ._keys import (
    SUPPORTED_ALGORITHMS,
    Algorithm,
    KeyState,
    SigningKey,
    generate_signing_key,
    jwk_thumbprint,
    key_from_jwk,
)
from ._revocation import RevocationState
from ._ring import KeyRing, RefreshableRingProvider, RingProvider
from ._rotation import next_to_promote, rotate
from ._verify import REGISTERED_ALGORITHMS, TokenVerifier
from .errors import (
    AlgorithmMismatchError,
    AlgorithmNotAllowedError,
    ForbiddenHeaderError,
    InvalidAudienceError,
    InvalidClaimError,
    InvalidIssuerError,
    InvalidKeyError,
    InvalidSignatureError,
    InvalidTypeError,
    JWKSUnavailableError,
    MalformedTokenError,
    MissingClaimError,
    NoSigningKeyError,
    RevocationUnavailableError,
    TokenExpiredError,
    TokenNotYetValidError,
    TokenRevokedError,
    TokenTooLargeError,
    UnknownAlgorithmError,
    UnknownCriticalHeaderError,
    UnknownKeyError,
)

__all__ = [
    "REGISTERED_ALGORITHMS",
    "SUPPORTED_ALGORITHMS",
    "AccessClaims",
    "Algorithm",
    "AlgorithmMismatchError",
    "AlgorithmNotAllowedError",
    "ForbiddenHeaderError",
    "InvalidAudienceError",
    "InvalidClaimError",
    "InvalidIssuerError",
    "InvalidKeyError",
    "InvalidSignatureError",
    "InvalidTypeError",
    "IssuedToken",
    "JWKSCache",
    "JWKSUnavailableError",
    "KeyRing",
    "KeyState",
    "MalformedTokenError",
    "MissingClaimError",
    "NoSigningKeyError",
    "RefreshableRingProvider",
    "RevocationFollower",
    "RevocationState",
    "RevocationUnavailableError",
    "RingProvider",
    "SigningKey",
    "TokenExpiredError",
    "TokenIssuer",
    "TokenNotYetValidError",
    "TokenRevokedError",
    "TokenTooLargeError",
    "TokenVerifier",
    "UnknownAlgorithmError",
    "UnknownCriticalHeaderError",
    "UnknownKeyError",
    "generate_signing_key",
    "jwk_thumbprint",
    "key_from_jwk",
    "next_to_promote",
    "rotate",
]
