"""Source URLs, the scheme table, settings, references and lazy optional dependencies."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from barbacana.errors import ConfigurationError
from barbacana.secrets import (
    SCHEMES,
    EnvSource,
    FilesSource,
    SecretRef,
    SecretResolver,
    SecretsConfigurationError,
    SecretsSettings,
    source_from_url,
    sources_from_settings,
)
from barbacana.secrets.aws import AwsSecretsManagerSource
from barbacana.secrets.vault import VaultAppRoleAuth, VaultSource, VaultTokenAuth


class TestSchemeTable:
    def test_each_scheme_builds_its_class(self, tmp_path: Path) -> None:
        """env, file, vault, vault+http and aws URLs pick their classes."""
        settings = SecretsSettings(vault_token=SecretStr("t"), aws_region="eu-west-1")
        assert isinstance(source_from_url("env://", settings), EnvSource)
        files = source_from_url(tmp_path.as_uri(), settings)
        assert isinstance(files, FilesSource)
        assert files.directory == tmp_path
        vault = source_from_url("vault+http://127.0.0.1:8200", settings)
        assert isinstance(vault, VaultSource)
        assert vault.address == "http://127.0.0.1:8200"
        secure = source_from_url("vault://vault.internal:8200", settings)
        assert isinstance(secure, VaultSource)
        assert secure.address == "https://vault.internal:8200"
        aws = source_from_url("aws://?endpoint_url=http://127.0.0.1:1", settings)
        assert isinstance(aws, AwsSecretsManagerSource)
        assert (aws.region, aws.endpoint_url) == ("eu-west-1", "http://127.0.0.1:1")
        assert set(SCHEMES) == {"env", "file", "vault", "vault+http", "vault+https", "aws"}

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("gcp://project", "unknown secret source scheme"),
            ("not a url", "not a secret source URL"),
            ("vault+http://user:pw@127.0.0.1:8200", "must not carry credentials"),
            ("file:///run/secrets#x", "fragment"),
            ("env://?colour=blue", "unknown option"),
            ("env://?prefix=A&prefix=B", "more than once"),
            ("file://", "needs a directory"),
            ("vault+http://127.0.0.1:8200/secret/data/x", "names a server only"),
            ("aws://eu-west-1", "options only"),
            ("env://?name=Bad Name", "source name"),
        ],
    )
    def test_bad_urls(self, url: str, message: str) -> None:
        """Bad source URLs are configuration errors that say what is wrong."""
        with pytest.raises(SecretsConfigurationError, match=message) as info:
            source_from_url(url, SecretsSettings(vault_token=SecretStr("t")))
        assert isinstance(info.value, ConfigurationError)

    @pytest.mark.parametrize(
        "url",
        [
            "vault+http://admin:HUNTER2-PW@127.0.0.1:notaport",
            "vault+http://admin:HUNTER2-PW@127.0.0.1:8200",
            "aws://?region=x&region=HUNTER2-PW",
            "env://#HUNTER2-PW",
            "HUNTER2-PW",
        ],
    )
    def test_bad_urls_are_not_echoed_whole(self, url: str) -> None:
        """A credential typed into a source URL never appears in the error."""
        with pytest.raises(SecretsConfigurationError) as info:
            source_from_url(url)
        assert "HUNTER2" not in str(info.value)

    def test_a_value_pasted_as_a_reference_is_not_echoed(self) -> None:
        """BARBACANA_SECRETS_KEK_REF set to the key itself: the error does not show it."""
        with pytest.raises(SecretsConfigurationError) as info:
            SecretRef.parse("q9bG7cVw0kP3m1Jx8Yt2Lr5Ns6Ua4Hd0Ze7Wf1Xo3Ci")
        assert "q9bG7cVw" not in str(info.value)

    def test_name_option_and_duplicates(self, tmp_path: Path) -> None:
        """?name= renames a source; two sources with one name are refused."""
        (tmp_path / "a").mkdir()
        settings = SecretsSettings(
            sources=["env://", f"{(tmp_path / 'a').as_uri()}?name=app", tmp_path.as_uri()]
        )
        sources = sources_from_settings(settings)
        assert sorted(sources) == ["app", "env", "file"]
        with pytest.raises(SecretsConfigurationError, match="two secret sources"):
            sources_from_settings(SecretsSettings(sources=["env://", "env://.env"]))

    def test_dir_and_default_dir(self, tmp_path: Path) -> None:
        """secrets.dir adds a file source; default_dir does when none is configured."""
        from_dir = sources_from_settings(SecretsSettings(dir=tmp_path))
        assert isinstance(from_dir["file"], FilesSource)
        assert from_dir["file"].directory == tmp_path
        defaulted = sources_from_settings(SecretsSettings(), default_dir=tmp_path / "d")
        assert defaulted["file"].location == str(tmp_path / "d")

    def test_vault_environment_fallbacks(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """vault:// uses VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE and VAULT_CACERT."""
        ca = tmp_path / "ca.pem"
        ca.write_text("placeholder")
        monkeypatch.setenv("VAULT_ADDR", "https://vault.example:8200")
        monkeypatch.setenv("VAULT_TOKEN", "hvs.from-env")
        monkeypatch.setenv("VAULT_NAMESPACE", "team-a")
        monkeypatch.setenv("VAULT_CACERT", str(ca))
        source = source_from_url("vault://")
        assert isinstance(source, VaultSource)
        assert source.address == "https://vault.example:8200"
        assert source.namespace == "team-a"
        assert isinstance(source.auth, VaultTokenAuth)
        assert source._client.adapter._kwargs.get("verify") == str(ca)
        monkeypatch.delenv("VAULT_ADDR")
        with pytest.raises(SecretsConfigurationError, match="VAULT_ADDR"):
            source_from_url("vault://")

    def test_vault_auth_options(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Each auth method says which setting it lacks."""
        monkeypatch.delenv("VAULT_TOKEN", raising=False)
        monkeypatch.delenv("VAULT_ROLE_ID", raising=False)
        with pytest.raises(SecretsConfigurationError, match="VAULT_TOKEN"):
            source_from_url("vault+http://127.0.0.1:1")
        with pytest.raises(SecretsConfigurationError, match="ROLE_ID"):
            source_from_url("vault+http://127.0.0.1:1?auth=approle")
        with pytest.raises(SecretsConfigurationError, match="KUBERNETES_ROLE"):
            source_from_url("vault+http://127.0.0.1:1?auth=kubernetes")
        settings = SecretsSettings(
            vault_auth="approle", vault_role_id="rid", vault_secret_id=SecretStr("sid")
        )
        source = source_from_url("vault+http://127.0.0.1:1", settings)
        assert isinstance(source, VaultSource)
        assert isinstance(source.auth, VaultAppRoleAuth)

    def test_missing_optional_dependency_gives_install_hint(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without hvac or boto3 the error names the extra to install."""
        monkeypatch.setitem(sys.modules, "hvac", None)
        monkeypatch.setitem(sys.modules, "boto3", None)
        with pytest.raises(SecretsConfigurationError, match=r"pip install barbacana\[vault\]"):
            source_from_url("vault+http://127.0.0.1:1", SecretsSettings(vault_token=SecretStr("t")))
        with pytest.raises(SecretsConfigurationError, match=r"pip install barbacana\[aws\]"):
            source_from_url("aws://?region=eu-west-1")


class TestReferencesAndSettings:
    @pytest.mark.parametrize("ref", ["db_password", "://x", "Vault://x", "vault://", "1x://y"])
    def test_bad_references(self, ref: str) -> None:
        """A reference is <source>://<name>."""
        with pytest.raises(SecretsConfigurationError, match="not of the form"):
            SecretRef.parse(ref)

    def test_reference_parts(self) -> None:
        """The name keeps its path, options and field for the source to read."""
        ref = SecretRef.parse("vault://secret/data/app?version=2#db_password")
        assert (ref.source, ref.name) == ("vault", "secret/data/app?version=2#db_password")

    @pytest.mark.parametrize(
        "name",
        [
            "secret",
            "secret/",
            "/app",
            "secret/data/",
            "secret/../x",
            "secret/app?v=1",
            "s/a?version=0",
        ],
    )
    def test_bad_vault_names(self, name: str) -> None:
        """Vault names need a mount and a path; only ?version=N is an option."""
        source = VaultSource("http://127.0.0.1:1", auth=VaultTokenAuth("t"))
        with pytest.raises(SecretsConfigurationError):
            source.validate_name(name)

    def test_unconfigured_source_is_named(self, tmp_path: Path) -> None:
        """Registering a reference to a source that is not configured says how to add it."""
        resolver = SecretResolver({"file": FilesSource(tmp_path)})
        with pytest.raises(SecretsConfigurationError, match="BARBACANA_SECRETS_SOURCES"):
            resolver.register("vault://secret/data/app#x")
        with pytest.raises(SecretsConfigurationError):
            resolver.register("file://../etc/passwd")

    def test_settings_from_environment(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """BARBACANA_SECRETS_<FIELD> variables fill SecretsSettings.from_env()."""
        monkeypatch.setenv("BARBACANA_SECRETS_SOURCES", '["env://", "aws://"]')
        monkeypatch.setenv("BARBACANA_SECRETS_DIR", str(tmp_path))
        monkeypatch.setenv("BARBACANA_SECRETS_TTL", "PT90S")
        monkeypatch.setenv("BARBACANA_SECRETS_VAULT_TOKEN", "hvs.secret-token-value")
        settings = SecretsSettings.from_env()
        assert settings.sources == ["env://", "aws://"]
        assert settings.dir == tmp_path
        assert settings.ttl == timedelta(seconds=90)
        assert "hvs.secret-token-value" not in repr(settings)
        assert settings.kek_ref == "file://kek"

    def test_settings_validation(self) -> None:
        """Times must be positive; unknown fields are refused (frozen, extra=forbid)."""
        with pytest.raises(ValidationError):
            SecretsSettings(ttl=timedelta(0))
        with pytest.raises(ValidationError):
            SecretsSettings(colour="blue")  # type: ignore[call-arg]
        with pytest.raises(ValidationError):
            SecretsSettings(vault_auth="ldap")  # type: ignore[arg-type]
