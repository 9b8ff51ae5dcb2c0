"""AWS Secrets Manager through boto3, against a local moto server."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Annotated, Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from barbacana.secrets import (
    FromSecret,
    SecretMalformedError,
    SecretNotFoundError,
    SecretResolver,
    SecretsSettings,
    SecretsSettingsSource,
    SecretsStartupError,
    source_from_url,
)
from barbacana.secrets.aws import AwsSecretsManagerSource

from .conftest import eventually, free_port, start_moto

pytestmark = pytest.mark.usefixtures("aws_env")


def unique(label: str) -> str:
    return f"barbacana-test/{uuid.uuid4().hex[:10]}/{label}"


@pytest.fixture
def source(moto_url: str) -> Any:
    built = AwsSecretsManagerSource(region="eu-west-1", endpoint_url=moto_url)
    yield built
    built.close()


def rotate(sm: Any, name: str, value: str) -> str:
    """Rotate the way a rotation function does: stage AWSPENDING, then move AWSCURRENT."""
    current = sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["VersionId"]
    token = str(uuid.uuid4())
    sm.put_secret_value(
        SecretId=name, ClientRequestToken=token, SecretString=value, VersionStages=["AWSPENDING"]
    )
    sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
    )
    return token


class TestRead:
    async def test_string_and_json_secrets(self, sm_admin: Any, source: Any) -> None:
        """Plain strings come whole; #field picks from JSON; versions are VersionIds."""
        plain = unique("api-key")
        db = unique("db")
        created = sm_admin.create_secret(Name=plain, SecretString="plain-value-1")
        sm_admin.create_secret(
            Name=db, SecretString=json.dumps({"username": "orders", "password": "db-pw-1"})
        )
        value = await source.get(plain)
        assert value.get_secret_value() == "plain-value-1"
        assert value.version == created["VersionId"]
        assert (await source.get(f"{db}#password")).get_secret_value() == "db-pw-1"
        with pytest.raises(SecretNotFoundError, match="fields: password, username"):
            await source.get(f"{db}#pasword")
        with pytest.raises(SecretMalformedError, match="not a JSON object"):
            await source.get(f"{plain}#password")

    async def test_binary_secret(self, sm_admin: Any, source: Any) -> None:
        """A UTF-8 binary secret is read as text; other bytes are refused."""
        text, raw = unique("bin-text"), unique("bin-raw")
        sm_admin.create_secret(Name=text, SecretBinary=b"binary-but-text")
        sm_admin.create_secret(Name=raw, SecretBinary=b"\xff\x00\xfe")
        assert (await source.get(text)).get_secret_value() == "binary-but-text"
        with pytest.raises(SecretMalformedError, match="UTF-8"):
            await source.get(raw)

    async def test_not_found(self, source: Any) -> None:
        """An unknown secret is SecretNotFoundError naming reference and endpoint."""
        name = unique("absent")
        with pytest.raises(SecretNotFoundError) as info:
            await source.get(name)
        assert info.value.secret == f"aws://{name}"
        assert "eu-west-1" in (info.value.source or "")

    async def test_previous_stage(self, sm_admin: Any, source: Any) -> None:
        """?stage=AWSPREVIOUS reads the version before the last rotation."""
        name = unique("staged")
        sm_admin.create_secret(Name=name, SecretString="old-value")
        rotate(sm_admin, name, "new-value")
        assert (await source.get(name)).get_secret_value() == "new-value"
        previous = await source.get(f"{name}?stage=AWSPREVIOUS")
        assert previous.get_secret_value() == "old-value"

    async def test_check(self, source: Any) -> None:
        """check() reaches the endpoint and warns about plain HTTP."""
        health = await source.check()
        assert health.ok
        assert any("plain HTTP" in w for w in health.warnings)


