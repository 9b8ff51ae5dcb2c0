"""The edges of individual rules: what must be flagged, what must not, and what is never shown."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from barbacana.checks import CheckContext, Message, default_registry, deployment_warnings, gather
from barbacana.settings import Settings
from tests.checks.conftest import BASE_ENV, References, settings_from_env
from tests.checks.test_findings import https_server, secured_app

DAY = 86_400.0


def ids(
    root: Path, env: dict[str, str] | None = None, *, now: float | None = None, **facts: object
) -> list[str]:
    extra = env or {}
    settings = settings_from_env(root, extra)
    context = CheckContext(
        settings=settings, now=now or time.time(), environ=BASE_ENV | extra, **facts
    )
    return [m.id for m in default_registry().run(context)]


def rendered(messages: list[Message]) -> str:
    return json.dumps([m.to_dict() for m in messages]) + "".join(map(str, messages))


class TestHmac:
    def test_generic_secret_key_alone_is_not_a_jwt_secret(self, references: References) -> None:
        """SECRET_KEY may belong to anything; it is a JWT secret only next to an HS algorithm."""
        assert ids(references.development, {"SECRET_KEY": "short"}) == []

    def test_textbook_pair_is_flagged(self, references: References) -> None:
        """The chapter's SECRET_KEY + ALGORITHM=HS256 is an HMAC setup with a weak secret."""
        found = ids(references.development, {"SECRET_KEY": "change-me", "ALGORITHM": "HS256"})
        assert {"BRB-E001", "BRB-E002"} <= set(found)

    @pytest.mark.parametrize("value", ["RS256", "Ed25519", "ES256"])
    def test_asymmetric_algorithm_is_fine(self, references: References, value: str) -> None:
        assert ids(references.development, {"JWT_ALGORITHM": value}) == []

    def test_algorithm_lists_are_searched(self, references: References) -> None:
        found = ids(references.development, {"JWT_ALGORITHMS": '["RS256", "HS512"]'})
        assert "BRB-E001" in found

    def test_secret_values_are_never_shown(self, references: References) -> None:
        """Names and sizes are reported; the secrets themselves never are."""
        short, long_ = "hunter2-but-longer", secrets.token_urlsafe(48)
        password = "pg-" + secrets.token_hex(8)
        env = {
            "BARBACANA_PROFILE": "production",
            "JWT_SECRET": short,
            "BARBACANA_JWT_SIGNING_KEY": long_,
            "BARBACANA_KEK": long_,
            "BARBACANA_DATABASE_URL": f"postgresql://app:{password}@db.internal/app",
        }
        settings = settings_from_env(references.development, env)
        context = CheckContext(settings=settings, now=time.time(), environ=BASE_ENV | env)
        messages = default_registry().run(context)
        assert {"BRB-E002", "BRB-W003", "BRB-W060"} <= {m.id for m in messages}
        text = rendered(messages)
        for value in (short, long_, password):
            assert value not in text


class TestUrls:
    def test_loopback_identity_url_in_development_is_fine(self, references: References) -> None:
        """`barbacana up --plain-http` points orders at http://127.0.0.1: fine on one machine."""
        env = {"BARBACANA_TOKENS_IDENTITY_URL": "http://127.0.0.1:8000"}
        assert ids(references.development, env) == []

    def test_loopback_identity_url_in_production_is_flagged(self, references: References) -> None:
        env = {
            "BARBACANA_PROFILE": "production",
            "BARBACANA_TOKENS_IDENTITY_URL": "http://127.0.0.1:8000",
        }
        assert "BRB-E008" in ids(references.development, env)

    def test_plain_public_url_off_machine_is_flagged(self, references: References) -> None:
        assert "BRB-E010" in ids(
            references.development, {"BARBACANA_PUBLIC_URL": "http://api.example.com"}
        )
        assert (
            ids(references.development, {"BARBACANA_PUBLIC_URL": "https://api.example.com"}) == []
        )

    def test_given_http_url_is_flagged_even_on_loopback(self, references: References) -> None:
        """A URL clients use that is http:// is plain HTTP, whatever the host."""
        assert "BRB-E010" in ids(references.development, url="http://127.0.0.1:8000")


class TestProxies:
    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("BARBACANA_WEB_TRUSTED_PROXIES", '["::/0"]'),
            ("BARBACANA_WEB_TRUSTED_PROXIES", '["10.0.0.5", "0.0.0.0/0"]'),
        ],
    )
    def test_everyone_is_flagged(self, references: References, variable: str, value: str) -> None:
        assert "BRB-E022" in ids(references.development, {variable: value})

    def test_mesh_sidecars_from_anyone_are_flagged(self, references: References) -> None:
        """A mesh identity header believed from anyone lets any caller claim any peer."""
        env = {
            "BARBACANA_TRANSPORT": json.dumps(
                {
                    "mesh_identity_header": "x-forwarded-client-cert",
                    "mesh_trusted_sidecars": ["::/0"],
                }
            )
        }
        assert "BRB-E022" in ids(references.development, env)

    @pytest.mark.parametrize("value", ['["10.0.0.0/8"]', '["172.16.0.0/12"]', '["203.0.113.7"]'])
    def test_ordinary_proxy_blocks_are_fine(self, references: References, value: str) -> None:
        assert ids(references.development, {"BARBACANA_WEB_TRUSTED_PROXIES": value}) == []


