"""Access control: principals, scopes, roles, ownership."""

from ._credentials import ClientCredentials
from ._principal import Principal, actor_of, ensure_owner, principal_from_claims
from ._remote import RemoteIdentity, propagate_correlation
from ._require import (
    API_KEY_HEADER,
    Authenticator,
    Require,
    RequireRole,
    api_key_scheme,
    bearer_scheme,
    require,
    require_role,
)
from .errors import (
    InsufficientScopeError,
    MissingRoleError,
    NotAuthenticatedError,
    ResourceNotFoundError,
)

__all__ = [
    "API_KEY_HEADER",
    "Authenticator",
    "ClientCredentials",
    "InsufficientScopeError",
    "MissingRoleError",
    "NotAuthenticatedError",
    "Principal",
    "RemoteIdentity",
    "Require",
    "RequireRole",
    "ResourceNotFoundError",
    "actor_of",
    "api_key_scheme",
    "bearer_scheme",
    "ensure_owner",
    "principal_from_claims",
    "propagate_correlation",
    "require",
    "require_role",
]
