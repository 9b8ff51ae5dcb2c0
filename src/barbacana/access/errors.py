"""Access errors: 401 with an RFC 6750 challenge, 403, and 404 for hidden resources."""

from __future__ import annotations

from ..errors import AccessError

__all__ = [
    "AccessError",
    "InsufficientScopeError",
    "MissingRoleError",
    "NotAuthenticatedError",
    "ResourceNotFoundError",
]

_REALM = "barbacana"


class NotAuthenticatedError(AccessError):
    """No credentials were presented (RFC 6750 §3.1: no error code in the challenge)."""

    code = "not_authenticated"
    status = 401
    title = "Unauthorized"
    www_authenticate = f'Bearer realm="{_REALM}"'


class InsufficientScopeError(AccessError):
    """The credentials lack a scope the operation requires (RFC 6750 §3.1)."""

    code = "insufficient_scope"
    status = 403
    title = "Insufficient scope"

    def __init__(self, required: list[str]) -> None:
        scope = " ".join(required)
        super().__init__(f"This operation requires the scope(s): {scope}", required_scope=scope)
        self.www_authenticate = (
            f'Bearer realm="{_REALM}", error="insufficient_scope", scope="{scope}"'
        )


class MissingRoleError(AccessError):
    """The caller does not hold a role the operation requires."""

    code = "missing_role"
    status = 403
    title = "Forbidden"

    def __init__(self, roles: list[str]) -> None:
        super().__init__(f"This operation requires the role: {' or '.join(roles)}")
        self.www_authenticate = f'Bearer realm="{_REALM}", error="insufficient_scope"'


class ResourceNotFoundError(AccessError):
    """The resource does not exist or belongs to someone else (no existence leak)."""

    code = "not_found"
    status = 404
    title = "Not Found"
