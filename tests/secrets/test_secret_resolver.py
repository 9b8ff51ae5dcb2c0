"""The resolver: strict start-up, background refresh, last good value, listeners, health."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from barbacana.secrets import (
    FilesSource,
    SecretNotLoadedError,
    SecretResolver,
    SecretsConfigurationError,
    SecretSource,
    SecretsSettings,
    SecretsStartupError,
    SecretValue,
    SourceHealth,
    SourceURL,
)

from .conftest import eventually


class ManualClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def put(root: Path, name: str, value: str) -> None:
    path = root / name
    path.write_text(value + "\n")
    path.chmod(0o600)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    put(directory, "db_password", "pw-1")
    put(directory, "api_key", "key-1")
    return directory


class TestStartup:
    async def test_start_loads_registered_secrets(self, root: Path) -> None:
        """Registered secrets are loaded by start() and read from the cache."""
        resolver = SecretResolver({"file": FilesSource(root)})
        resolver.register("file://db_password")
        resolver.register("file://api_key")
        async with resolver:
            value = resolver.current("file://db_password")
            assert isinstance(value, SecretStr)
            assert value.get_secret_value() == "pw-1"
            assert (await resolver.get("file://api_key")).get_secret_value() == "key-1"
            assert resolver.running
        assert not resolver.running

    async def test_missing_secret_stops_startup(self, root: Path) -> None:
        """Start-up fails naming each failing secret, its source and the error code."""
        resolver = SecretResolver({"file": FilesSource(root)})
        resolver.register("file://db_password")
        resolver.register("file://absent")
        with pytest.raises(SecretsStartupError) as info:
            await resolver.start()
        message = str(info.value)
        assert "file://absent" in message
        assert str(root) in message
        assert "secret_not_found" in message
        assert "pw-1" not in message
        assert [f.code for f in info.value.failures] == ["secret_not_found"]
        assert not resolver.running
        await resolver.stop()

    async def test_source_down_at_start(self, tmp_path: Path) -> None:
        """A source that is down at start stops start-up, naming secret and source."""
        resolver = SecretResolver({"file": FilesSource(tmp_path / "unmounted")})
        resolver.register("file://db_password")
        with pytest.raises(SecretsStartupError, match="secret_source_unavailable") as info:
            async with resolver:
                pass
        failure = info.value.failures[0]
        assert failure.secret == "file://db_password"  # type: ignore[attr-defined]
        assert "unmounted" in failure.source  # type: ignore[attr-defined]

    async def test_not_loaded_and_stopped(self, root: Path) -> None:
        """current() before loading is an error; a stopped resolver cannot start again."""
        resolver = SecretResolver({"file": FilesSource(root)})
        with pytest.raises(SecretNotLoadedError):
            resolver.current("file://db_password")
        await resolver.start()
        await resolver.stop()
        with pytest.raises(SecretsConfigurationError, match="stopped"):
            await resolver.start()

    async def test_get_loads_on_demand(self, root: Path) -> None:
        """get() on an unregistered secret registers and loads it."""
        async with SecretResolver({"file": FilesSource(root)}) as resolver:
            assert (await resolver.get("file://api_key")).get_secret_value() == "key-1"
            assert "file://api_key" in resolver.health()


class TestRefresh:
    async def test_background_refresh_picks_up_a_rotation(self, root: Path) -> None:
        """A changed file is picked up without restart; previous() keeps the old value."""
        resolver = SecretResolver({"file": FilesSource(root)}, ttl=0.1, refresh_interval=0.05)
        seen: list[tuple[str, str | None]] = []

        async def listener(new: SecretStr, old: SecretStr | None) -> None:
            seen.append((new.get_secret_value(), old.get_secret_value() if old else None))

        resolver.register("file://db_password")
        resolver.on_change("file://db_password", listener)
        async with resolver:
            assert resolver.previous("file://db_password") is None
            put(root, "db_password", "pw-2")
            changed = await eventually(
                lambda: resolver.current("file://db_password").get_secret_value() == "pw-2",
                seconds=5,
            )
            assert changed
            previous = resolver.previous("file://db_password")
            assert previous is not None
            assert previous.get_secret_value() == "pw-1"
            assert await eventually(lambda: seen == [("pw-2", "pw-1")], seconds=2)
            assert resolver.health()["file://db_password"].changes == 1

    async def test_down_at_refresh_keeps_last_good_value(self, root: Path) -> None:
        """When the source disappears the old value stays; health reports the failure."""
        clock = ManualClock()
        resolver = SecretResolver({"file": FilesSource(root)}, ttl=60, clock=clock)
        resolver.register("file://db_password")
        async with resolver:
            loaded_at = clock.now
            root.rename(root.with_name("unmounted"))
            clock.now += 120
            assert await resolver.refresh() == []
            assert resolver.current("file://db_password").get_secret_value() == "pw-1"
            health = resolver.health()["file://db_password"]
            assert health.loaded
            assert not health.ok
            assert health.last_error == "secret_source_unavailable"
            assert health.last_success == loaded_at
            assert health.last_attempt == clock.now
            assert health.consecutive_failures == 1
            assert str(root) in health.source
            root.with_name("unmounted").rename(root)
            put(root, "db_password", "pw-3")
            clock.now += 1
            assert await resolver.refresh("file://db_password") == ["file://db_password"]
            health = resolver.health()["file://db_password"]
            assert health.ok
            assert health.consecutive_failures == 0
            assert resolver.current("file://db_password").get_secret_value() == "pw-3"

    async def test_due_times_follow_ttl_and_backoff(self, root: Path) -> None:
        """A value is due after its TTL; failures retry with a growing delay capped at the TTL."""
        clock = ManualClock()
        resolver = SecretResolver(
            {"file": FilesSource(root)}, ttl=100, refresh_interval=10, clock=clock
        )
        resolver.register("file://db_password", ttl=50)
        async with resolver:
            entry = resolver._entries["file://db_password"]
            assert entry.next_due == clock.now + 50
            root.rename(root.with_name("gone"))
            delays = []
            for _ in range(4):
                clock.now = entry.next_due
                await resolver._tick()
                delays.append(entry.next_due - clock.now)
            assert delays == [10, 20, 40, 50]

    async def test_failing_listener_does_not_stop_others(
        self, root: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """One listener raising is logged by type; the next one still runs."""
        resolver = SecretResolver({"file": FilesSource(root)})
        calls: list[str] = []

        def bad(new: SecretStr, old: SecretStr | None) -> None:
            raise RuntimeError("boom")

        def good(new: SecretStr, old: SecretStr | None) -> None:
            calls.append(new.get_secret_value())

        resolver.on_change("file://api_key", bad)
        remove = resolver.on_change("file://api_key", good)
        async with resolver:
            put(root, "api_key", "key-2")
            with caplog.at_level(logging.ERROR, logger="barbacana.secrets"):
                await resolver.refresh("file://api_key")
            assert calls == ["key-2"]
            assert "RuntimeError" in caplog.text
            remove()
            put(root, "api_key", "key-3")
            await resolver.refresh("file://api_key")
            assert calls == ["key-2"]

    async def test_unchanged_value_is_not_a_change(self, root: Path) -> None:
        """Rewriting the same value (a touched file) notifies nobody."""
        resolver = SecretResolver({"file": FilesSource(root)})
        calls: list[str] = []
        resolver.on_change("file://api_key", lambda new, old: calls.append("x"))
        async with resolver:
            put(root, "api_key", "key-1")
            assert await resolver.refresh() == []
        assert calls == []


class HangingSource(SecretSource):
    """A user-written source that never answers (to prove the resolver's timeout)."""

    scheme = "hang"

    @property
    def location(self) -> str:
        return "nowhere"

    async def get(self, name: str) -> SecretValue:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    async def check(self) -> SourceHealth:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    @classmethod
    def from_url(cls, url: SourceURL, settings: SecretsSettings, **kwargs: object) -> HangingSource:
        return cls()


class TestTimeouts:
    async def test_a_hanging_source_times_out(self) -> None:
        """A fetch that never answers fails as unavailable after the timeout."""
        resolver = SecretResolver({"hang": HangingSource()}, timeout=0.2)
        resolver.register("hang://x")
        with pytest.raises(SecretsStartupError, match=r"no answer within 0\.2 s"):
            await resolver.start()
        health = await resolver.check()
        assert not health["hang"].ok
        assert "no answer" in health["hang"].detail
        await resolver.stop()

    async def test_from_settings(self, root: Path) -> None:
        """from_settings builds the sources and applies TTL, interval and timeout."""
        from datetime import timedelta

        settings = SecretsSettings(
            sources=[],
            dir=root,
            ttl=timedelta(seconds=7),
            refresh_interval=timedelta(seconds=3),
            timeout=timedelta(seconds=2),
        )
        resolver = SecretResolver.from_settings(settings)
        assert sorted(resolver.sources) == ["file"]
        assert (resolver._ttl, resolver._interval, resolver._timeout) == (7, 3, 2)
        async with resolver:
            assert (await resolver.get("file://db_password")).get_secret_value() == "pw-1"
            checks = await resolver.check()
            assert checks["file"].ok
