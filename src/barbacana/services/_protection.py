"""Rate limits and the audit trail around a reference service.

Both need things that exist only once the service runs (the database, the
trail's key), while middleware is declared when the app is built; this module
declares the middleware at build time and binds the trail in the lifespan.
Order, outermost first: ``secure()``'s layer (request id, headers), CORS,
audit (so it sees every 401, 403 and 429), rate limits, the app.

It also makes a start-up that fails on a Barbacana error (a sealed audit key
and the wrong key-encryption key, a missing secret...) end with that error's
message on one log line, instead of a stack trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..access import Authenticator, Principal, actor_of
from ..audit import Actor, AuditKeyLockedError, AuditMiddleware, AuditTrail
from ..crypto import KeySealer
from ..errors import BarbacanaError, ConfigurationError
from ..ratelimit import Identity as RateIdentity
from ..ratelimit import LimiterUnavailable, RateLimitMiddleware
from ..settings import Settings
from ..storage import Database
from ..transport import peer_identity
from ._runtime import audit_sealer

__all__ = ["Protection"]

#: Paths not worth an audit event each (probes).
_QUIET_PATHS = ("/health", "/ready")


class _LateAudit:
    """Audit middleware whose trail is opened in the lifespan."""

    def __init__(self, app: ASGIApp, protection: Protection) -> None:
        self.app = app
        self.protection = protection
        self._inner: AuditMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        trail = self.protection.trail
        if trail is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._inner is None or self._inner.trail is not trail:
            self._inner = AuditMiddleware(
                self.app, trail, identify=self.protection.audit_identity, exclude_paths=_QUIET_PATHS
            )
        await self._inner(scope, receive, send)


class _StartupFailure:
    """Report a start-up that a Barbacana error stops as one line: the service and the message.

    Starlette answers a failed lifespan with ``lifespan.startup.failed`` carrying
    the whole traceback, which the server logs. For our own errors, whose
    message already says what to fix (and never holds a secret), that line is
    replaced by the message alone.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold_failure(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message)
                return
            await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except BarbacanaError as exc:
            if not held:
                raise
            line = f"{self.service} cannot start: {exc.detail} [{exc.code}]"
            await send({"type": "lifespan.startup.failed", "message": line})
            return
        except BaseException:
            for message in held:
                await send(message)
            raise
        for message in held:
            await send(message)


class Protection:
    """Installs rate limiting and audit middleware; opens and closes the trail.

    Args:
        app: The service app (before ``secure()``).
        settings: Service settings (``ratelimit``, ``audit``, ``redis``).
        authenticator: Names the principal of a request (rate-limit tier, audit actor).
        service: The service name stamped on audit events.
        client_identity: Names a verified service client of a request (internal
            endpoints), so services calling each other are not counted as anonymous.
    """

    def __init__(
        self,
        app: Any,
        settings: Settings,
        authenticator: Authenticator,
        *,
        service: str,
        client_identity: Callable[[Scope], Awaitable[str | None]] | None = None,
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.service = service
        self._client_identity = client_identity
        self.trail: AuditTrail | None = None
        redis_url = settings.redis.url.get_secret_value() if settings.redis.url else None
        self.store = (
            settings.ratelimit.build_store(redis_url) if settings.ratelimit.enabled else None
        )
        if self.store is not None:
            app.add_middleware(
                RateLimitMiddleware,
                policies=settings.ratelimit,
                store=self.store,
                identify=self.rate_identity,
                trusted_proxies=settings.web.trusted_proxies,
            )
        app.add_middleware(_LateAudit, protection=self)
        app.add_middleware(_StartupFailure, service=service)

    async def rate_identity(self, scope: Scope) -> RateIdentity | None:
        """Who a request counts against: a verified peer service, a verified service
        client, an authenticated principal (at its role's tier), else its address."""
        peer = peer_identity(scope, self.settings.transport)
        if peer is not None:
            return RateIdentity(f"peer:{peer.service}", "admin")
        if self._client_identity is not None:
            client = await self._client_identity(scope)
            if client is not None:
                return RateIdentity(f"client:{client}", "admin")
        principal = await self.authenticator.identify(scope)
        if principal is None:
            return None
        tier = "admin" if "admin" in principal.roles else "user"
        key = (
            f"key:{principal.credential_id}"
            if principal.kind == "api_key"
            else f"sub:{principal.subject}"
        )
        return RateIdentity(key, tier)

    async def audit_identity(self, scope: Scope) -> Actor | None:
        principal: Principal | None = await self.authenticator.identify(scope)
        return Actor.coerce(actor_of(principal)) if principal is not None else None

    async def open(self, db: Database, data_dir: Path, *, sealer: KeySealer | None = None) -> None:
        """Open the audit trail in the service's database (keys under ``data_dir``).

        Args:
            db: The service's database.
            data_dir: Where the audit key files live.
            sealer: Seals the audit key files; by default the key-encryption key
                named by ``secrets.kek_ref`` (see :func:`audit_sealer`).

        Raises:
            ConfigurationError: The audit keys are sealed under another
                key-encryption key than ``secrets.kek_ref`` names, or that KEK is
                missing; the message says which reference to check.
            AuditError: The key files or the trail are unusable.
        """
        if sealer is None:
            sealer = await audit_sealer(self.settings)
        try:
            self.trail = await AuditTrail.open(
                db, data_dir, self.settings.audit, service=self.service, sealer=sealer
            )
        except AuditKeyLockedError as exc:
            raise ConfigurationError(
                f"{exc.detail}. Check BARBACANA_SECRETS_KEK_REF (secrets.kek_ref = "
                f"{self.settings.secrets.kek_ref}): it must name the key-encryption key "
                "the audit keys were sealed with; after a KEK change, move them with "
                "`barbacana keys rewrap --from-kek-ref OLD_REF`"
            ) from exc
        if db.rotates:
            db.on_rotation(self._database_credentials_rotated(db.credentials_ref))

    def _database_credentials_rotated(
        self, ref: str | None
    ) -> Callable[[str | None], Awaitable[None]]:
        async def record(version: str | None) -> None:
            await self.record(
                "secret.rotated",
                actor={"type": "system", "name": "secrets"},
                outcome="success",
                resource=f"secret:{ref}",
                details={"kind": "database_credentials", "ref": ref, "version": version},
            )

        return record

    async def record(
        self,
        action: str,
        *,
        actor: Any,
        outcome: str,
        resource: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record a security event durably (a no-op before the trail is open)."""
        if self.trail is not None:
            await self.trail.record(
                action,
                actor=actor,
                outcome=outcome,
                resource=resource,
                reason=reason,
                details=details,
            )

    async def ready(self) -> None:
        """For ``/ready``: raise when the limiter's store is down and it fails closed."""
        down = self.store is not None and not self.store.health().available
        if down and self.settings.ratelimit.failure_mode == "closed":
            raise LimiterUnavailable("the rate-limit store is unavailable")

    async def close(self) -> None:
        """Flush the trail and close the limiter's store."""
        if self.trail is not None:
            # A trail that cannot flush on shutdown has already reported it.
            with contextlib.suppress(BarbacanaError):
                await self.trail.close()
        if self.store is not None:
            await self.store.aclose()
