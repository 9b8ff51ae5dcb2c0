"""Following the issuer's revocation feed into a local :class:`RevocationState`.

The feed is ``GET {url}?after={cursor}``, answering::

    {"cursor": 42,
     "events": [{"kind": "jti" | "sid" | "sub", "value": "<id>",
                 "until": <unix time or null>, "before": <unix time or null>}]}

``jti`` and ``sid`` events revoke that id until ``until`` (the last ``exp`` it
can match); ``sub`` events void that subject's tokens issued before
``before``. A batch is applied whole or not at all, and the cursor moves only
after it is applied, so no event is skipped: a malformed batch makes the
follower unhealthy instead of silently dropping a revocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import structlog

from .._clock import Clock, system_clock
from ..errors import ConfigurationError
from ._jwks import read_limited
from ._revocation import RevocationState
from .errors import RevocationUnavailableError

__all__ = ["RevocationFollower"]

_log = structlog.get_logger("barbacana.tokens")

#: Largest feed response accepted, in bytes.
MAX_FEED_BYTES = 1_048_576
_KINDS = frozenset({"jti", "sid", "sub"})


@dataclass(frozen=True, slots=True)
class _Event:
    kind: str
    value: str
    until: float | None
    before: float | None


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _time(event: dict[str, Any], name: str) -> float | None:
    value = event.get(name)
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value):
        raise RevocationUnavailableError(f"a revocation event's '{name}' is not a UNIX time")
    return float(value)


def _parse_batch(doc: Any) -> tuple[int, list[_Event]]:
    if not isinstance(doc, dict):
        raise RevocationUnavailableError("the revocation feed did not answer a JSON object")
    cursor, events = doc.get("cursor"), doc.get("events")
    if type(cursor) is not int or cursor < 0:
        raise RevocationUnavailableError("the revocation feed's cursor is not an integer")
    if not isinstance(events, list):
        raise RevocationUnavailableError("the revocation feed's events are not a list")
    parsed = []
    for event in events:
        if not isinstance(event, dict) or event.get("kind") not in _KINDS:
            raise RevocationUnavailableError("a revocation event has an unknown kind")
        value = event.get("value")
        if not isinstance(value, str) or not value:
            raise RevocationUnavailableError("a revocation event has no value")
        item = _Event(event["kind"], value, _time(event, "until"), _time(event, "before"))
        if item.kind == "sub" and item.before is None:
            raise RevocationUnavailableError("a subject revocation event has no 'before'")
        parsed.append(item)
    return cursor, parsed


class RevocationFollower:
    """Polls the revocation feed every ``interval`` seconds and applies it.

    Failures are logged and retried on the next tick; the state keeps what it
    had. A batch of ``page_size`` events or more (the feed's page) means more
    may be waiting, so the next poll follows at once.

    :attr:`healthy` is False until the first success and once no poll has
    succeeded for ``stale_after`` seconds (default: three intervals plus the
    request timeout), so a readiness probe can report a follower that fell behind.

    Raises:
        ConfigurationError: ``url`` is not an http(s) URL, or a duration is not positive.
    """

    def __init__(
        self,
        url: str,
        http_client: httpx.AsyncClient,
        state: RevocationState,
        *,
        interval: float | timedelta = 1.0,
        clock: Clock = system_clock,
        timeout: float = 5.0,
        stale_after: float | timedelta | None = None,
        max_bytes: int = MAX_FEED_BYTES,
        page_size: int = 1000,
    ) -> None:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise ConfigurationError("the revocation feed URL is not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigurationError("the revocation feed URL must be an http or https URL")
        self._interval = _seconds(interval)
        self._stale_after = (
            3 * self._interval + timeout if stale_after is None else _seconds(stale_after)
        )
        if min(self._interval, timeout, self._stale_after, max_bytes, page_size) <= 0:
            raise ConfigurationError(
                "interval, timeout, stale_after and max_bytes must be positive"
            )
        self._url = parsed
        self._client = http_client
        self._state = state
        self._clock = clock
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._page_size = page_size
        self._task: asyncio.Task[None] | None = None
        #: The feed position after the last applied batch.
        self.cursor = 0
        #: UNIX time of the last successful poll, ``None`` before the first.
        self.last_success: float | None = None
        #: Polls attempted and polls that failed, for metrics.
        self.polls = 0
        self.failures = 0

    def __repr__(self) -> str:
        return f"RevocationFollower(url={str(self._url)!r}, cursor={self.cursor})"

    @property
    def healthy(self) -> bool:
        """True when a poll succeeded within ``stale_after`` seconds."""
        last = self.last_success
        return last is not None and self._clock() - last <= self._stale_after

    @property
    def running(self) -> bool:
        """True while the background task runs."""
        return self._task is not None and not self._task.done()

    async def poll_once(self) -> int:
        """Fetch and apply one batch; returns how many events were applied.

        Raises:
            RevocationUnavailableError: the feed could not be read or was malformed;
                nothing was applied and the cursor did not move.
        """
        self.polls += 1
        try:
            async with self._client.stream(
                "GET", self._url, params={"after": str(self.cursor)}, timeout=self._timeout
            ) as response:
                if response.status_code != 200:
                    raise RevocationUnavailableError(
                        f"the revocation feed answered HTTP {response.status_code}"
                    )
                body = await read_limited(response, self._max_bytes, "revocation feed response")
            try:
                doc = json.loads(body)
            except (ValueError, RecursionError):
                raise RevocationUnavailableError(
                    "the revocation feed did not answer JSON"
                ) from None
            cursor, events = _parse_batch(doc)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            self.failures += 1
            raise RevocationUnavailableError("the revocation feed could not be read") from exc
        except RevocationUnavailableError:
            self.failures += 1
            raise
        for event in events:
            if event.kind == "jti":
                self._state.revoke_jti(event.value, event.until)
            elif event.kind == "sid":
                self._state.revoke_sid(event.value, event.until)
            else:
                self._state.revoke_subject(event.value, event.before)  # type: ignore[arg-type]
        self.cursor = cursor
        now = self._clock()
        self._state.prune(now)
        self.last_success = now
        return len(events)

    def start(self) -> None:
        """Start polling in the running event loop (first poll at once); idempotent."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="barbacana-revocation-follower"
            )

    async def stop(self) -> None:
        """Stop polling and wait for the task to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                applied = await self.poll_once()
            except RevocationUnavailableError as exc:
                cause = exc.__cause__
                _log.warning(
                    "revocation_poll_failed",
                    url=str(self._url),
                    detail=exc.detail,
                    cause=type(cause).__name__ if cause is not None else None,
                    healthy=self.healthy,
                )
            else:
                if applied:
                    _log.info("revocations_applied", events=applied, cursor=self.cursor)
                if applied >= self._page_size:
                    continue  # a full page: more may be waiting, catch up at once
            await asyncio.sleep(self._interval)
