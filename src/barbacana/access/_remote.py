"""Token and API-key verification for a resource service.

A resource service trusts the identity service for three things, each fetched
over HTTP (mTLS between services when the transport layer is configured):

* the signing keys (``/.well-known/jwks.json``), cached and refreshed on an unknown ``kid``;
* revocations (``/internal/revocations``), followed every second, so a logout
  or a disabled user reaches every instance within two seconds;
* API keys (``/introspect``), cached for one second.

The feed and introspection authenticate this service as an OAuth2 client
(:class:`ClientCredentials`): its secret is re-read from its file as it
rotates, so a rotation never needs a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable

import httpx

from .. import _context
from .._clock import Clock, system_clock
from ..errors import ConfigurationError
from ..settings import Settings
from ..tokens import (
    JWKSCache,
    JWKSUnavailableError,
    RevocationFollower,
    RevocationState,
    RevocationUnavailableError,
    TokenVerifier,
)
from ._credentials import ClientCredentials
from ._principal import Principal, principal_from_claims
from ._require import Authenticator
from .errors import NotAuthenticatedError

__all__ = ["RemoteIdentity", "propagate_correlation"]

_API_KEY_TTL = 1.0
_API_KEY_CACHE = 1024


async def propagate_correlation(request: httpx.Request) -> None:
    """httpx request hook: forward this request's ``X-Request-ID`` and ``traceparent``.

    One user action can then be followed across services in logs and audit
    trails (the callee keeps a well-formed id as sent).
    """
    request_id = _context.request_id.get()
    if request_id and "x-request-id" not in request.headers:
        request.headers["X-Request-ID"] = request_id
    traceparent = _context.traceparent.get()
    if traceparent and "traceparent" not in request.headers:
        request.headers["traceparent"] = traceparent


class RemoteIdentity:
    """Everything a resource service needs to authenticate callers.

    Args:
        settings: The service's settings (``tokens.identity_url`` or explicit URLs,
            and ``client`` credentials for introspection and the revocation feed).
        client_factory: Builds the HTTP clients that reach the identity service
            (``httpx.AsyncClient`` keyword arguments; an mTLS client factory in
            production, see ``barbacana.transport``).
        clock: Time source.

    Raises:
        ConfigurationError: The identity service's URLs are not configured.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client_factory: Callable[..., httpx.AsyncClient] = httpx.AsyncClient,
        clock: Clock = system_clock,
    ) -> None:
        tokens = settings.tokens
        jwks_url = tokens.endpoint("jwks")
        if jwks_url is None:
            raise ConfigurationError(
                "set BARBACANA_TOKENS_IDENTITY_URL (or BARBACANA_TOKENS_JWKS_URL) so this "
                "service can fetch the identity service's keys"
            )
        self._clock = clock
        #: This service's client credentials (re-read as the secret rotates), if any.
        self.credentials = ClientCredentials.from_settings(settings.client)
        # Keys are public: fetched without credentials. The feed and introspection
        # authenticate this service as an OAuth2 client.
        hooks = {"request": [propagate_correlation]}
        self._http = client_factory(timeout=5.0, event_hooks=hooks)
        self._authed_http = client_factory(timeout=5.0, auth=self.credentials, event_hooks=hooks)
        self.jwks = JWKSCache(
            jwks_url,
            self._http,
            min_refresh_interval=tokens.jwks_min_refresh_interval.total_seconds(),
            clock=clock,
        )
        self.revocations = RevocationState(clock=clock)
        self.verifier = TokenVerifier(
            self.jwks,
            issuer=tokens.issuer,
            audience=tokens.audience,
            algorithms=["Ed25519", "EdDSA", "ES256", "RS256"],
            leeway=tokens.leeway.total_seconds(),
            max_token_bytes=tokens.max_token_bytes,
            clock=clock,
            revocation=self.revocations,
            cache_size=tokens.verified_cache_size,
        )
        feed = tokens.endpoint("revocations")
        self.follower: RevocationFollower | None = None
        if feed is not None and self.credentials is not None:
            self.follower = RevocationFollower(
                feed,
                self._authed_http,
                self.revocations,
                interval=tokens.revocation_poll_interval.total_seconds(),
                clock=clock,
            )
        self._introspect_url = tokens.endpoint("introspect")
        self._jwks_refresh = tokens.jwks_refresh_interval.total_seconds()
        self._refresher: asyncio.Task[None] | None = None
        self._api_keys: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        self.authenticator = Authenticator(self.verify_token, self.verify_api_key)

    def __repr__(self) -> str:
        return "RemoteIdentity()"

    async def start(self) -> None:
        """Fetch the keys (raises if the identity service is unreachable) and follow revocations."""
        await self.jwks.load()
        self._refresher = asyncio.create_task(self._refresh_keys(), name="jwks-refresh")
        if self.follower is not None:
            await self.follower.poll_once()
            self.follower.start()

    async def _refresh_keys(self) -> None:
        # Periodic refresh learns ``next`` keys before they sign; a failure keeps
        # the cached keys (the cache logs it) and is retried next time.
        while True:
            await asyncio.sleep(self._jwks_refresh)
            with contextlib.suppress(JWKSUnavailableError):
                await self.jwks.load()

    async def stop(self) -> None:
        """Stop following revocations and close the clients."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self.follower is not None:
            await self.follower.stop()
        await self._http.aclose()
        await self._authed_http.aclose()

    async def ready(self) -> None:
        """Raise unless keys are loaded and revocations are followed (for ``/ready``)."""
        if len(self.jwks.ring) == 0:
            raise JWKSUnavailableError("the identity service's keys are not loaded")
        if self.follower is not None and not self.follower.healthy:
            raise RevocationUnavailableError("the revocation feed is not being followed")

    async def verify_token(self, token: str) -> Principal:
        """The principal of a valid access token.

        Raises:
            TokenError: The token is not valid (any reason of DESIGN invariant 1).
        """
        return principal_from_claims(await self.verifier.verify_async(token))

    async def verify_api_key(self, key: str) -> Principal:
        """The principal of a valid API key, asked of the identity service.

        Answers are cached for one second, so a revoked key stops working within
        two seconds while a busy program costs one introspection a second.

        Raises:
            NotAuthenticatedError: The key is not valid, or this service cannot introspect.
        """
        if self._introspect_url is None or self.credentials is None or len(key) > 256:
            raise NotAuthenticatedError("API keys are not accepted here")
        now = time.monotonic()
        cached = self._api_keys.get(key)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal = await self._introspect(key)
            self._api_keys[key] = (now + _API_KEY_TTL, principal)
            self._api_keys.move_to_end(key)
            while len(self._api_keys) > _API_KEY_CACHE:
                self._api_keys.popitem(last=False)
        if principal is None:
            raise NotAuthenticatedError("invalid API key")
        return principal

    async def _introspect(self, key: str) -> Principal | None:
        if self._introspect_url is None or self.credentials is None:
            return None
        try:
            response = await self._authed_http.post(
                self._introspect_url,
                data={"token": key, "token_type_hint": "api_key"},  # nosec B105 -- a hint name
            )
        except httpx.HTTPError:
            raise NotAuthenticatedError("API keys cannot be checked right now") from None
        if response.status_code != 200:
            raise NotAuthenticatedError("API keys cannot be checked right now")
        body = response.json()
        if not body.get("active") or body.get("token_type") != "api_key":
            return None
        return Principal(
            subject=str(body["sub"]),
            kind="api_key",
            scopes=frozenset(str(body.get("scope", "")).split()),
            roles=tuple(body.get("roles", ())),
            credential_id=body.get("key_id"),
            username=body.get("username"),
        )
