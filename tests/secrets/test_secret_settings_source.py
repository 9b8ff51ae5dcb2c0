"""A user's pydantic-settings class taking fields from secret sources."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import SecretBytes, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from barbacana.secrets import (
    FilesSource,
    FromSecret,
    SecretResolver,
    SecretsConfigurationError,
    SecretsSettings,
    SecretsSettingsSource,
    SecretsStartupError,
    secret_fields,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    (directory / "db_password").write_text("file-db-pw\n")
    (directory / "signing.key").write_bytes(b"raw-key-bytes")
    return directory


def settings_class(secrets_settings: SecretsSettings | None, resolver: Any = None) -> Any:
    class AppSettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="APP_")

        name: str = "orders"
        db_password: Annotated[SecretStr, FromSecret("file://db_password")]
        signing_key: Annotated[SecretBytes | None, FromSecret("file://signing.key")] = None
        api_token: Annotated[SecretStr, FromSecret("env://BT_API_TOKEN")]

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                SecretsSettingsSource(settings_cls, resolver, settings=secrets_settings),
            )

    return AppSettings


class TestSettingsSource:
    def test_fields_come_from_their_sources(
        self, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Marked fields are read from the files and env sources; repr stays masked."""
        monkeypatch.setenv("BT_API_TOKEN", "env-api-token")
        settings = settings_class(SecretsSettings(dir=root))()
        assert settings.db_password.get_secret_value() == "file-db-pw"
        assert settings.signing_key.get_secret_value() == b"raw-key-bytes"
        assert settings.api_token.get_secret_value() == "env-api-token"
        for shown in (repr(settings), str(settings), str(settings.model_dump())):
            assert "file-db-pw" not in shown
            assert "env-api-token" not in shown

    def test_higher_priority_sources_win_and_are_not_fetched(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A value given as a keyword or in the environment is used; its secret is not read."""
        monkeypatch.setenv("APP_API_TOKEN", "from-app-env")
        # The files directory does not exist: reading db_password would fail.
        cls = settings_class(SecretsSettings(dir=tmp_path / "unmounted"))
        settings = cls(db_password="given", signing_key=None)
        assert settings.db_password.get_secret_value() == "given"
        assert settings.api_token.get_secret_value() == "from-app-env"

    def test_missing_secret_names_every_failure(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Missing secrets stop construction with one error naming each reference."""
        monkeypatch.delenv("BT_API_TOKEN", raising=False)
        with pytest.raises(SecretsStartupError) as info:
            settings_class(SecretsSettings(dir=tmp_path))()
        message = str(info.value)
        assert "file://db_password" in message
        assert "env://BT_API_TOKEN" in message
        assert len(info.value.failures) == 3

    def test_defaults_come_from_the_environment(
        self, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without arguments the sources are those of BARBACANA_SECRETS_*."""
        monkeypatch.setenv("BARBACANA_SECRETS_DIR", str(root))
        monkeypatch.setenv("BT_API_TOKEN", "t")
        settings = settings_class(None)()
        assert settings.db_password.get_secret_value() == "file-db-pw"

    async def test_started_resolver_serves_from_its_cache(
        self, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With a started resolver, values come from its cache (here: after the files vanish)."""
        monkeypatch.setenv("BT_API_TOKEN", "cached-token")
        from barbacana.secrets import EnvSource

        resolver = SecretResolver({"file": FilesSource(root), "env": EnvSource()})
        cls = settings_class(None, resolver)
        assert sorted(resolver.register_settings(cls)) == [
            "env://BT_API_TOKEN",
            "file://db_password",
            "file://signing.key",
        ]
        async with resolver:
            for path in root.iterdir():
                path.unlink()
            monkeypatch.delenv("BT_API_TOKEN")
            settings = cls()  # built inside a running event loop
            assert settings.db_password.get_secret_value() == "file-db-pw"
            assert settings.api_token.get_secret_value() == "cached-token"

    def test_fetch_inside_a_running_loop(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Building settings from async code without a resolver fetches in a helper thread."""
        import asyncio

        monkeypatch.setenv("BT_API_TOKEN", "t")

        async def build() -> Any:
            return settings_class(SecretsSettings(dir=root))()

        assert asyncio.run(build()).db_password.get_secret_value() == "file-db-pw"


class TestMarkers:
    def test_non_secret_types_are_refused(self) -> None:
        """A marked str or int field is refused: validation errors would quote the secret."""

        class Leaky(BaseSettings):
            password: Annotated[str, FromSecret("file://db_password")]

        class Counted(BaseSettings):
            pin: Annotated[int | None, FromSecret("file://pin")] = None

        for cls in (Leaky, Counted):
            with pytest.raises(SecretsConfigurationError, match="must be typed SecretStr"):
                secret_fields(cls)
            with pytest.raises(SecretsConfigurationError):
                SecretsSettingsSource(cls)

    def test_bad_reference_in_marker(self) -> None:
        """A malformed reference fails when the class is defined."""
        with pytest.raises(SecretsConfigurationError):
            FromSecret("db_password")

    def test_aliases_are_respected(self) -> None:
        """The value is returned under the field's alias."""
        from pydantic import Field

        class Aliased(BaseSettings):
            password: Annotated[SecretStr, FromSecret("env://X"), Field(alias="PASSWORD")]

        assert secret_fields(Aliased) == {"password": ("PASSWORD", "env://X")}
