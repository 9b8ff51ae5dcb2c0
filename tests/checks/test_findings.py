"""Every finding id: a configuration that produces it, and the references that do not.

The references are the data directory ``barbacana up`` prepares (development
profile), and the same directory hardened for production. Each case changes
one thing the way an operator would: an environment variable, a file mode, a
clock, a running server.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from barbacana.checks import CATALOGUE, CheckContext, Message, default_registry, gather
from barbacana.cli.check import collect
from barbacana.settings import Settings, WebSettings
from barbacana.transport import Pki
from barbacana.web import secure
from tests.checks.conftest import BASE_ENV, References, reference_settings, settings_from_env
from tests.conftest import ServerThread, free_port

DAY = 86_400.0


@dataclass
class Harness:
    """What a case may use: the references, a scratch directory, the environment."""

    refs: References
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    copy_of: Callable[[Path], Path]

    def context(
        self, root: Path | None = None, *, env: dict[str, str] | None = None, **facts: Any
    ) -> CheckContext:
        """Settings from the environment (as the CLI builds them), without I/O."""
        extra = env or {}
        for name, value in extra.items():
            self.monkeypatch.setenv(name, value)
        settings = reference_settings(root or self.refs.development)
        now = facts.pop("now", time.time())
        return CheckContext(settings=settings, now=now, environ={**BASE_ENV, **extra}, **facts)

    def gathered(
        self, root: Path | None = None, *, env: dict[str, str] | None = None, **options: Any
    ) -> CheckContext:
        """Settings from the environment plus the database and, with ``url``, a probe."""
        extra = env or {}
        for name, value in extra.items():
            self.monkeypatch.setenv(name, value)
        settings = reference_settings(root or self.refs.development)
        return asyncio.run(gather(settings, environ={**BASE_ENV, **extra}, **options))


def run(context: CheckContext) -> list[Message]:
    return default_registry().run(context)


def secured_app(**web: Any) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    return secure(app, Settings(web=WebSettings(**web)))


@contextmanager
def https_server(refs: References, app: FastAPI) -> Iterator[ServerThread]:
    pki = Pki(refs.development / "pki")
    with ServerThread(
        app,
        ssl_certfile=str(pki.cert_file("auth")),
        ssl_keyfile=str(pki.key_file("auth")),
        server_header=False,
    ) as server:
        yield server


PRODUCTION = {"BARBACANA_PROFILE": "production"}

Case = Callable[[Harness], list[Message]]
CASES: dict[str, Case] = {}


def case(finding_id: str) -> Callable[[Case], Case]:
    def add(function: Case) -> Case:
        assert finding_id not in CASES, finding_id
        CASES[finding_id] = function
        return function

    return add


# General ---------------------------------------------------------------------------------


@case("BRB-E000")
def _(h: Harness) -> list[Message]:
    h.monkeypatch.setenv("BARBACANA_TOKENS_ALGORITHM", "HS256")
    return collect(data_dir=h.refs.development, url=None, ca=None, plain_http=False).messages


@case("BRB-I099")
def _(h: Harness) -> list[Message]:
    empty = h.tmp_path / "empty"
    empty.mkdir(mode=0o700)
    return run(h.gathered(empty))


# Tokens ----------------------------------------------------------------------------------


@case("BRB-E001")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"JWT_ALGORITHM": "HS256"}))


@case("BRB-E002")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_JWT_SECRET": "supersecret"}))


@case("BRB-W003")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"JWT_SECRET": secrets.token_urlsafe(48)}))


@case("BRB-W004")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_TOKENS_ACCESS_TTL": "PT2H"}))


@case("BRB-W005")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_TOKENS_REFRESH_TTL": "P60D"}))


@case("BRB-E006")
def _(h: Harness) -> list[Message]:
    return run(
        h.context(
            env={
                "BARBACANA_KEY_PUBLISH_DELAY": "PT10S",
                "BARBACANA_TOKENS_JWKS_REFRESH_INTERVAL": "PT30S",
            }
        )
    )


@case("BRB-W007")
def _(h: Harness) -> list[Message]:
    later = time.time() + 31 * DAY
    return run(h.gathered(clock=lambda: later))


@case("BRB-E008")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_TOKENS_IDENTITY_URL": "http://auth.internal:8000"}))


# Transport -------------------------------------------------------------------------------


@case("BRB-E010")
def _(h: Harness) -> list[Message]:
    return run(h.context(plain_http=True))


@case("BRB-W011")
def _(h: Harness) -> list[Message]:
    return run(
        h.context(
            env={"BARBACANA_PLAIN_HTTP": "1", "BARBACANA_WEB_TRUSTED_PROXIES": '["10.0.0.5"]'}
        )
    )


@case("BRB-W012")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_WEB_HSTS_MAX_AGE": "0"}))


@case("BRB-W013")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_WEB_HSTS_MAX_AGE": "86400"}))


@case("BRB-E014")
def _(h: Harness) -> list[Message]:
    # Service certificates live 7 days.
    return run(h.context(now=time.time() + 8 * DAY))


@case("BRB-W015")
def _(h: Harness) -> list[Message]:
    return run(h.context(now=time.time() + 6 * DAY))


@case("BRB-W016")
def _(h: Harness) -> list[Message]:
    # The development reference's CA key has no passphrase.
    return run(h.context(env=PRODUCTION | {"BARBACANA_WEB_DOCS": "false"}))


# Web -------------------------------------------------------------------------------------


@case("BRB-W020")
def _(h: Harness) -> list[Message]:
    return run(h.context(h.refs.production, env=PRODUCTION))


@case("BRB-E021")
def _(h: Harness) -> list[Message]:
    return run(h.context(env=PRODUCTION | {"BARBACANA_DEBUG": "true"}))


@case("BRB-E022")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_WEB_TRUSTED_PROXIES": '["0.0.0.0/0"]'}))


@case("BRB-W023")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_WEB_TRUSTED_PROXIES": '["8.8.0.0/16"]'}))


@case("BRB-E024")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_WEB_TRUSTED_PROXIES": '["10.0.0.1/24"]'}))


# CORS ------------------------------------------------------------------------------------


@case("BRB-E030")
def _(h: Harness) -> list[Message]:
    return run(
        h.context(env={"BARBACANA_CORS_ORIGINS": '["*"]', "BARBACANA_CORS_ALLOW_CREDENTIALS": "1"})
    )


@case("BRB-W031")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_CORS_ORIGINS": '["*"]'}))


@case("BRB-E032")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_CORS_ORIGINS": '["null"]'}))


@case("BRB-E033")
def _(h: Harness) -> list[Message]:
    env = PRODUCTION | {
        "BARBACANA_CORS_ORIGINS": '["https://app.example.com", "http://old.example.com"]',
        "BARBACANA_CORS_ALLOW_CREDENTIALS": "true",
    }
    return run(h.context(env=env))


@case("BRB-W034")
def _(h: Harness) -> list[Message]:
    origins = [f"https://app{n}.example.com" for n in range(11)]
    env = {
        "BARBACANA_CORS_ORIGINS": json.dumps(origins),
        "BARBACANA_CORS_ALLOW_CREDENTIALS": "true",
    }
    return run(h.context(env=env))


# Rate limits -----------------------------------------------------------------------------


@case("BRB-W040")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_RATELIMIT_ENABLED": "false"}))


@case("BRB-W041")
def _(h: Harness) -> list[Message]:
    # Only reads are limited: POST /token falls through to the global policy.
    policies = [{"name": "reads", "methods": ["GET"], "limits": ["100/minute"]}]
    return run(h.context(env={"BARBACANA_RATELIMIT_POLICIES": json.dumps(policies)}))


@case("BRB-E042")
def _(h: Harness) -> list[Message]:
    policies = [
        {
            "name": "token",
            "route": "/token",
            "methods": ["POST"],
            "limits": ["100/minute"],
            "cost": 20,
        }
    ]
    env = {
        "BARBACANA_RATELIMIT_POLICIES": json.dumps(policies),
        "BARBACANA_RATELIMIT_GLOBAL_POLICY": json.dumps(
            {"name": "global", "limits": ["10/minute"]}
        ),
    }
    return run(h.context(env=env))


@case("BRB-W043")
def _(h: Harness) -> list[Message]:
    env = PRODUCTION | {
        "BARBACANA_RATELIMIT_STORE_URL": "redis://127.0.0.1:6379/0",
        "BARBACANA_RATELIMIT_FAILURE_MODE": "open",
    }
    return run(h.context(env=env))


# Audit -----------------------------------------------------------------------------------


@case("BRB-E050")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_AUDIT_ENABLED": "false"}))


@case("BRB-W051")
def _(h: Harness) -> list[Message]:
    return run(h.context(env={"BARBACANA_AUDIT_ON_FAILURE": "continue"}))


# Secrets ---------------------------------------------------------------------------------


@case("BRB-W060")
def _(h: Harness) -> list[Message]:
    env = PRODUCTION | {"BARBACANA_DATABASE_URL": "postgresql://app:hunter2@db.internal/app"}
    return run(h.context(env=env))


@case("BRB-W061")
def _(h: Harness) -> list[Message]:
    # The production reference, but with the KEK left at its default place.
    return run(h.context(h.refs.production, env=PRODUCTION | {"BARBACANA_WEB_DOCS": "false"}))


# Files -----------------------------------------------------------------------------------


@case("BRB-E070")
def _(h: Harness) -> list[Message]:
    root = h.copy_of(h.refs.development)
    (root / "secrets" / "kek").chmod(0o644)
    return run(h.context(root))


@case("BRB-W071")
def _(h: Harness) -> list[Message]:
    root = h.copy_of(h.refs.development)
    root.chmod(0o755)
    return run(h.context(root))


# Outbound --------------------------------------------------------------------------------

_TEST_ONLY = {
    "BARBACANA_OUTBOUND_TEST_ONLY_ALLOWED_CIDRS": '["127.0.0.0/8"]',
    "BARBACANA_OUTBOUND_TEST_ONLY_ALLOWED_PORTS": "[8080]",
}


@case("BRB-E080")
def _(h: Harness) -> list[Message]:
    return run(h.context(env=PRODUCTION | _TEST_ONLY))


@case("BRB-W081")
def _(h: Harness) -> list[Message]:
    return run(h.context(env=_TEST_ONLY))


@case("BRB-W082")
def _(h: Harness) -> list[Message]:
    return run(h.context(env=PRODUCTION | {"BARBACANA_OUTBOUND_ALLOW_HTTP": "true"}))


# A running service -----------------------------------------------------------------------


@case("BRB-W090")
def _(h: Harness) -> list[Message]:
    with https_server(h.refs, secured_app(hsts_max_age=0)) as server:
        return run(h.gathered(url=server.url, ca_file=h.refs.development / "pki" / "ca.pem"))


@case("BRB-W091")
def _(h: Harness) -> list[Message]:
    with https_server(h.refs, secured_app(hsts_max_age=600)) as server:
        return run(h.gathered(url=server.url, ca_file=h.refs.development / "pki" / "ca.pem"))


@case("BRB-W092")
def _(h: Harness) -> list[Message]:
    with ServerThread(secured_app(docs=True), server_header=False) as server:
        env = PRODUCTION | {"BARBACANA_WEB_DOCS": "false"}
        return run(h.gathered(h.refs.production, env=env, url=server.url))


@case("BRB-W093")
def _(h: Harness) -> list[Message]:
    # uvicorn's default: "server: uvicorn".
    with ServerThread(secured_app()) as server:
        return run(h.gathered(url=server.url))


@case("BRB-W094")
def _(h: Harness) -> list[Message]:
    bare = FastAPI()

    @bare.get("/")
    async def root() -> dict[str, str]:
        return {}

    with ServerThread(bare, server_header=False) as server:
        return run(h.gathered(url=server.url))


@case("BRB-E095")
def _(h: Harness) -> list[Message]:
    return run(h.gathered(url=f"https://127.0.0.1:{free_port()}"))


@case("BRB-E096")
def _(h: Harness) -> list[Message]:
    # A data directory without the dev CA, and no --ca: the certificate is unknown.
    elsewhere = h.tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    with https_server(h.refs, secured_app()) as server:
        return run(h.gathered(elsewhere, url=server.url))


# Tests -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_messages(references: References) -> dict[str, list[Message]]:
    """What the development and production references report (nothing, they are clean)."""
    hardened = PRODUCTION | {
        "BARBACANA_WEB_DOCS": "false",
        "BARBACANA_SECRETS_DIR": str(references.mounted_secrets),
    }
    development = asyncio.run(
        gather(settings_from_env(references.development), environ=dict(BASE_ENV))
    )
    production = asyncio.run(
        gather(settings_from_env(references.production, hardened), environ=BASE_ENV | hardened)
    )
    registry = default_registry()
    return {"development": registry.run(development), "production": registry.run(production)}


class TestReferences:
    def test_development_reference_is_clean(
        self, reference_messages: dict[str, list[Message]]
    ) -> None:
        """What `barbacana up` prepares produces no finding at all (and so no error)."""
        assert reference_messages["development"] == []

    def test_production_reference_is_clean(
        self, reference_messages: dict[str, list[Message]]
    ) -> None:
        """Hardened for production (docs off, CA key encrypted, KEK mounted): no finding."""
        assert reference_messages["production"] == []

    def test_every_finding_has_a_failing_case(self) -> None:
        """The catalogue and the cases below list the same ids."""
        assert set(CASES) == set(CATALOGUE)


@pytest.mark.parametrize("finding_id", sorted(CATALOGUE))
def test_finding(
    finding_id: str,
    references: References,
    reference_messages: dict[str, list[Message]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    copy_of: Callable[[Path], Path],
) -> None:
    """The case's configuration produces the id; neither reference does."""
    harness = Harness(references, tmp_path, monkeypatch, copy_of)
    messages = CASES[finding_id](harness)
    found = [m for m in messages if m.id == finding_id]
    assert found, [m.id for m in messages]
    for message in found:
        assert message.severity == CATALOGUE[finding_id].severity
        assert message.hint
    for name, clean in reference_messages.items():
        assert finding_id not in {m.id for m in clean}, name
