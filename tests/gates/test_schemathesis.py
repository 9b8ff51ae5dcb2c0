"""Prototype."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from barbacana.cli._admin import bootstrap
from barbacana.ratelimit import LoginGuardSettings, PolicySettings, RateLimitSettings
from barbacana.services._runtime import DataDir
from barbacana.services.auth.app import create_app as create_auth
from barbacana.services.chat.app import create_app as create_chat
from barbacana.services.orders.app import create_app as create_orders
from barbacana.settings import ClientSettings, KeySettings, TokenSettings
from tests.conftest import FakeKekSealer, ServerThread, make_settings

pytestmark = pytest.mark.slow

ISSUER = "https://issuer.test"
GATE_RATELIMIT = RateLimitSettings(
    policies=[PolicySettings(name="token", route="/token", methods=["POST"], limits=["100000/minute"])],
    global_policy=PolicySettings(name="global", limits=["100000/minute"]),
    login=LoginGuardSettings(base_delay=0.01, max_delay=0.02),
)


@dataclass(frozen=True)
class Gate:
    auth: str
    orders: str
    chat: str
    token: str


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    tmp = tmp_path_factory.mktemp("gate")
    url = f"sqlite+aiosqlite:///{tmp / 'barbacana.db'}"
    sealer = FakeKekSealer()
    settings = make_settings(tmp, url, tokens=TokenSettings(issuer=ISSUER),
        key=KeySettings(publish_delay=timedelta(seconds=1)), ratelimit=GATE_RATELIMIT)
    shown = asyncio.run(bootstrap(settings, sealer))
    with ServerThread(create_auth(settings, sealer=sealer)) as auth:
        def client(name: str):
            return make_settings(tmp, url, tokens=TokenSettings(issuer=ISSUER, identity_url=auth.url),
                client=ClientSettings(id=name, secret_file=DataDir(tmp).client_secret(name)), ratelimit=GATE_RATELIMIT)
        with ServerThread(create_orders(client("orders"))) as orders, ServerThread(create_chat(client("chat"))) as chat:
            r = httpx.post(f"{auth.url}/token", data={"grant_type": "password", "username": "admin", "password": shown["admin_password"]})
            assert r.status_code == 200, r.text
            yield Gate(auth.url, orders.url, chat.url, r.json()["access_token"])


def load(base: str, token: str) -> Any:
    config = SchemathesisConfig.from_dict({
        "seed": 20240501,
        "headers": {"Authorization": f"Bearer {token}"},
        "generation": {"max-examples": 20, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
    })
    return schemathesis.openapi.from_url(f"{base}/openapi.json", config=config)


@pytest.fixture(scope="module")
def auth_schema(gate: Gate) -> Any:
    return load(gate.auth, gate.token)


@pytest.fixture(scope="module")
def orders_schema(gate: Gate) -> Any:
    return load(gate.orders, gate.token)


@pytest.fixture(scope="module")
def chat_schema(gate: Gate) -> Any:
    return load(gate.chat, gate.token)


auth = schemathesis.pytest.from_fixture("auth_schema").exclude(path="/logout").exclude(path="/keys/rotate").exclude(path_regex=r"/disable$")
orders = schemathesis.pytest.from_fixture("orders_schema")
chat = schemathesis.pytest.from_fixture("chat_schema")


@auth.parametrize()
def test_auth(case: Any) -> None:
    case.call_and_validate()


@orders.parametrize()
def test_orders(case: Any) -> None:
    case.call_and_validate()


@chat.parametrize()
def test_chat(case: Any) -> None:
    case.call_and_validate()
