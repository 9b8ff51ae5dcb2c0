"""Invariant 10: secrets never reach logs, error messages, health reports or repr().

One scenario drives every source (files, env, AWS Secrets Manager on moto,
Vault on OpenBao) through loading, rotation, failures and health checks with
DEBUG logging on for every logger (boto3, urllib3 and hvac included), then
scans everything a person or a log pipeline could see for every secret value.
"""

from __future__ import annotations

import json
import logging
import pickle
import secrets
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from barbacana.crypto import KeyEncryptionKey, Sealer
from barbacana.errors import BarbacanaError
from barbacana.secrets import (
    FromSecret,
    SecretResolver,
    SecretsSettings,
    SecretsSettingsSource,
    SecretValue,
)

from .conftest import VaultAdmin


def canary(label: str) -> str:
    return f"CANARY-{label}-{secrets.token_hex(8)}"


class Exposure:
    """Everything that was shown, logged or raised during the scenario."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def see(self, *objects: object) -> None:
        for obj in objects:
            self.texts.append(repr(obj))
            self.texts.append(str(obj))
            if isinstance(obj, BaseException):
                self.texts.append(" ".join(map(str, obj.args)))
                if isinstance(obj, BarbacanaError):
                    self.texts.append(f"{obj.detail} {obj.extra}")
                    for failure in getattr(obj, "failures", ()):
                        self.see(failure)

    def check(self, values: list[str]) -> None:
        blob = "\n".join(self.texts)
        leaked = [value for value in values if value in blob]
        assert not leaked, f"secret values exposed: {len(leaked)} of {len(values)}"


@pytest.mark.slow
@pytest.mark.usefixtures("aws_env")
async def test_no_secret_value_is_ever_shown(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    sm_admin: Any,
    moto_url: str,
    vault_admin: VaultAdmin,
) -> None:
    """Every secret value used below is absent from every repr, message and log line."""
    caplog.set_level(logging.DEBUG)
    values: list[str] = []

    def make(label: str) -> str:
        value = canary(label)
        values.append(value)
        return value

    exposure = Exposure()

    # Arrange one secret (and a malformed twin) in every kind of source.
    root = tmp_path / "run-secrets"
    root.mkdir()
    (root / "db_password").write_text(make("file") + "\n")
    (root / "broken.json").write_text('{"password": "' + make("file-json-broken"))
    monkeypatch.setenv("BT_LEAK_TOKEN", make("env"))
    monkeypatch.setenv("BT_LEAK_NOT_JSON", make("env-not-json"))
    aws_name = f"barbacana-test/{secrets.token_hex(6)}/db"
    with caplog.at_level(logging.WARNING):  # the test's own admin calls log their request bodies
        sm_admin.create_secret(
            Name=aws_name, SecretString=json.dumps({"password": make("aws"), "user": "u"})
        )
    vault_admin.put("leak", {"password": make("vault"), "other": make("vault-other")})
    role_id, secret_id = vault_admin.approle(vault_admin.read_policy(), token_ttl="5m")
    values.append(secret_id)

    host = vault_admin.server.address.split("://", 1)[1]
    scheme = "vault+http" if vault_admin.server.address.startswith("http:") else "vault"
    settings = SecretsSettings(
        sources=["env://", f"{scheme}://{host}", "aws://"],
        dir=root,
        vault_auth="approle",
        vault_role_id=role_id,
        vault_secret_id=SecretStr(secret_id),
        vault_approle_mount=vault_admin.approle_mount,
        vault_cacert=Path(vault_admin.server.ca_file) if vault_admin.server.ca_file else None,
        aws_region="eu-west-1",
        aws_endpoint_url=moto_url,
    )
    refs = [
        "file://db_password",
        "env://BT_LEAK_TOKEN",
        f"aws://{aws_name}#password",
        vault_admin.ref("leak", "password"),
    ]
    resolver = SecretResolver.from_settings(settings)
    for ref in refs:
        resolver.register(ref)

    def noisy_listener(new: SecretStr, old: SecretStr | None) -> None:
        raise RuntimeError(f"listener saw {new.get_secret_value()}")

    resolver.on_change("file://db_password", noisy_listener)
    exposure.see(settings, resolver)

    async with resolver:
        vault = resolver.sources["vault"]
        values.append(vault._client.token)  # the token Vault issued at login
        for ref in refs:
            exposure.see(resolver.current(ref), await resolver.get(ref))
        exposure.see(*resolver.sources.values(), vault.auth)  # type: ignore[attr-defined]

        # Rotations everywhere, then a refresh: listeners, previous values, versions.
        (root / "db_password").write_text(make("file-2") + "\n")
        monkeypatch.setenv("BT_LEAK_TOKEN", make("env-2"))
        with caplog.at_level(logging.WARNING):
            sm_admin.put_secret_value(
                SecretId=aws_name, SecretString=json.dumps({"password": make("aws-2")})
            )
        vault_admin.put("leak", {"password": make("vault-2"), "other": "o"})
        exposure.see(await resolver.refresh())
        for ref in refs:
            exposure.see(resolver.current(ref), resolver.previous(ref), resolver.version(ref))

        # Failures of every kind, with secret material next to what failed.
        bad_refs = [
            "file://broken.json#password",
            "env://BT_LEAK_NOT_JSON#password",
            f"aws://{aws_name}#pasword",
            vault_admin.ref("leak"),  # two fields, none named
            "file://absent",
        ]
        for ref in bad_refs:
            try:
                await resolver.get(ref)
            except BarbacanaError as exc:
                exposure.see(exc)
            else:
                pytest.fail(f"{ref} should not resolve")

        # A source going down at refresh time, then health and probes.
        root.rename(tmp_path / "unmounted")
        exposure.see(await resolver.refresh(), resolver.health(), await resolver.check())
        exposure.see(resolver)
        with pytest.raises(TypeError):
            pickle.dumps(resolver)

    # Start-up failure with a mix of loaded and failing secrets.
    late = SecretResolver.from_settings(settings)
    late.register("env://BT_LEAK_TOKEN")
    late.register("file://db_password")  # directory now unmounted
    try:
        await late.start()
    except BarbacanaError as exc:
        exposure.see(exc)
    else:
        pytest.fail("start-up should fail")
    finally:
        await late.stop()

    # A user's settings class, and the key-encryption key holders.
    (tmp_path / "unmounted").rename(root)

    class AppSettings(BaseSettings):
        db_password: Annotated[SecretStr, FromSecret("file://db_password")]

        @classmethod
        def settings_customise_sources(cls, settings_cls: Any, *args: Any, **kw: Any) -> Any:
            return (SecretsSettingsSource(settings_cls, settings=settings),)

    app_settings = AppSettings()
    kek = KeyEncryptionKey.generate()
    values.append(kek.export().get_secret_value())
    values.append(kek.material().hex())
    exposure.see(app_settings, app_settings.model_dump(), kek, Sealer(kek), SecretValue(values[0]))

    # The scan: object reprs, error texts, every log record, and the process output.
    exposure.texts.extend(record.getMessage() for record in caplog.records)
    exposure.texts.extend(str(record.__dict__) for record in caplog.records)
    out, err = capfd.readouterr()
    exposure.texts.extend([out, err])
    assert any("RuntimeError" in r.getMessage() for r in caplog.records)  # the listener failed
    assert any("botocore" in r.name for r in caplog.records)  # DEBUG logging was really on
    exposure.check(values)
