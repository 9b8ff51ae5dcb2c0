"""The identity service's logic: OAuth2 grants, revocation, introspection.

HTTP lives in ``barbacana.services.auth``; this module knows nothing of it, so
the CLI and tests drive the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from .._clock import Clock, system_clock
from ..access import Principal, actor_of, principal_from_claims
from ..errors import BarbacanaError, SecretsError, TokenError
from ..settings import Settings
from ..storage import Database
from ..tokens import (
    AccessClaims,
    KeyRing,
    RevocationState,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
)
from ._apikeys import ApiKey, ApiKeyRotation, ApiKeyStore
from ._clients import ClientSecretRotation, ClientStore
from ._keys import KeySealer, KeyStore
from ._passwords import Passwords
from ._refresh import RefreshStore
from ._revocations import RevocationLog
from ._users import User, UserStore
from .errors import (
    ApiKeyInvalidError,
    InvalidGrantError,
    InvalidScopeError,
    LoginLockedError,
    RotationTooEarlyError,
)

__all__ = ["AuditRecorder", "Identity", "LoginGuard", "TokenResponse"]

_log = structlog.get_logger("barbacana.identity")
MIGRATIONS = Path(__file__).parent / "migrations"


class AuditRecorder(Protocol):
    """What the identity service needs from the audit trail."""

    async def __call__(
        self,
        action: str,
        *,
        actor: dict[str, Any],
        outcome: str,
        resource: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Any: ...


class LoginGuard(Protocol):
    """Brute-force protection (see ``barbacana.ratelimit``)."""

    async def check(self, account: str, address: str) -> Any: ...

    async def failure(self, account: str, address: str) -> Any: ...

    async def success(self, account: str, address: str) -> Any: ...

    async def locked(self) -> list[Any]: ...

    async def unlock(self, account: str) -> bool: ...

    async def unlock_address(self, address: str) -> bool: ...


async def _no_audit(action: str, **_: Any) -> None:
    return None


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """RFC 6749 §5.1 token response."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    token_type: str = "Bearer"  # noqa: S105 -- the RFC 6750 token type, not a secret


