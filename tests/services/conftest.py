"""The reference system in-process: auth and orders on real loopback sockets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from barbacana.cli._admin import bootstrap
from barbacana.ratelimit import LoginGuardSettings, PolicySettings, RateLimitSettings
from barbacana.services._runtime import DataDir
from barbacana.services.auth.app import create_app as create_auth
from barbacana.services.orders.app import create_app as create_orders
from barbacana.settings import ClientSettings, KeySettings, TokenSettings
from tests.conftest import FakeKekSealer, ServerThread, make_settings

ISSUER = "https://issuer.test"

#: Test rate limits: POST /token still limited (100/minute), failure delays short.
TEST_RATELIMIT = RateLimitSettings(
    policies=[
        PolicySettings(name="token", route="/token", methods=["POST"], limits=["100/minute"]),
    ],
    login=LoginGuardSettings(base_delay=0.01, max_delay=0.02),
)


@dataclass
class System:
    database_url: str
    auth: str
    orders: str
    admin_password: str
    data_dir: Path

    def token(
        self, username: str = "admin", password: str | None = None, **form: str
    ) -> dict[str, str]:
        response = httpx.post(
            f"{self.auth}/token",
            data={
                "grant_type": "password",
                "username": username,
                "password": password or self.admin_password,
                **form,
            },
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def add_user(self, username: str, roles: list[str] | None = None) -> str:
        admin = self.token()["access_token"]
        password = f"{username}-password-long"
        response = httpx.post(
            f"{self.auth}/users",
            json={"username": username, "password": password, "roles": roles or ["user"]},
            headers=self.bearer(admin),
        )
        assert response.status_code == 201, response.text
        return password


@pytest.fixture
def system(database_url: str, tmp_path: Path) -> Iterator[System]:
    """auth and orders sharing one database (SQLite or PostgreSQL), as ``up`` runs them."""
    import asyncio

    sealer = FakeKekSealer()
    settings = make_settings(
        tmp_path,
        database_url,
        tokens=TokenSettings(issuer=ISSUER),
        key=KeySettings(publish_delay=timedelta(seconds=1)),
        ratelimit=TEST_RATELIMIT,
    )
    shown = asyncio.run(bootstrap(settings, sealer))
    with ServerThread(create_auth(settings, sealer=sealer)) as auth:
        orders_settings = make_settings(
            tmp_path,
            database_url,
            tokens=TokenSettings(
                issuer=ISSUER,
                identity_url=auth.url,
                jwks_refresh_interval=timedelta(seconds=0.5),
            ),
            client=ClientSettings(
                id="orders", secret_file=DataDir(tmp_path).client_secret("orders")
            ),
            ratelimit=TEST_RATELIMIT,
        )
        with ServerThread(create_orders(orders_settings)) as orders:
            yield System(database_url, auth.url, orders.url, shown["admin_password"], tmp_path)
