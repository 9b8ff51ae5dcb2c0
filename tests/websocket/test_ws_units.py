"""Frames, message rate, connection counters, broker and settings, without a server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from barbacana.errors import ConfigurationError
from barbacana.services.chat._models import ClientFrame, MessageIn, MessageOut
from barbacana.websocket import (
    BrokerUnavailableError,
    ConnectionCounter,
    ConnectionStoreUnavailableError,
    FrameError,
    FrameParser,
    MemoryBroker,
    MemoryConnectionCounter,
    MessageRate,
    PingFrame,
    PongFrame,
    RedisBroker,
    RedisConnectionCounter,
    WebSocketSettings,
    broker_from_url,
    connection_counter_from_url,
    uvicorn_ws_options,
    valid_room,
)
from tests.websocket.conftest import FakeClock

PARSER: FrameParser[object] = FrameParser(ClientFrame)


class TestFrames:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ('{"type": "message", "text": "hello"}', MessageIn(type="message", text="hello")),
            ('{"type": "ping"}', PingFrame()),
            ('{"type": "pong"}', PongFrame()),
        ],
    )
    def test_valid(self, text: str, expected: object) -> None:
        assert PARSER.parse(text) == expected

    @pytest.mark.parametrize(
        ("text", "code", "detail"),
        [
            ("hello", "invalid_json", "not valid JSON"),
            ('{"type": "message", "text": "x"', "invalid_json", "not valid JSON"),
            ("[]", "invalid_frame", "JSON object"),
            ('"message"', "invalid_frame", "JSON object"),
            ("{}", "missing_type", "no 'type'"),
            ('{"type": "admin"}', "unknown_type", "unknown frame type"),
            ('{"type": 1}', "unknown_type", "unknown frame type"),
            ('{"type": "message"}', "invalid_frame", "missing field 'text'"),
            ('{"type": "message", "text": 5}', "invalid_frame", "field 'text'"),
            ('{"type": "message", "text": ["a"]}', "invalid_frame", "field 'text'"),
            ('{"type": "message", "text": ""}', "invalid_frame", "field 'text'"),
            ('{"type": "message", "text": "   "}', "invalid_frame", "field 'text'"),
            ('{"type": "message", "text": "' + "a" * 2001 + '"}', "invalid_frame", "field 'text'"),
            (
                '{"type": "message", "text": "hi", "room": "admins"}',
                "invalid_frame",
                "unknown field 'room'",
            ),
            (
                '{"type": "message", "text": "hi", "from": "admin"}',
                "invalid_frame",
                "unknown field 'from'",
            ),
            ('{"type": "ping", "x": 1}', "invalid_frame", "unknown field 'x'"),
        ],
    )
    def test_refused(self, text: str, code: str, detail: str) -> None:
        """Each bad frame gets a stable code and a detail naming the field, not the input."""
        with pytest.raises(FrameError) as caught:
            PARSER.parse(text)
        assert caught.value.frame_code == code
        assert detail in caught.value.detail
        # The input itself is never echoed back.
        assert "admin" not in caught.value.detail

    def test_outgoing_is_a_model(self) -> None:
        """The service's message frame serialises ``from`` and refuses undeclared fields."""
        frame = MessageOut(room="general", sender="alice", text="hi", ts=1.5)
        assert frame.model_dump_json() == (
            '{"type":"message","room":"general","from":"alice","text":"hi","ts":1.5}'
        )
        with pytest.raises(ValidationError):
            MessageOut(room="general", sender="a", text="hi", ts=1.0, password="x")  # type: ignore[call-arg]


class TestMessageRate:
    def test_burst_then_refill(self, clock: FakeClock) -> None:
        """A burst of ``burst`` passes, the next is refused, and tokens refill at ``rate``."""
        rate = MessageRate(2.0, 4, clock=clock)
        assert [rate.allow() for _ in range(5)] == [True, True, True, True, False]
        clock.advance(0.49)
        assert not rate.allow()
        clock.advance(0.02)
        assert rate.allow()
        clock.advance(100)
        assert sum(rate.allow() for _ in range(10)) == 4

    def test_sustained_rate(self, clock: FakeClock) -> None:
        """Over 10 s at one attempt per 10 ms, about burst + rate * 10 pass."""
        rate = MessageRate(5.0, 10, clock=clock)
        passed = 0
        for _ in range(1000):
            passed += rate.allow()
            clock.advance(0.01)
        assert 59 <= passed <= 61

    def test_bad(self) -> None:
        with pytest.raises(ConfigurationError):
            MessageRate(0, 1)
        with pytest.raises(ConfigurationError):
            MessageRate(1, 0)


@pytest.fixture(params=["memory", "redis"])
def counter(request: pytest.FixtureRequest) -> ConnectionCounter:
    if request.param == "memory":
        return MemoryConnectionCounter()
    return RedisConnectionCounter(
        request.getfixturevalue("redis_url"), key_prefix=request.getfixturevalue("prefix")
    )