class TestRotation:
    async def test_rotation_is_picked_up_without_restart(
        self, sm_admin: Any, moto_url: str
    ) -> None:
        """Moving AWSCURRENT to a new version reaches the cache, listeners and previous()."""
        name = unique("rotating")
        sm_admin.create_secret(Name=name, SecretString=json.dumps({"password": "v1-pass"}))
        settings = SecretsSettings(
            sources=[f"aws://?region=eu-west-1&endpoint_url={moto_url}"],
            ttl=timedelta(seconds=0.2),
            refresh_interval=timedelta(seconds=0.05),
        )
        ref = f"aws://{name}#password"
        changes: list[tuple[str, str | None]] = []
        resolver = SecretResolver.from_settings(settings)
        resolver.on_change(
            ref,
            lambda new, old: changes.append(
                (new.get_secret_value(), old.get_secret_value() if old else None)
            ),
        )
        async with resolver:
            assert resolver.current(ref).get_secret_value() == "v1-pass"
            first_version = resolver.version(ref)
            new_version = rotate(sm_admin, name, json.dumps({"password": "v2-pass"}))
            assert await eventually(
                lambda: resolver.current(ref).get_secret_value() == "v2-pass", seconds=10
            )
            assert resolver.version(ref) == new_version != first_version
            previous = resolver.previous(ref)
            assert previous is not None
            assert previous.get_secret_value() == "v1-pass"
            assert await eventually(lambda: changes == [("v2-pass", "v1-pass")], seconds=2)


class TestOutages:
    async def test_down_at_start_names_secret_and_source(self) -> None:
        """Nothing listening: start-up fails naming the secret and the endpoint."""
        endpoint = f"http://127.0.0.1:{free_port()}"
        resolver = SecretResolver(
            {"aws": AwsSecretsManagerSource(region="eu-west-1", endpoint_url=endpoint)}
        )
        resolver.register("aws://prod/orders/db#password")
        with pytest.raises(SecretsStartupError) as info:
            await resolver.start()
        await resolver.stop()
        message = str(info.value)
        assert "aws://prod/orders/db#password" in message
        assert endpoint in message
        assert "secret_source_unavailable" in message

    @pytest.mark.slow
    async def test_down_at_refresh_keeps_last_good_value(self, aws_env: None) -> None:
        """Stopping the server keeps the cached value; health reports the failed refreshes."""
        import boto3

        server, url = start_moto()
        try:
            admin = boto3.session.Session().client(
                "secretsmanager", region_name="eu-west-1", endpoint_url=url
            )
            admin.create_secret(Name="orders/api", SecretString="last-good")
            admin.close()
            source = AwsSecretsManagerSource(region="eu-west-1", endpoint_url=url, timeout=1)
            resolver = SecretResolver({"aws": source}, ttl=0.1, refresh_interval=0.05)
            resolver.register("aws://orders/api")
            async with resolver:
                assert resolver.current("aws://orders/api").get_secret_value() == "last-good"
                server.stop()
                assert await eventually(
                    lambda: resolver.health()["aws://orders/api"].consecutive_failures >= 2,
                    seconds=15,
                )
                health = resolver.health()["aws://orders/api"]
                assert health.loaded
                assert health.last_error == "secret_source_unavailable"
                assert health.last_success is not None
                assert resolver.current("aws://orders/api").get_secret_value() == "last-good"
                assert not (await resolver.check())["aws"].ok
        finally:
            server.stop()


class TestSettingsSource:
    def test_settings_field_from_aws(self, sm_admin: Any, moto_url: str) -> None:
        """A user's Settings field declared FromSecret('aws://...') is filled transparently."""
        name = unique("settings")
        sm_admin.create_secret(Name=name, SecretString=json.dumps({"token": "tok-from-aws"}))
        secrets_settings = SecretsSettings(
            sources=["aws://"], aws_region="eu-west-1", aws_endpoint_url=moto_url
        )

        class AppSettings(BaseSettings):
            service_token: Annotated[SecretStr, FromSecret(f"aws://{name}#token")]

            @classmethod
            def settings_customise_sources(
                cls, settings_cls: Any, *args: Any, **kwargs: Any
            ) -> Any:
                return (SecretsSettingsSource(settings_cls, settings=secrets_settings),)

        settings = AppSettings()
        assert settings.service_token.get_secret_value() == "tok-from-aws"
        assert "tok-from-aws" not in repr(settings)


def test_source_from_url_uses_settings(moto_url: str) -> None:
    """aws:// takes region and endpoint from settings unless the URL overrides them."""
    source = source_from_url(
        "aws://?region=us-east-2",
        SecretsSettings(aws_region="eu-west-1", aws_endpoint_url=moto_url),
    )
    assert isinstance(source, AwsSecretsManagerSource)
    assert (source.region, source.endpoint_url) == ("us-east-2", moto_url)
