"""The identity service: OAuth2 tokens, users, API keys, keys and revocations."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from fastapi import APIRouter, Body, Depends, FastAPI, Form, Query, Request, Response, Security
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field

from ... import _context
from ...access import Authenticator, Principal, ResourceNotFoundError, actor_of, require
from ...audit import AuditUnavailableError
from ...errors import BarbacanaError
from ...identity import Identity, KeySealer, ServiceClient
from ...identity.errors import (
    InvalidClientError,
    InvalidRequestError,
    UnsupportedGrantTypeError,
)
from ...ratelimit import login_guard_from_url
from ...settings import Settings
from ...storage import Database
from ...transport import PeerCertificateRequiredError, PeerNotAllowedError, peer_identity
from ...web import StrictModel, secure
from .._protection import Protection
from ._models import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AuditPage,
    IntrospectionOut,
    KeyOut,
    LockoutOut,
    RevocationFeedOut,
    RolesIn,
    TokenOut,
    UserCreate,
    UserOut,
)
from ._tickets import ticket_router

__all__ = ["create_app"]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: Latest timestamp the audit query accepts (9999-12-31T23:59:59Z): its
#: microseconds still fit the 64-bit column it is compared with.
_MAX_TIMESTAMP = 253_402_300_799
#: Largest cursors the columns they are compared with hold: the audit trail's
#: sequence is 64-bit, the revocation feed's 32-bit on PostgreSQL.
_MAX_AUDIT_SEQ = 2**63 - 1
_MAX_REVOCATION_SEQ = 2**31 - 1
_NO_SUCH_USER: dict[int | str, dict[str, Any]] = {404: {"description": "No such user"}}
#: Clients that may read the revocation feed and introspect tokens.
INTERNAL_CLIENTS = ("orders", "chat")
#: Longest overlap a rotation may give the old credential (30 days).
_MAX_OVERLAP = 2_592_000

basic_scheme = HTTPBasic(auto_error=False, realm="barbacana")


def _identity(request: Request) -> Identity:
    identity: Identity = request.app.state.identity
    return identity


def _address(request: Request) -> str:
    return _context.client_address.get() or (request.client.host if request.client else "unknown")


def _user_out(user: Any) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        roles=list(user.roles),
        disabled=user.disabled,
        created_at=user.created_at,
    )


class RotationIn(StrictModel):
    """How long the old credential keeps working after a rotation."""

    #: Seconds the old key or secret keeps working; ``0`` ends it at once.
    overlap: float = Field(default=86_400, ge=0, le=_MAX_OVERLAP)


class ClientRotationIn(StrictModel):
    """A client-secret rotation."""

    #: Seconds the previous secret keeps working; ``0`` ends it at once.
    overlap: float = Field(default=3600, ge=0, le=_MAX_OVERLAP)
    #: Rotate even while a previous rotation still overlaps (cuts that secret off).
    force: bool = False


class ClientOut(BaseModel):
    """A service client: never its secrets."""

    client_id: str
    scopes: list[str]
    disabled: bool
    created_at: float
    #: During a rotation: when the previous secret stops working.
    previous_valid_until: float | None


class ClientSecretRotated(BaseModel):
    """Returned once by a rotation: ``client_secret`` is never shown again."""

    client_id: str
    client_secret: str
    previous_valid_until: float


class ApiKeyRotated(ApiKeyCreated):
    """The replacement key (``key``, shown once) and when the old one stops working."""

    replaces: str
    previous_valid_until: float


def _client_out(client: ServiceClient) -> ClientOut:
    return ClientOut(
        client_id=client.client_id,
        scopes=list(client.scopes),
        disabled=client.disabled,
        created_at=client.created_at,
        previous_valid_until=client.previous_valid_until,
    )


def _basic_from_scope(scope: Any) -> tuple[str, str] | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, encoded = value.decode("latin-1").partition(" ")
            if scheme.lower() != "basic":
                return None
            try:
                decoded = base64.b64decode(encoded, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            user, sep, password = decoded.partition(":")
            return (unquote(user), unquote(password)) if sep else None
    return None


def _basic(credentials: HTTPBasicCredentials | None) -> tuple[str, str] | None:
    if credentials is None:
        return None
    # RFC 6749 §2.3.1: client id and secret are form-urlencoded inside Basic.
    return unquote(credentials.username), unquote(credentials.password)


class ServiceClientAuth:
    """Dependency: an authenticated service client among ``allowed``.

    Raises:
        InvalidClientError: No or bad client credentials (401 with a Basic challenge).
    """

    def __init__(self, *allowed: str) -> None:
        self.allowed = allowed

    async def __call__(
        self,
        request: Request,
        credentials: HTTPBasicCredentials | None = Depends(basic_scheme),
    ) -> ServiceClient:
        identity = _identity(request)
        if request.url.scheme == "https":
            # Over TLS, internal endpoints also need the caller's certificate from the
            # internal CA, naming one of the allowed services (DESIGN invariant 12).
            peer = peer_identity(request.scope, identity.settings.transport)
            if peer is None:
                raise PeerCertificateRequiredError("this endpoint needs a client certificate")
            if self.allowed and peer.service not in self.allowed:
                raise PeerNotAllowedError(f"service {peer.service!r} may not use this endpoint")
        pair = _basic(credentials)
        if pair is None:
            raise InvalidClientError("client authentication required")
        client = await identity.clients.authenticate(*pair)
        if self.allowed and client.client_id not in self.allowed:
            raise InvalidClientError("this client may not use this endpoint")
        return client


def _token_router() -> APIRouter:
    router = APIRouter(tags=["oauth2"])

    @router.post(
        "/token",
        response_model=TokenOut,
        summary="OAuth2 token endpoint (password, refresh_token, client_credentials)",
        responses={401: {"description": "Client authentication failed"}},
        # Client authentication is optional here (public clients, client_secret_post):
        # ``{}`` documents the alternative of no HTTP Basic credentials.
        openapi_extra={"security": [{}]},
    )
    async def token(
        request: Request,
        grant_type: Annotated[str, Form(min_length=1, max_length=64)],
        username: Annotated[str | None, Form(max_length=256)] = None,
        password: Annotated[str | None, Form(max_length=1024)] = None,
        scope: Annotated[str | None, Form(max_length=2048)] = None,
        refresh_token: Annotated[str | None, Form(max_length=16384)] = None,
        client_id: Annotated[str | None, Form(max_length=64)] = None,
        client_secret: Annotated[str | None, Form(max_length=256)] = None,
        credentials: HTTPBasicCredentials | None = Depends(basic_scheme),
    ) -> JSONResponse:
        identity = _identity(request)
        basic = _basic(credentials)
        if grant_type == "password":
            if not username or password is None:
                raise InvalidRequestError("username and password are required", field="username")
            result = await identity.password_grant(
                username,
                password,
                scope=scope,
                client_id=(basic[0] if basic else client_id) or "public",
                address=_address(request),
            )
        elif grant_type == "refresh_token":
            if not refresh_token:
                raise InvalidRequestError("refresh_token is required", field="refresh_token")
            result = await identity.refresh_grant(
                refresh_token, scope=scope, address=_address(request)
            )
        elif grant_type == "client_credentials":
            cid, secret = basic if basic else (client_id, client_secret)
            if not cid or not secret:
                raise InvalidClientError("client authentication required")
            result = await identity.client_credentials_grant(cid, secret, scope=scope)
        else:
            raise UnsupportedGrantTypeError(f"grant_type {grant_type[:32]!r} is not supported")
        body = TokenOut(
            access_token=result.access_token,
            expires_in=result.expires_in,
            scope=result.scope,
            refresh_token=result.refresh_token,
        ).model_dump(exclude_none=True)
        return JSONResponse(body, headers=_NO_STORE)

    @router.post(
        "/revoke",
        status_code=200,
        summary="RFC 7009 token revocation",
        response_model=None,
        response_class=Response,  # an empty 200, documented without a body
    )
    async def revoke(
        request: Request,
        token: Annotated[str, Form(min_length=1, max_length=16384)],
        token_type_hint: Annotated[str | None, Form(max_length=32)] = None,
    ) -> Response:
        # RFC 7009 §2.2: 200 whether or not the token was known or valid.
        await _identity(request).revoke(token, token_type_hint)
        return Response(status_code=200, headers=_NO_STORE)

    @router.post(
        "/introspect",
        response_model=IntrospectionOut,
        summary="RFC 7662 token introspection (service clients only)",
    )
    async def introspect(
        request: Request,
        token: Annotated[str, Form(min_length=1, max_length=16384)],
        token_type_hint: Annotated[str | None, Form(max_length=32)] = None,
        client: ServiceClient = Depends(ServiceClientAuth(*INTERNAL_CLIENTS)),
    ) -> JSONResponse:
        body = await _identity(request).introspect(token)
        return JSONResponse(body, headers=_NO_STORE)

    @router.post(
        "/logout", status_code=204, summary="End this token and its session", response_model=None
    )
    async def logout(request: Request, principal: Principal = Security(require)) -> Response:
        await _identity(request).logout(principal)
        return Response(status_code=204)

    return router


def _users_router() -> APIRouter:
    router = APIRouter(prefix="/users", tags=["users"])

    @router.get("/me", response_model=UserOut, summary="The calling user")
    async def me(request: Request, principal: Principal = Security(require)) -> UserOut:
        return _user_out(await _identity(request).users.get(principal.subject))

    @router.get("", response_model=list[UserOut], summary="Every user")
    async def list_users(
        request: Request, _: Principal = Security(require, scopes=["users:read"])
    ) -> list[UserOut]:
        return [_user_out(user) for user in await _identity(request).users.all()]

    @router.post(
        "",
        response_model=UserOut,
        status_code=201,
        summary="Create a user",
        responses={409: {"description": "A user of that name exists"}},
    )
    async def create_user(
        request: Request,
        response: Response,
        body: UserCreate,
        principal: Principal = Security(require, scopes=["users:write"]),
    ) -> UserOut:
        identity = _identity(request)
        _check_roles(identity, body.roles)
        user = await identity.users.create(body.username, body.password, body.roles)
        await identity.audit(
            "user.created",
            actor=actor_of(principal),
            outcome="success",
            resource=f"user:{user.id}",
            details={"username": user.username, "roles": list(user.roles)},
        )
        response.headers["Location"] = f"/users/{user.id}"
        return _user_out(user)

    @router.get(
        "/lockouts", response_model=list[LockoutOut], summary="Locked accounts and addresses"
    )
    async def lockouts(
        request: Request, _: Principal = Security(require, scopes=["users:write"])
    ) -> list[LockoutOut]:
        guard = _identity(request).guard
        found = await guard.locked() if guard is not None else []
        return [LockoutOut(kind=item.kind, name=item.name, until=item.until) for item in found]

    @router.delete(
        "/lockouts/{name}",
        status_code=204,
        summary="Unlock an account",
        response_model=None,
        responses={404: {"description": "No such lock"}},
    )
    async def unlock(
        request: Request,
        name: Annotated[str, PathParam(max_length=128)],
        principal: Principal = Security(require, scopes=["users:write"]),
    ) -> Response:
        identity = _identity(request)
        guard = identity.guard
        unlocked = False
        if guard is not None:
            unlocked = await guard.unlock(name) or await guard.unlock_address(name)
        if not unlocked:
            raise ResourceNotFoundError("no such lock")
        await identity.audit(
            "user.unlocked", actor=actor_of(principal), outcome="success", resource=f"lock:{name}"
        )
        return Response(status_code=204)

    @router.get("/{user_id}", response_model=UserOut, summary="One user", responses=_NO_SUCH_USER)
    async def get_user(
        request: Request,
        user_id: str,
        _: Principal = Security(require, scopes=["users:read"]),
    ) -> UserOut:
        return _user_out(await _identity(request).users.get(user_id))

    @router.post(
        "/{user_id}/disable",
        response_model=UserOut,
        summary="Disable a user",
        responses=_NO_SUCH_USER,
    )
    async def disable(
        request: Request,
        user_id: str,
        principal: Principal = Security(require, scopes=["users:write"]),
    ) -> UserOut:
        identity = _identity(request)
        user = await identity.users.set_disabled(user_id, True)
        identity.revocation_state.revoke_subject(user.id, user.tokens_valid_after)
        await identity.audit(
            "user.disabled",
            actor=actor_of(principal),
            outcome="success",
            resource=f"user:{user.id}",
        )
        return _user_out(user)

    @router.put(
        "/{user_id}/roles",
        response_model=UserOut,
        summary="Replace a user's roles",
        responses=_NO_SUCH_USER,
    )
    async def set_roles(
        request: Request,
        user_id: str,
        body: RolesIn,
        principal: Principal = Security(require, scopes=["users:write"]),
    ) -> UserOut:
        identity = _identity(request)
        _check_roles(identity, body.roles)
        user = await identity.users.set_roles(user_id, body.roles)
        identity.revocation_state.revoke_subject(user.id, user.tokens_valid_after)
        await identity.audit(
            "user.roles.changed",
            actor=actor_of(principal),
            outcome="success",
            resource=f"user:{user.id}",
            details={"roles": list(user.roles)},
        )
        return _user_out(user)

    return router


def _check_roles(identity: Identity, roles: list[str]) -> None:
    unknown = [role for role in roles if role not in identity.settings.access.roles]
    if unknown:
        raise InvalidRequestError(f"unknown role(s): {', '.join(unknown)}", field="roles")


def _admin_router() -> APIRouter:
    router = APIRouter(tags=["admin"])

    @router.post(
        "/apikeys",
        response_model=ApiKeyCreated,
        status_code=201,
        summary="Create an API key (shown once)",
        responses={404: {"description": "No such owner"}},
    )
    async def create_key(
        request: Request,
        response: Response,
        body: ApiKeyCreate,
        principal: Principal = Security(require, scopes=["apikeys:write"]),
    ) -> ApiKeyCreated:
        identity = _identity(request)
        unknown = [s for s in body.scopes if s not in identity.settings.access.scopes]
        if unknown:
            raise InvalidRequestError(f"unknown scope(s): {' '.join(unknown)}", field="scopes")
        owner = await identity.users.get(body.owner_id or principal.subject)
        record, key = await identity.api_keys.create(body.name, owner.id, body.scopes, ttl=body.ttl)
        await identity.audit(
            "apikey.created",
            actor=actor_of(principal),
            outcome="success",
            resource=f"apikey:{record.id}",
            details={"key_id": record.id, "owner": owner.id, "scopes": list(record.scopes)},
        )
        response.headers["Location"] = f"/apikeys/{record.id}"
        response.headers.update(_NO_STORE)
        return ApiKeyCreated(key=key, **_key_fields(record))

    @router.get("/apikeys", response_model=list[ApiKeyOut], summary="API keys")
    async def list_keys(
        request: Request, _: Principal = Security(require, scopes=["apikeys:write"])
    ) -> list[ApiKeyOut]:
        return [ApiKeyOut(**_key_fields(k)) for k in await _identity(request).api_keys.all()]

    @router.delete(
        "/apikeys/{key_id}",
        status_code=204,
        summary="Revoke an API key",
        response_model=None,
        responses={404: {"description": "No such active API key"}},
    )
    async def revoke_key(
        request: Request,
        key_id: str,
        principal: Principal = Security(require, scopes=["apikeys:write"]),
    ) -> Response:
        identity = _identity(request)
        if not await identity.api_keys.revoke(key_id):
            raise ResourceNotFoundError("no such active API key")
        await identity.audit(
            "apikey.revoked",
            actor=actor_of(principal),
            outcome="success",
            resource=f"apikey:{key_id}",
            details={"key_id": key_id},
        )
        return Response(status_code=204)

    @router.post(
        "/apikeys/{key_id}/rotate",
        response_model=ApiKeyRotated,
        status_code=201,
        summary="Rotate an API key (new key shown once); the old one works until the overlap ends",
        responses={
            404: {"description": "No such active API key"},
            409: {"description": "The key was already rotated"},
        },
    )
    async def rotate_key(
        request: Request,
        response: Response,
        key_id: Annotated[str, PathParam(max_length=16)],
        body: Annotated[RotationIn | None, Body()] = None,
        principal: Principal = Security(require, scopes=["apikeys:write"]),
    ) -> ApiKeyRotated:
        identity = _identity(request)
        overlap = (body or RotationIn()).overlap
        rotation = await identity.rotate_api_key(key_id, overlap, actor=actor_of(principal))
        response.headers["Location"] = f"/apikeys/{rotation.new.id}"
        response.headers.update(_NO_STORE)
        return ApiKeyRotated(
            key=rotation.key,
            replaces=rotation.old.id,
            previous_valid_until=rotation.previous_valid_until,
            **_key_fields(rotation.new),
        )

    @router.get("/clients", response_model=list[ClientOut], summary="Service clients")
    async def list_clients(
        request: Request, _: Principal = Security(require, scopes=["keys:admin"])
    ) -> list[ClientOut]:
        return [_client_out(c) for c in await _identity(request).clients.all()]

    @router.post(
        "/clients/{client_id}/rotate-secret",
        response_model=ClientSecretRotated,
        summary="Rotate a service client's secret (shown once); the previous one overlaps",
        responses={
            404: {"description": "No such client"},
            409: {"description": "A previous rotation still overlaps (use force)"},
        },
    )
    async def rotate_client_secret(
        request: Request,
        client_id: Annotated[str, PathParam(max_length=64)],
        body: Annotated[ClientRotationIn | None, Body()] = None,
        principal: Principal = Security(require, scopes=["keys:admin"]),
    ) -> JSONResponse:
        options = body or ClientRotationIn()
        rotation = await _identity(request).rotate_client_secret(
            client_id, options.overlap, actor=actor_of(principal), force=options.force
        )
        answer = ClientSecretRotated(
            client_id=rotation.client_id,
            client_secret=rotation.secret,
            previous_valid_until=rotation.previous_valid_until,
        )
        return JSONResponse(answer.model_dump(), headers=_NO_STORE)

    @router.get("/keys", response_model=list[KeyOut], summary="Signing keys and their states")
    async def keys(
        request: Request, _: Principal = Security(require, scopes=["keys:admin"])
    ) -> list[dict[str, object]]:
        return await _identity(request).keys.all()

    @router.post(
        "/keys/rotate",
        response_model=list[KeyOut],
        summary="One key-rotation step",
        responses={409: {"description": "The next key is too young to promote"}},
    )
    async def rotate(
        request: Request, principal: Principal = Security(require, scopes=["keys:admin"])
    ) -> list[dict[str, object]]:
        return await _identity(request).rotate_keys(actor_of(principal))

    return router


def _audit_router() -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/audit/events", response_model=AuditPage, summary="Query the audit trail")
    async def events(
        request: Request,
        actor: Annotated[str | None, Query(max_length=128)] = None,
        action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9_.]+$")] = None,
        outcome: Annotated[Literal["success", "failure", "denied"] | None, Query()] = None,
        since: Annotated[float | None, Query(ge=0, le=_MAX_TIMESTAMP)] = None,
        until: Annotated[float | None, Query(ge=0, le=_MAX_TIMESTAMP)] = None,
        after: Annotated[
            int | None, Query(ge=0, le=_MAX_AUDIT_SEQ, description="Cursor from the previous page")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        _: Principal = Security(require, scopes=["audit:read"]),
    ) -> dict[str, Any]:
        trail = request.app.state.protection.trail
        if trail is None or trail.store is None:
            raise AuditUnavailableError("the audit trail is not enabled on this service")
        found, cursor = await trail.store.query(
            actor=actor,
            action=action,
            outcome=outcome,
            since=since,
            until=until,
            after_seq=after,
            limit=limit,
        )
        return {"events": [event.to_dict() for event in found], "next": cursor}

    return router


def _key_fields(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "owner_id": record.owner_id,
        "scopes": list(record.scopes),
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
        "replaced_by": record.replaced_by,
        "retire_at": record.retire_at,
    }


def _discovery_router(settings: Settings) -> APIRouter:
    router = APIRouter(tags=["discovery"])

    @router.get("/.well-known/jwks.json", summary="Public signing keys (RFC 7517)")
    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse(
            _identity(request).ring.jwks(), headers={"Cache-Control": "public, max-age=60"}
        )

    @router.get("/.well-known/oauth-authorization-server", summary="RFC 8414 metadata")
    async def metadata(request: Request) -> dict[str, Any]:
        issuer = settings.tokens.issuer
        base = (
            settings.public_url.rstrip("/")
            if settings.public_url
            else str(request.base_url).rstrip("/")
        )
        return {
            "issuer": issuer,
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "revocation_endpoint": f"{base}/revoke",
            "introspection_endpoint": f"{base}/introspect",
            "grant_types_supported": ["password", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
            "response_types_supported": [],
            "scopes_supported": sorted(settings.access.scopes),
            "token_endpoint_auth_signing_alg_values_supported": [settings.tokens.algorithm],
        }

    @router.get(
        "/internal/revocations",
        response_model=RevocationFeedOut,
        summary="Revocation feed for resource services",
    )
    async def revocations(
        request: Request,
        after: Annotated[int, Query(ge=0, le=_MAX_REVOCATION_SEQ)] = 0,
        client: ServiceClient = Depends(ServiceClientAuth(*INTERNAL_CLIENTS)),
    ) -> dict[str, Any]:
        cursor, events = await _identity(request).revocations.since(after)
        # API-key revocations are not served: resource services re-introspect keys.
        served = [event.as_json() for event in events if event.kind in ("jti", "sid", "sub")]
        return {"cursor": cursor, "events": served}

    return router


def create_app(
    settings: Settings,
    *,
    sealer: KeySealer,
    db: Database | None = None,
    reseal: Callable[[], Awaitable[KeySealer]] | None = None,
) -> FastAPI:
    """The identity service app.

    Args:
        settings: Service settings.
        sealer: Seals signing keys under the key-encryption key.
        db: The database (default: from ``settings``).
        reseal: Resolves the KEK again after it rotates.
    """
    database = db or Database.from_settings(settings)
    redis_url = settings.redis.url.get_secret_value() if settings.redis.url else None
    guard = login_guard_from_url(
        settings.ratelimit.store_url_or(redis_url), settings.ratelimit.login
    )
    identity = Identity(settings, database, sealer, reseal=reseal, guard=guard)
    authenticator = Authenticator(identity.verify_access, identity.verify_api_key)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await identity.migrate()
        await protection.open(database, settings.data_dir)
        identity.audit = protection.record
        await identity.start()
        try:
            yield
        finally:
            await identity.stop()
            await protection.close()
            await database.dispose()

    app = FastAPI(
        title="Barbacana identity service",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.identity = identity
    app.state.barbacana_authenticator = authenticator

    async def internal_client(scope: Any) -> str | None:
        # Service clients on /internal/ are counted as themselves, once verified,
        # so a client cannot claim another's quota by naming it.
        if not str(scope.get("path", "")).startswith("/internal/"):
            return None
        pair = _basic_from_scope(scope)
        if pair is None:
            return None
        try:
            return (await identity.clients.authenticate(*pair)).client_id
        except BarbacanaError:
            return None

    protection = Protection(
        app, settings, authenticator, service="auth", client_identity=internal_client
    )
    app.state.protection = protection
    app.include_router(_token_router())
    app.include_router(_users_router())
    app.include_router(_admin_router())
    app.include_router(_discovery_router(settings))
    app.include_router(_audit_router())
    app.include_router(ticket_router(settings))

    async def keys_loaded() -> None:
        identity.ring.signing_key()

    return secure(
        app,
        settings,
        readiness={"database": database.check, "keys": keys_loaded, "ratelimit": protection.ready},
    )
