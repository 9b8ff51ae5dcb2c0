"""Identity: users, Argon2id passwords, OAuth2 grants, refresh families, API keys."""

from ._apikeys import ApiKey, ApiKeyRotation, ApiKeyStore
from ._clients import ClientSecretRotation, ClientStore, ServiceClient
from ._keys import KeySealer, KeyStore
from ._passwords import PROFILES, Passwords
from ._refresh import Family, RefreshStore
from ._revocations import Revocation, RevocationLog
from ._service import Identity, TokenResponse
from ._users import User, UserStore
from .errors import (
    ApiKeyInvalidError,
    ApiKeyNotFoundError,
    ClientNotFoundError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuthError,
    RotationInProgressError,
    RotationTooEarlyError,
    UnsupportedGrantTypeError,
    UserExistsError,
    UserNotFoundError,
)

__all__ = [
    "PROFILES",
    "ApiKey",
    "ApiKeyInvalidError",
    "ApiKeyNotFoundError",
    "ApiKeyRotation",
    "ApiKeyStore",
    "ClientNotFoundError",
    "ClientSecretRotation",
    "ClientStore",
    "Family",
    "Identity",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "KeySealer",
    "KeyStore",
    "OAuthError",
    "Passwords",
    "RefreshStore",
    "Revocation",
    "RevocationLog",
    "RotationInProgressError",
    "RotationTooEarlyError",
    "ServiceClient",
    "TokenResponse",
    "UnsupportedGrantTypeError",
    "User",
    "UserExistsError",
    "UserNotFoundError",
    "UserStore",
]