class TestConnectionCounter:
    async def test_cap(self, counter: ConnectionCounter) -> None:
        """Up to ``limit`` connections per user; a release frees a place; users are separate."""
        assert [await counter.acquire("u{1}", f"c{i}", 3) for i in range(4)] == [True] * 3 + [False]
        assert await counter.acquire("u{1}", "c0", 3)  # one already held is still held
        assert await counter.acquire("other", "c0", 3)
        await counter.release("u{1}", "c1")
        await counter.release("u{1}", "c1")
        assert await counter.acquire("u{1}", "c9", 3)
        assert not await counter.acquire("u{1}", "c10", 3)
        await counter.aclose()

    async def test_concurrent_acquire_exact(self, counter: ConnectionCounter) -> None:
        """Forty handshakes at once against a cap of five: exactly five get in."""
        results = await asyncio.gather(*(counter.acquire("u", f"c{i}", 5) for i in range(40)))
        assert sum(results) == 5
        await counter.aclose()

    async def test_redis_lease_expires(self, redis_url: str, prefix: str) -> None:
        """A count left by an instance that died stops counting after its lease."""
        dead = RedisConnectionCounter(redis_url, key_prefix=prefix, lease=1.0)
        assert await dead.acquire("u", "c1", 1)
        await dead.aclose()
        live = RedisConnectionCounter(redis_url, key_prefix=prefix, lease=1.0)
        assert not await live.acquire("u", "c2", 1)
        await asyncio.sleep(1.1)
        assert await live.acquire("u", "c2", 1)
        await live.renew([("u", "c2")])
        assert await live.count("u") == 1
        await live.aclose()

    async def test_redis_keys_are_cluster_safe(self, redis_url: str, prefix: str) -> None:
        """One key per user, its subject in a hash tag that the subject cannot break."""
        counter = RedisConnectionCounter(redis_url, key_prefix=prefix)
        await counter.acquire("a}b{c", "c1", 1)
        client = aioredis.Redis.from_url(redis_url)
        keys = [k.decode() async for k in client.scan_iter(match=f"{prefix}:*")]
        await client.aclose()
        assert keys == [f"{prefix}:conns:{{a%7Db%7Bc}}"]
        await counter.aclose()

    async def test_redis_unreachable(self) -> None:
        counter = RedisConnectionCounter("redis://127.0.0.1:1/0", timeout=0.2)
        with pytest.raises(ConnectionStoreUnavailableError):
            await counter.acquire("u", "c", 1)
        await counter.release("u", "c")  # never fails a close
        await counter.aclose()

    def test_scheme_table(self) -> None:
        assert isinstance(connection_counter_from_url(None), MemoryConnectionCounter)
        with pytest.raises(ConfigurationError):
            connection_counter_from_url("ftp://x")


class TestBroker:
    async def test_memory(self) -> None:
        seen: list[str] = []

        async def handler(payload: str) -> None:
            seen.append(payload)

        broker = MemoryBroker()
        await broker.start(handler)
        await broker.publish("one")
        assert seen == ["one"]
        await broker.stop()
        await broker.publish("two")
        assert seen == ["one"]

    async def test_redis_reaches_every_instance_in_order(self, redis_url: str, prefix: str) -> None:
        """Two instances on one channel each get every payload, in publish order."""
        got: dict[str, list[str]] = {"a": [], "b": []}
        brokers = {name: RedisBroker(redis_url, key_prefix=prefix) for name in got}
        for name, broker in brokers.items():

            async def handler(payload: str, name: str = name) -> None:
                got[name].append(payload)

            await broker.start(handler)
        sent = [f"m\ngeneral\n{i}" for i in range(50)]
        for i, payload in enumerate(sent):
            await brokers["a" if i % 2 else "b"].publish(payload)
        for _ in range(200):
            if all(len(v) == 50 for v in got.values()):
                break
            await asyncio.sleep(0.01)
        assert got["a"] == sent
        assert got["b"] == sent
        for broker in brokers.values():
            await broker.check()
            await broker.stop()

    async def test_redis_unreachable(self) -> None:
        broker = RedisBroker("redis://127.0.0.1:1/0", timeout=0.2)
        with pytest.raises(BrokerUnavailableError):
            await broker.publish("x")
        with pytest.raises(BrokerUnavailableError):
            await broker.start(lambda _: asyncio.sleep(0))
        await broker.stop()

    def test_scheme_table(self) -> None:
        assert isinstance(broker_from_url(None), MemoryBroker)
        with pytest.raises(ConfigurationError):
            broker_from_url("kafka://x")


class TestSettings:
    def test_defaults(self) -> None:
        ws = WebSocketSettings()
        assert ws.ticket_ttl == timedelta(seconds=30)
        assert ws.rooms == {"general": ["user", "admin"], "admins": ["admin"]}
        assert uvicorn_ws_options(ws) == {
            "ws_max_size": 16_384,
            "ws_ping_interval": 20.0,
            "ws_ping_timeout": 40.0,
            "ws_per_message_deflate": False,
        }

    @pytest.mark.parametrize(
        ("values", "message"),
        [
            ({"rooms": {"Bad Room": ["user"]}}, "not a room name"),
            ({"rooms": {"empty": []}}, "admits no role"),
            (
                {"ping_interval": timedelta(seconds=30), "idle_timeout": timedelta(seconds=30)},
                "longer than",
            ),
            ({"key_prefix": "a{b}"}, "braces"),
        ],
    )
    def test_refused(self, values: dict[str, object], message: str) -> None:
        with pytest.raises(ConfigurationError, match=message):
            WebSocketSettings(**values)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "values",
        [{"ticket_ttl": timedelta(minutes=10)}, {"max_frame_bytes": 10}, {"surprise": 1}],
    )
    def test_limits(self, values: dict[str, object]) -> None:
        with pytest.raises(ValidationError):
            WebSocketSettings(**values)  # type: ignore[arg-type]

    def test_room_names(self) -> None:
        assert valid_room("general")
        assert valid_room("a-1_b")
        for bad in ("", "General", "a b", "a\nb", "../x", "x" * 65, 5):
            assert not valid_room(bad)