class Identity:
    """Users, clients, keys and tokens of one identity service instance.

    Args:
        settings: The service settings.
        db: The identity database.
        sealer: Seals signing keys at rest under the key-encryption key.
        clock: Time source.
        audit: Records security events (``None``: not recorded).
        guard: Brute-force protection on the password grant.
        reseal: Re-resolves the KEK (``barbacana keys rewrap`` moved the stored keys to
            a new one); called when stored keys no longer open.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        sealer: KeySealer,
        *,
        clock: Clock = system_clock,
        audit: AuditRecorder | None = None,
        guard: LoginGuard | None = None,
        reseal: Callable[[], Awaitable[KeySealer]] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self._audit: AuditRecorder = audit or _no_audit
        self.guard = guard
        self._reseal = reseal
        tokens = settings.tokens
        self.passwords = Passwords(settings.identity.password_profile)
        self.revocations = RevocationLog(db, clock)
        self.users = UserStore(db, self.passwords, self.revocations, clock)
        self.clients = ClientStore(db, clock)
        self.api_keys = ApiKeyStore(db, self.revocations, clock)
        self.refresh = RefreshStore(db, self.revocations, tokens.refresh_ttl.total_seconds(), clock)
        self.keys = KeyStore(db, sealer, clock)
        self.ring = KeyRing()
        self.revocation_state = RevocationState(clock=clock)
        self.issuer = TokenIssuer(
            self.ring,
            issuer=tokens.issuer,
            audience=tokens.audience,
            access_ttl=tokens.access_ttl.total_seconds(),
            clock=clock,
        )
        self.verifier = TokenVerifier(
            self.ring,
            issuer=tokens.issuer,
            audience=tokens.audience,
            algorithms=["Ed25519", "EdDSA", "ES256", "RS256"],
            leeway=tokens.leeway.total_seconds(),
            max_token_bytes=tokens.max_token_bytes,
            clock=clock,
            revocation=self.revocation_state,
            cache_size=tokens.verified_cache_size,
        )
        self._cursor = 0
        self._revoked_api_keys: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return "Identity()"

    # -- lifecycle -------------------------------------------------------

    @property
    def audit(self) -> AuditRecorder:
        """Where security events go (the service opens its trail in its lifespan)."""
        return self._audit

    @audit.setter
    def audit(self, recorder: AuditRecorder) -> None:
        self._audit = recorder

    @property
    def retire_after(self) -> float:
        """How long a retiring key keeps verifying: the longest token lifetime plus leeway."""
        tokens = self.settings.tokens
        return (tokens.access_ttl + tokens.leeway).total_seconds()

    async def migrate(self) -> None:
        """Bring the identity schema up to date."""
        await self.db.migrate(MIGRATIONS, "alembic_version_identity")

    async def start(self, *, background: bool = True) -> None:
        """Load keys (creating the first one on a fresh database) and revocations."""
        keys = await self.keys.ensure_active(
            alg=self.settings.tokens.algorithm,
            retire_after=self.retire_after,
            ed25519_alg_name=self.settings.tokens.ed25519_alg_name,
        )
        self.ring.replace(keys)
        await self.sync_revocations()
        if background:
            self._tasks.append(asyncio.create_task(self._follow(), name="identity-follow"))

    async def stop(self) -> None:
        """Stop background work."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def reload_keys(self) -> None:
        """Reload the ring from the database (another instance may have rotated).

        If the stored keys no longer open (the KEK was rotated and the keys
        rewrapped), the KEK is resolved again; until then the keys in memory
        keep signing and verifying, so no request fails.
        """
        self.ring.replace(await self._load_keys())

    async def _load_keys(self) -> list[SigningKey]:
        try:
            return await self.keys.load()
        except SecretsError:
            if self._reseal is None:
                raise
            self.keys.sealer = await self._reseal()
            return await self.keys.load()

    async def rotate_keys(
        self, actor: dict[str, Any] | None = None, *, force: bool = False
    ) -> list[dict[str, object]]:
        """One rotation step, then the new ring is used at once.

        Args:
            actor: Who asked, for the audit trail.
            force: Promote a ``next`` key even if caches may not know it yet.

        Raises:
            RotationTooEarlyError: The ``next`` key is too young (unless ``force``).
        """
        options = {
            "alg": self.settings.tokens.algorithm,
            "retire_after": self.retire_after,
            "ed25519_alg_name": self.settings.tokens.ed25519_alg_name,
            "min_next_age": 0.0 if force else self.settings.key.publish_delay.total_seconds(),
        }
        actor = actor or {"type": "system"}
        try:
            try:
                keys = await self.keys.rotate(**options)  # type: ignore[arg-type]
            except SecretsError:
                if self._reseal is None:
                    raise
                # The KEK rotated under us: resolve it again and retry once.
                self.keys.sealer = await self._reseal()
                keys = await self.keys.rotate(**options)  # type: ignore[arg-type]
        except RotationTooEarlyError as exc:
            # A refused rotation is a security event too: who tried, and why not.
            await self._audit("key.rotated", actor=actor, outcome="failure", reason=exc.code)
            raise
        self.ring.replace(keys)
        await self._audit(
            "key.rotated",
            actor=actor,
            outcome="success",
            details={"states": {key.kid: key.state for key in keys}},
        )
        return await self.keys.all()

    async def scheduled_rotation(self) -> bool:
        """Advance the key lifecycle when the active key is older than the rotation interval.

        Publishes a ``next`` key first; promotes it once it has been published
        for ``key.publish_delay``; retires keys whose window has passed. Safe to
        call from several instances: each step is re-checked inside the
        database transaction. Returns True when something changed.
        """
        now = self.clock()
        retired = await self.keys.retire_expired()
        for kid in retired:
            await self._audit(
                "key.retired",
                actor={"type": "system", "name": "schedule"},
                outcome="success",
                resource=f"key:{kid}",
            )
        changed = bool(retired)
        keys = await self._load_keys()
        active = [key for key in keys if key.state == "active"]
        waiting = [key for key in keys if key.state == "next"]
        interval = self.settings.key.rotation_interval.total_seconds()
        due = any((key.activated_at or key.created_at) + interval <= now for key in active)
        publish_delay = self.settings.key.publish_delay.total_seconds()
        if due and (not waiting or min(k.created_at for k in waiting) + publish_delay <= now):
            try:
                await self.rotate_keys({"type": "system", "name": "schedule"})
            except RotationTooEarlyError:
                pass  # another instance published a next key a moment ago
            else:
                changed = True
        if changed:
            await self.reload_keys()
        return changed

    async def sync_revocations(self) -> None:
        """Apply revocation events written since the last call (by any instance)."""
        while True:
            cursor, events = await self.revocations.since(self._cursor)
            for event in events:
                self._apply(event.kind, event.value, event.until, event.before)
            self._cursor = cursor
            if len(events) < 1000:
                return

    def _apply(self, kind: str, value: str, until: float | None, before: float | None) -> None:
        if kind == "jti":
            self.revocation_state.revoke_jti(value, until)
        elif kind == "sid":
            self.revocation_state.revoke_sid(value, until)
        elif kind == "sub" and before is not None:
            self.revocation_state.revoke_subject(value, before)
        elif kind == "apikey":
            self._revoked_api_keys.add(value)

    async def _follow(self) -> None:
        interval = self.settings.tokens.revocation_poll_interval.total_seconds()
        ticks = 0
        while True:
            await asyncio.sleep(interval)
            ticks += 1
            try:
                await self.sync_revocations()
                if ticks % 5 == 0:
                    await self.scheduled_rotation()
                    await self.retire_api_keys()
                    await self.reload_keys()
                    self.revocation_state.prune()
            except BarbacanaError as exc:
                _log.warning("revocation_sync_failed", error=exc.code)

    # -- credential rotation -------------------------------------------------

    async def rotate_client_secret(
        self,
        client_id: str,
        overlap: float,
        *,
        actor: dict[str, Any] | None = None,
        force: bool = False,
    ) -> ClientSecretRotation:
        """Give a service client a new secret; the previous one works ``overlap`` seconds more.

        Recorded as ``secret.rotated`` of kind ``client_secret`` (never with either secret).

        Raises:
            ClientNotFoundError: No such client.
            InvalidRequestError: ``overlap`` is negative.
            RotationInProgressError: The previous secret still works (and not ``force``).
        """
        rotation = await self.clients.rotate_secret(client_id, overlap, force=force)
        await self._audit(
            "secret.rotated",
            actor=actor or {"type": "system"},
            outcome="success",
            resource=f"client:{client_id}",
            details={
                "kind": "client_secret",
                "client_id": client_id,
                "overlap_seconds": overlap,
                "previous_valid_until": rotation.previous_valid_until,
                "forced": force,
            },
        )
        return rotation

    async def rotate_api_key(
        self, key_id: str, overlap: float, *, actor: dict[str, Any] | None = None
    ) -> ApiKeyRotation:
        """Replace an API key; the old one works ``overlap`` seconds more, then is revoked.

        Recorded as ``secret.rotated`` of kind ``api_key`` (the new key's id, never the key).

        Raises:
            ApiKeyNotFoundError: No active key has that id.
            InvalidRequestError: ``overlap`` is negative.
            RotationInProgressError: The key was already rotated.
        """
        rotation = await self.api_keys.rotate(key_id, overlap)
        if rotation.old.revoked_at is not None:
            self._revoked_api_keys.add(rotation.old.id)
        await self._audit(
            "secret.rotated",
            actor=actor or {"type": "system"},
            outcome="success",
            resource=f"apikey:{rotation.old.id}",
            details={
                "kind": "api_key",
                "key_id": rotation.old.id,
                "replaced_by": rotation.new.id,
                "owner": rotation.new.owner_id,
                "scopes": list(rotation.new.scopes),
                "overlap_seconds": overlap,
                "previous_valid_until": rotation.previous_valid_until,
            },
        )
        return rotation

    async def retire_api_keys(self) -> list[ApiKey]:
        """Record as revoked the rotated API keys whose overlap has ended.

        They already stopped working at the end of their window (``verify``
        checks it); this makes it visible in listings, the revocation log and
        the audit trail (``apikey.revoked``, reason ``rotated``).
        """
        retired = await self.api_keys.retire_due()
        for key in retired:
            self._revoked_api_keys.add(key.id)
            await self._audit(
                "apikey.revoked",
                actor={"type": "system", "name": "schedule"},
                outcome="success",
                resource=f"apikey:{key.id}",
                reason="rotated",
                details={"key_id": key.id, "replaced_by": key.replaced_by},
            )
        return retired

    # -- scopes ------------------------------------------------------------

    def _narrow(self, requested: str | None, allowed: frozenset[str]) -> list[str]:
        """The scopes to grant: all allowed ones, or the requested subset.

        Raises:
            InvalidScopeError: A requested scope is unknown or not held (never granted).
        """
        if requested is None or not requested.strip():
            return sorted(allowed)
        wanted = requested.split()
        refused = [scope for scope in wanted if scope not in allowed]
        if refused:
            raise InvalidScopeError(f"scope not available: {' '.join(refused)}")
        return sorted(set(wanted))

    # -- grants ------------------------------------------------------------

    async def password_grant(
        self,
        username: str,
        password: str,
        *,
        scope: str | None,
        client_id: str,
        address: str,
    ) -> TokenResponse:
        """RFC 6749 §4.3. One answer for unknown user, wrong password or disabled account.

        Raises:
            InvalidGrantError: The credentials do not authenticate an enabled user.
            InvalidScopeError: A requested scope is not held.
            RateLimitError: Too many failures for the account or address.
        """
        # NUL never belongs in a name (PostgreSQL refuses it in text): same answer as a miss.
        account = username.strip().lower()[:64].replace("\x00", "\ufffd")
        # A password may be any text but NUL; one holding NUL is looked up as nobody.
        usable = 0 < len(password) <= 1024 and "\x00" not in password
        actor = {"type": "anonymous", "name": account, "address": address}
        if self.guard is not None:
            verdict = await self.guard.check(account, address)
            if not verdict.allowed:
                # Locked: the same answer whether the account exists or not.
                await self._audit(
                    "auth.login.failed", actor=actor, outcome="denied", reason="locked"
                )
                raise LoginLockedError(
                    "too many failed logins; try again later",
                    retry_after=int(verdict.retry_after or 1),
                )
            if verdict.delay > 0:
                # Growing delay after repeated failures (OWASP ASVS 2.2.1).
                await asyncio.sleep(verdict.delay)
        found = await self.users.find(account) if usable else None
        ok, new_hash = await self.passwords.verify(password[:1024], found[1] if found else None)
        user = found[0] if found else None
        if not ok or user is None or user.disabled:
            if self.guard is not None:
                await self.guard.failure(account, address)
            await self._audit(
                "auth.login.failed", actor=actor, outcome="failure", reason="invalid_credentials"
            )
            raise InvalidGrantError("invalid username or password")
        if new_hash is not None:
            await self.users.rehash(user.id, new_hash)
        if self.guard is not None:
            await self.guard.success(account, address)
        allowed = self.settings.access.scopes_for(list(user.roles))
        granted = self._narrow(scope, allowed)
        family, refresh_token = await self.refresh.start(user.id, client_id, granted)
        response = self._issue(user, granted, client_id, family.id, refresh_token)
        await self._audit(
            "auth.login.succeeded",
            actor={"type": "user", "id": user.id, "name": user.username, "address": address},
            outcome="success",
            details={"client_id": client_id, "scope": " ".join(granted)},
        )
        return response

    def _issue(
        self, user: User, scope: list[str], client_id: str, sid: str | None, refresh: str | None
    ) -> TokenResponse:
        issued = self.issuer.issue_access(
            user.id,
            scope=scope,
            roles=list(user.roles),
            client_id=client_id,
            sid=sid,
            extra={"preferred_username": user.username},
        )
        return TokenResponse(
            access_token=issued.token,
            expires_in=int(issued.expires_in),
            scope=" ".join(scope),
            refresh_token=refresh,
        )

    async def refresh_grant(
        self, refresh_token: str, *, scope: str | None, address: str
    ) -> TokenResponse:
        """RFC 6749 §6, with rotation and reuse detection (RFC 9700 §4.14.2).

        Raises:
            InvalidGrantError: Unknown, expired, revoked or reused token.
            InvalidScopeError: The requested scope is wider than the original.
        """
        if not refresh_token or len(refresh_token) > 256:
            raise InvalidGrantError("invalid refresh token")
        outcome = await self.refresh.use(refresh_token)
        if outcome.status == "reused" and outcome.family is not None:
            self.revocation_state.revoke_sid(outcome.family.id, outcome.family.expires_at)
            await self._audit(
                "auth.refresh.reused",
                actor={"type": "user", "id": outcome.family.user_id, "address": address},
                outcome="failure",
                reason="refresh_token_reuse",
                details={"family": outcome.family.id[:8]},
            )
            raise InvalidGrantError("invalid refresh token")
        if outcome.status != "ok" or outcome.family is None or outcome.token is None:
            raise InvalidGrantError("invalid refresh token")
        family = outcome.family
        user = await self.users.get(family.user_id)
        if user.disabled:
            raise InvalidGrantError("invalid refresh token")
        # Never wider than the original grant, nor than the user's current roles.
        allowed = frozenset(family.scope) & self.settings.access.scopes_for(list(user.roles))
        granted = self._narrow(scope, allowed)
        return self._issue(user, granted, family.client_id, family.id, outcome.token)

    async def client_credentials_grant(
        self, client_id: str, secret: str, *, scope: str | None
    ) -> TokenResponse:
        """RFC 6749 §4.4 for service clients; no refresh token.

        Raises:
            InvalidClientError: Client authentication failed.
            InvalidScopeError: A requested scope is not the client's.
        """
        client = await self.clients.authenticate(client_id, secret)
        granted = self._narrow(scope, frozenset(client.scopes))
        issued = self.issuer.issue_access(
            client.client_id, scope=granted, roles=[], client_id=client.client_id
        )
        return TokenResponse(
            access_token=issued.token, expires_in=int(issued.expires_in), scope=" ".join(granted)
        )

    # -- verification ------------------------------------------------------

    async def verify_access(self, token: str) -> Principal:
        """The principal of a valid access token (used by this service's own routes)."""
        claims = self.verifier.verify(token)
        return principal_from_claims(claims)

    async def verify_api_key(self, key: str) -> Principal:
        """The principal of a valid API key: its owner, with the key's scopes."""
        record = await self.api_keys.verify(key)
        owner = await self.users.get(record.owner_id)
        if owner.disabled:
            raise ApiKeyInvalidError("invalid API key")
        scopes = frozenset(record.scopes) & self.settings.access.scopes_for(list(owner.roles))
        return Principal(
            subject=owner.id,
            kind="api_key",
            scopes=scopes,
            roles=owner.roles,
            credential_id=record.id,
            username=owner.username,
        )

    # -- revocation, logout, introspection ---------------------------------

    async def revoke(self, token: str, hint: str | None) -> None:
        """RFC 7009: revoke an access or refresh token; unknown tokens are fine.

        A refresh token revokes its whole family (and the access tokens minted
        from it); an access token is revoked by its ``jti``.
        """
        if not token or len(token) > self.settings.tokens.max_token_bytes:
            return
        order = (
            ("access_token", "refresh_token")
            if hint == "access_token"
            else ("refresh_token", "access_token")
        )
        for kind in order:
            if kind == "refresh_token":
                family_id = await self.refresh.family_of(token)
                if family_id is not None:
                    await self.refresh.revoke_family(family_id, "revoked")
                    self.revocation_state.revoke_sid(family_id, None)
                    await self._audit(
                        "auth.token.revoked",
                        actor={"type": "anonymous"},
                        outcome="success",
                        details={"kind": "refresh_token"},
                    )
                    return
            else:
                try:
                    claims = self.verifier.verify(token)
                except TokenError:
                    continue
                await self._revoke_access(claims)
                await self._audit(
                    "auth.token.revoked",
                    actor=actor_of(principal_from_claims(claims)),
                    outcome="success",
                    details={"kind": "access_token"},
                )
                return

    async def _revoke_access(self, claims: AccessClaims) -> None:
        async with self.db.begin() as conn:
            await self.revocations.token(conn, claims.jti, until=claims.exp)
        self.revocation_state.revoke_jti(claims.jti, claims.exp)

    async def logout(self, principal: Principal) -> None:
        """End the access token and its refresh family."""
        if principal.credential_id and principal.expires_at is not None:
            async with self.db.begin() as conn:
                await self.revocations.token(
                    conn, principal.credential_id, until=principal.expires_at
                )
            self.revocation_state.revoke_jti(principal.credential_id, principal.expires_at)
        if principal.session_id:
            await self.refresh.revoke_family(principal.session_id, "logout")
            self.revocation_state.revoke_sid(principal.session_id, None)
        await self._audit("auth.logout", actor=actor_of(principal), outcome="success")

    async def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 §2.2: the claims of an active token, else only ``active: false``."""
        if not token or len(token) > self.settings.tokens.max_token_bytes:
            return {"active": False}
        if token.startswith("brb_"):
            try:
                principal = await self.verify_api_key(token)
            except BarbacanaError:
                return {"active": False}
            return {
                "active": True,
                "token_type": "api_key",  # nosec B105 -- RFC 7662 token type name
                "sub": principal.subject,
                "username": principal.username,
                "scope": " ".join(sorted(principal.scopes)),
                "roles": list(principal.roles),
                "key_id": principal.credential_id,
            }
        try:
            claims = self.verifier.verify(token)
        except TokenError:
            return {"active": False}
        return {
            "active": True,
            "token_type": "access_token",  # nosec B105 -- RFC 7662 token type name
            "scope": " ".join(sorted(claims.scope)),
            "client_id": claims.client_id,
            "username": claims.raw.get("preferred_username"),
            "sub": claims.sub,
            "aud": list(claims.aud),
            "iss": claims.iss,
            "exp": int(claims.exp),
            "iat": int(claims.iat),
            "jti": claims.jti,
            "roles": list(claims.roles),
        }

    def revoked_api_key(self, key_id: str) -> bool:
        """True once an API key's revocation reached this instance."""
        return key_id in self._revoked_api_keys
