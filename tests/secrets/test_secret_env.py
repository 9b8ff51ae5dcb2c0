"""The env source: process environment first, then a .env file (development)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from barbacana.secrets import (
    EnvSource,
    SecretMalformedError,
    SecretNotFoundError,
    SecretsConfigurationError,
    source_from_url,
)


class TestEnvironment:
    async def test_reads_the_process_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """env://NAME reads the variable from os.environ at call time."""
        monkeypatch.setenv("BT_DB_PASSWORD", "from-env-1")
        source = EnvSource()
        assert (await source.get("BT_DB_PASSWORD")).get_secret_value() == "from-env-1"
        monkeypatch.setenv("BT_DB_PASSWORD", "from-env-2")
        assert (await source.get("BT_DB_PASSWORD")).get_secret_value() == "from-env-2"

    async def test_prefix_and_json_field(self) -> None:
        """A prefix is prepended; #field selects from a JSON value."""
        source = EnvSource(environ={"APP_DB": '{"password": "p", "port": 5432}'}, prefix="APP_")
        assert (await source.get("DB#password")).get_secret_value() == "p"
        assert (await source.get("DB#port")).get_secret_value() == "5432"
        with pytest.raises(SecretMalformedError, match="JSON"):
            await EnvSource(environ={"X": "not json"}).get("X#f")

    async def test_missing_and_empty(self) -> None:
        """An unset variable is not found (named); an empty one is malformed."""
        source = EnvSource(environ={"EMPTY": ""})
        with pytest.raises(SecretNotFoundError, match="ABSENT") as info:
            await source.get("ABSENT")
        assert info.value.secret == "env://ABSENT"
        with pytest.raises(SecretMalformedError, match="empty"):
            await source.get("EMPTY")

    @pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "PATH/../X", ""])
    def test_invalid_names(self, name: str) -> None:
        """Names that cannot be variables are refused at registration."""
        with pytest.raises(SecretsConfigurationError):
            EnvSource().validate_name(name)


class TestDotenv:
    async def test_file_values_and_precedence(self, tmp_path: Path) -> None:
        """The environment wins over the file; '$' is kept literally (no interpolation)."""
        env_file = tmp_path / ".env"
        env_file.write_text("A=from-file\nB='pa$$word${HOME}'\n# C=commented\n")
        source = EnvSource(env_file, environ={"A": "from-env"})
        assert (await source.get("A")).get_secret_value() == "from-env"
        assert (await source.get("B")).get_secret_value() == "pa$$word${HOME}"
        with pytest.raises(SecretNotFoundError, match=r"\.env"):
            await source.get("C")

    async def test_edits_are_picked_up(self, tmp_path: Path) -> None:
        """Changing the file changes the value read next (development convenience)."""
        env_file = tmp_path / ".env"
        env_file.write_text("TOKEN=one\n")
        source = EnvSource(env_file, environ={})
        assert (await source.get("TOKEN")).get_secret_value() == "one"
        env_file.write_text("TOKEN=two-longer\n")
        os.utime(env_file, ns=(1, 1))
        assert (await source.get("TOKEN")).get_secret_value() == "two-longer"

    async def test_from_url(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """env://path/.env?prefix=P_ builds the same source."""
        monkeypatch.chdir(tmp_path)
        (tmp_path / ".env").write_text("P_KEY=k\n")
        source = source_from_url("env://.env?prefix=P_")
        assert isinstance(source, EnvSource)
        assert (await source.get("KEY")).get_secret_value() == "k"

    async def test_health_warns_on_loose_mode(self, tmp_path: Path) -> None:
        """A .env readable by others is a warning; a missing one too, but the source is up."""
        env_file = tmp_path / ".env"
        env_file.write_text("A=1\n")
        env_file.chmod(0o644)
        health = await EnvSource(env_file).check()
        assert health.ok
        assert any("0644" in w for w in health.warnings)
        env_file.chmod(0o600)
        assert (await EnvSource(env_file).check()).warnings == ()
        missing = await EnvSource(tmp_path / "none.env").check()
        assert missing.ok
        assert "does not exist" in missing.warnings[0]
