"""Fan-out between instances: every published payload reaches every instance once.

A WebSocket service instance only holds its own sockets. To deliver a room's
message to members connected elsewhere, each instance publishes it to a
:class:`Broker` and delivers what the broker hands back to its local members.
:class:`MemoryBroker` hands payloads straight back (one instance);
:class:`RedisBroker` uses Redis pub/sub on one channel, so an instance also
delivers its own messages only after Redis has ordered them, and every
instance sees the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from ..errors import BarbacanaError, ConfigurationError
from .errors import BrokerUnavailableError

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

__all__ = ["Broker", "MemoryBroker", "PayloadHandler", "RedisBroker", "broker_from_url"]

_log = structlog.get_logger("barbacana.websocket")

#: Called with each payload, in order, on the event loop.
PayloadHandler = Callable[[str], Awaitable[None]]


class Broker(ABC):
    """Publishes payloads to every instance, this one included."""

    @abstractmethod
    async def start(self, handler: PayloadHandler) -> None:
        """Deliver every payload published from now on to ``handler``.

        Raises:
            BrokerUnavailableError: The broker cannot be reached at start.
        """

    @abstractmethod
    async def publish(self, payload: str) -> None:
        """Hand ``payload`` to every instance's handler.

        Raises:
            BrokerUnavailableError: The broker cannot be reached.
        """

    async def stop(self) -> None:  # noqa: B027 -- the in-process broker holds nothing
        """Stop delivering and release connections."""

    async def check(self) -> None:  # noqa: B027 -- the in-process broker is always up
        """Raise :class:`BrokerUnavailableError` unless the broker answers (for ``/ready``)."""


class MemoryBroker(Broker):
    """One instance: a published payload goes straight to the handler."""

    def __init__(self) -> None:
        self._handler: PayloadHandler | None = None

    async def start(self, handler: PayloadHandler) -> None:
        self._handler = handler

    async def publish(self, payload: str) -> None:
        if self._handler is not None:
            await self._handler(payload)

    async def stop(self) -> None:
        self._handler = None


class RedisBroker(Broker):
    """Redis pub/sub on ``<prefix>:messages``; see the module docstring.

    Pub/sub is at-most-once: an instance that is disconnected from Redis misses
    what is published meanwhile (a chat message is not worth more), and the
    subscription is restored when Redis answers again.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL.
        key_prefix: First part of the channel name.
        timeout: Seconds to wait for Redis when connecting or publishing.
        retry_interval: Seconds between attempts to restore a lost subscription.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "brb:ws",
        timeout: float = 2.0,
        retry_interval: float = 0.5,
    ) -> None:
        import redis.asyncio as aioredis

        try:
            self._redis = aioredis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            # The subscriber blocks on reads for as long as the channel is quiet.
            self._subscriber = aioredis.Redis.from_url(
                url, socket_connect_timeout=timeout, health_check_interval=30
            )
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"bad broker Redis URL: {exc}") from None
        self.channel = f"{key_prefix}:messages"
        self._retry = retry_interval
        self._task: asyncio.Task[None] | None = None
        self._pubsub: PubSub | None = None

    def __repr__(self) -> str:
        return f"RedisBroker(channel={self.channel!r})"

    async def start(self, handler: PayloadHandler) -> None:
        from redis.exceptions import RedisError

        pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
        except RedisError as exc:
            raise BrokerUnavailableError("the message broker cannot be reached") from exc
        self._pubsub = pubsub
        self._task = asyncio.create_task(self._listen(pubsub, handler), name="barbacana-ws-broker")

    async def _listen(self, pubsub: PubSub, handler: PayloadHandler) -> None:
        from redis.exceptions import RedisError

        down = False
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except (RedisError, OSError) as exc:
                if not down:
                    _log.warning("ws_broker_disconnected", error=type(exc).__name__)
                    down = True
                await asyncio.sleep(self._retry)
                continue
            if down:
                _log.info("ws_broker_reconnected")
                down = False
            if message is None or message.get("type") != "message":
                continue
            data = message["data"]
            payload = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
            try:
                await handler(payload)
            except BarbacanaError as exc:
                _log.warning("ws_broker_delivery_failed", code=exc.code)

    async def publish(self, payload: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.publish(self.channel, payload)
        except RedisError as exc:
            raise BrokerUnavailableError("the message broker cannot be reached") from exc

    async def check(self) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.ping()
        except RedisError as exc:
            raise BrokerUnavailableError("the message broker cannot be reached") from exc

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            from redis.exceptions import RedisError

            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._subscriber.aclose()
        await self._redis.aclose()


def broker_from_url(url: str | None, *, key_prefix: str = "brb:ws") -> Broker:
    """In process for ``None``/``memory://``; Redis pub/sub for ``redis://``, ``rediss://``, ``unix://``.

    Raises:
        ConfigurationError: The scheme is unknown.
    """
    scheme = (url or "memory://").split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryBroker()
    if scheme in {"redis", "rediss", "unix"}:
        return RedisBroker(url or "", key_prefix=key_prefix)
    raise ConfigurationError(
        f"unknown broker scheme {scheme!r}; use memory://, redis://, rediss:// or unix://"
    )
