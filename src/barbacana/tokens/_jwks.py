"""Fetching the issuer's JWKS, with a cache a flood of unknown ``kid`` values cannot abuse."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta

import httpx
import structlog

from .._clock import Clock, system_clock
from ..errors import ConfigurationError
from ._keys import SigningKey
from ._ring import MAX_JWKS_BYTES, KeyRing
from .errors import InvalidKeyError, JWKSUnavailableError

__all__ = ["JWKSCache", "read_limited"]

_log = structlog.get_logger("barbacana.tokens")


async def read_limited(response: httpx.Response, max_bytes: int, what: str) -> bytes:
    """The body of a streamed ``response``, refusing more than ``max_bytes``.

    Raises:
        ValueError: the body is larger than ``max_bytes``.
    """
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ValueError(f"the {what} is larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise ValueError(f"the {what} is larger than {max_bytes} bytes")
    return bytes(body)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class JWKSCache:
    """The issuer's public keys, fetched from ``url`` and kept in a :class:`KeyRing`.

    It is the ring provider of a resource service's :class:`TokenVerifier`.
    :meth:`load` runs before the service reports ready. Afterwards keys change
    only through :meth:`refresh_for` (an unknown ``kid``, called by
    :meth:`TokenVerifier.verify_async`) or :meth:`refresh`:

    - at most one fetch starts per ``min_refresh_interval``, however many
      unknown ``kid`` values arrive;
    - concurrent callers share the fetch in flight (single flight);
    - a failed fetch keeps the keys already known, and is logged.

    Keys unchanged between fetches keep their identity, so the verifier's
    token cache survives a refresh.

    Raises:
        ConfigurationError: ``url`` is not an http(s) URL, or a limit is not positive.
    """

    def __init__(
        self,
        url: str,
        http_client: httpx.AsyncClient,
        *,
        min_refresh_interval: float | timedelta = 5.0,
        clock: Clock = system_clock,
        max_bytes: int = MAX_JWKS_BYTES,
        timeout: float = 5.0,
    ) -> None:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise ConfigurationError("the JWKS URL is not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigurationError("the JWKS URL must be an http or https URL")
        interval = _seconds(min_refresh_interval)
        if interval <= 0 or max_bytes <= 0 or timeout <= 0:
            raise ConfigurationError("min_refresh_interval, max_bytes and timeout must be positive")
        self._url = parsed
        self._client = http_client
        self._interval = interval
        self._clock = clock
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._ring = KeyRing()
        self._last_attempt = -math.inf
        self._inflight: asyncio.Future[bool] | None = None
        self._last_error: Exception | None = None
        #: UNIX time of the last successful fetch, ``None`` before the first.
        self.last_success: float | None = None
        #: Number of fetches started (successful or not).
        self.fetches = 0

    def __repr__(self) -> str:
        return f"JWKSCache(url={str(self._url)!r}, keys={len(self._ring)})"

    @property
    def ring(self) -> KeyRing:
        """The keys currently known."""
        return self._ring

    def verification_key(self, kid: str) -> SigningKey | None:
        """The known key named ``kid``, or ``None``; never fetches."""
        return self._ring.verification_key(kid)

    async def load(self) -> None:
        """Fetch the key set now, ignoring the refresh interval.

        Raises:
            JWKSUnavailableError: the fetch failed, or the set holds no key.
        """
        if not await self._shared_fetch():
            raise JWKSUnavailableError(
                "the issuer's JWKS could not be loaded"
            ) from self._last_error
        if not len(self._ring):
            raise JWKSUnavailableError("the issuer's JWKS holds no key")

    async def refresh(self) -> bool:
        """Fetch the key set unless one fetch started less than the interval ago.

        Returns True when a fetch ran (or was joined) and succeeded.
        """
        if self._inflight is None and self._clock() - self._last_attempt < self._interval:
            return False
        return await self._shared_fetch()

    async def refresh_for(self, kid: str) -> bool:
        """Try to learn ``kid``; True when it is known afterwards.

        Costs nothing when the interval has not passed and no fetch is running,
        so an attacker sending random ``kid`` values causes at most one request
        per interval.
        """
        if self._ring.verification_key(kid) is not None:
            return True
        await self.refresh()
        return self._ring.verification_key(kid) is not None

    async def _shared_fetch(self) -> bool:
        inflight = self._inflight
        if inflight is None:
            self._last_attempt = self._clock()
            self.fetches += 1
            inflight = self._inflight = asyncio.ensure_future(self._fetch())
            inflight.add_done_callback(self._fetch_done)
        # Shielded: one caller being cancelled must not cancel everyone's fetch.
        return await asyncio.shield(inflight)

    def _fetch_done(self, future: asyncio.Future[bool]) -> None:
        if self._inflight is future:
            self._inflight = None

    async def _fetch(self) -> bool:
        try:
            async with self._client.stream(
                "GET", self._url, headers={"Accept": "application/json"}, timeout=self._timeout
            ) as response:
                if response.status_code != 200:
                    raise JWKSUnavailableError(
                        f"the JWKS endpoint answered HTTP {response.status_code}"
                    )
                body = await read_limited(response, self._max_bytes, "JWKS document")
            fresh = KeyRing.from_jwks(body, max_bytes=self._max_bytes)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, InvalidKeyError,
                JWKSUnavailableError) as exc:  # fmt: skip
            self._last_error = exc
            _log.warning(
                "jwks_refresh_failed",
                url=str(self._url),
                error=type(exc).__name__,
                detail=str(exc),
                keys_kept=len(self._ring),
            )
            return False
        self._ring.replace(self._reuse_unchanged(fresh.keys))
        self.last_success = self._clock()
        self._last_error = None
        _log.info("jwks_refreshed", url=str(self._url), keys=len(self._ring))
        return True

    def _reuse_unchanged(self, keys: tuple[SigningKey, ...]) -> list[SigningKey]:
        result = []
        for key in keys:
            known = self._ring.verification_key(key.kid)
            same = known is not None and known.public_jwk() == key.public_jwk()
            result.append(known if same and known is not None else key)
        return result