class TestRateLimit:
    def test_catch_all_post_policy_limits_login(self, references: References) -> None:
        """Any policy matching POST /token for anonymous callers counts, not only a named one."""
        policies = [{"name": "writes", "methods": ["POST"], "limits": ["30/minute"]}]
        env = {"BARBACANA_RATELIMIT_POLICIES": json.dumps(policies)}
        assert ids(references.development, env) == []

    def test_policy_without_anonymous_limits_does_not_count(self, references: References) -> None:
        """A token policy that limits only signed-in tiers leaves password guessing free."""
        policies = [
            {
                "name": "token",
                "route": "/token",
                "methods": ["POST"],
                "tiers": {"user": ["5/minute"]},
            }
        ]
        env = {"BARBACANA_RATELIMIT_POLICIES": json.dumps(policies)}
        assert "BRB-W041" in ids(references.development, env)

    def test_custom_token_route_is_followed(self, references: References) -> None:
        """The route checked is tokens.token_url, not a hard-coded /token."""
        policies = [
            {"name": "token", "route": "/token", "methods": ["POST"], "limits": ["9/minute"]}
        ]
        env = {"BARBACANA_RATELIMIT_POLICIES": json.dumps(policies)}
        assert ids(references.development, env) == []
        moved = env | {"BARBACANA_TOKENS_TOKEN_URL": "https://auth.example.com/oauth/token"}
        assert "BRB-W041" in ids(references.development, moved)

    def test_open_failure_without_shared_store_is_fine(self, references: References) -> None:
        """An in-process store cannot be down: failing open does not matter there."""
        env = {"BARBACANA_PROFILE": "production", "BARBACANA_RATELIMIT_FAILURE_MODE": "open"}
        assert "BRB-W043" not in ids(references.development, env)


class TestFiles:
    def test_audit_key_outside_the_data_directory(
        self, references: References, tmp_path: Path
    ) -> None:
        """A key kept elsewhere is checked by its own mode; its listable folder is not flagged."""
        folder = tmp_path / "etc"
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
        key = folder / "audit-key.pem"
        key.write_text("-----BEGIN PRIVATE KEY-----\n")
        key.chmod(0o600)
        env = {"BARBACANA_AUDIT_KEY_PATH": str(key)}
        assert ids(references.development, env) == []
        key.chmod(0o640)
        assert ids(references.development, env) == ["BRB-E070"]

    def test_group_access_counts(self, references: References, copy_of: Any) -> None:
        """0o077, not only "others": a group that can read a key is a finding too."""
        root = copy_of(references.development)
        (root / "pki" / "auth-key.pem").chmod(0o640)
        (root / "secrets").chmod(0o750)
        assert sorted(ids(root)) == ["BRB-E070", "BRB-W071"]


class TestTime:
    def test_key_just_inside_rotation_interval_is_fine(self, references: References) -> None:
        settings = settings_from_env(references.development)
        later = time.time() + 29 * DAY
        context = asyncio.run(gather(settings, environ=dict(BASE_ENV), clock=lambda: later))
        assert context.signing_keys
        found = {m.id for m in default_registry().run(context)}
        assert "BRB-W007" not in found
        assert "BRB-I099" not in found

    def test_expired_ca_gets_its_own_hint(self, references: References) -> None:
        """The CA is not rotated in place: the hint says to build a new one."""
        settings = settings_from_env(references.development)
        context = CheckContext(settings=settings, now=time.time() + 4000 * DAY)
        expired = [m for m in default_registry().run(context) if m.id == "BRB-E014"]
        ca = [m for m in expired if m.target and m.target.endswith("ca.pem")]
        assert ca
        assert "pki init" in ca[0].hint
        assert len(expired) == 3  # the CA, auth and orders


class TestLive:
    def test_secured_https_service_is_clean(self, references: References) -> None:
        """secure(app) over TLS with the dev CA: HSTS, headers, no Server header, no finding."""
        settings = settings_from_env(references.development)
        with https_server(references, secured_app()) as server:
            context = asyncio.run(
                gather(
                    settings,
                    environ=dict(BASE_ENV),
                    url=server.url,
                    ca_file=references.development / "pki" / "ca.pem",
                )
            )
        assert context.probe is not None
        assert context.probe.headers["strict-transport-security"].startswith("max-age=63072000")
        assert default_registry().run(context) == []

    def test_docs_in_development_are_not_flagged(self, references: References) -> None:
        from tests.conftest import ServerThread

        settings = settings_from_env(references.development)
        with ServerThread(secured_app(docs=True), server_header=False) as server:
            context = asyncio.run(gather(settings, environ=dict(BASE_ENV), url=server.url))
        assert context.probe is not None
        assert context.probe.exposed_docs == ("/docs", "/openapi.json")
        assert [m.id for m in default_registry().run(context)] == ["BRB-E010"]


class TestDeploymentWarnings:
    def test_reference_has_none(self, references: References) -> None:
        """What `barbacana up` prints at start for its own data directory: nothing."""
        assert deployment_warnings(settings_from_env(references.development), environ={}) == []

    def test_plain_http_is_an_error(self, references: References) -> None:
        found = deployment_warnings(
            settings_from_env(references.development), plain_http=True, environ={}
        )
        assert [m.id for m in found] == ["BRB-E010"]

    def test_information_is_left_out(self, tmp_path: Path) -> None:
        """A first start (no database yet) is not worth a line."""
        assert deployment_warnings(Settings(data_dir=tmp_path), environ={}) == []
