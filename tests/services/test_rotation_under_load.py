"""Invariant 4: key rotation never fails a valid request.

A steady load logs in, refreshes and calls the orders service while the
signing key is rotated five times (publish, wait, promote) and the KEK once;
not one request of the load fails.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from barbacana.cli._admin import bootstrap
from barbacana.services._runtime import DataDir, open_sealer
from barbacana.services.auth.app import create_app as create_auth
from barbacana.services.orders.app import create_app as create_orders
from barbacana.settings import ClientSettings, KeySettings, TokenSettings
from tests.conftest import ServerThread, make_settings
from tests.services.conftest import TEST_RATELIMIT

pytestmark = pytest.mark.slow
ISSUER = "https://issuer.test"


class Load(threading.Thread):
    """Logs in, refreshes and reads orders in a loop; records every failure."""

    def __init__(self, auth: str, orders: str, password: str) -> None:
        super().__init__(daemon=True)
        self.auth, self.orders, self.password = auth, orders, password
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.requests = 0

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            tokens: dict[str, str] = {}
            while not self.stop.is_set():
                if not tokens or self.requests % 7 == 0:
                    r = client.post(
                        f"{self.auth}/token",
                        data={
                            "grant_type": "password",
                            "username": "admin",
                            "password": self.password,
                        },
                    )
                else:
                    r = client.post(
                        f"{self.auth}/token",
                        data={
                            "grant_type": "refresh_token",
                            "refresh_token": tokens["refresh_token"],
                        },
                    )
                self._check(r, "token")
                if r.status_code == 200:
                    tokens = r.json()
                for _ in range(3):
                    r = client.get(
                        f"{self.orders}/orders",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"},
                    )
                    self._check(r, "orders")

    def _check(self, response: httpx.Response, what: str) -> None:
        self.requests += 1
        if response.status_code != 200:
            self.failures.append(f"{what}: {response.status_code} {response.text[:200]}")


def test_rotation_under_load(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        None,
        tokens=TokenSettings(
            issuer=ISSUER, access_ttl=timedelta(seconds=30), leeway=timedelta(seconds=1)
        ),
        key=KeySettings(publish_delay=timedelta(seconds=1)),
        service_name="auth",
        ratelimit=TEST_RATELIMIT.model_copy(update={"enabled": False}),
    )
    shown = asyncio.run(bootstrap(settings))
    sealer = asyncio.run(open_sealer(settings))
    auth_app = create_auth(settings, sealer=sealer, reseal=functools.partial(open_sealer, settings))
    with ServerThread(auth_app) as auth:
        orders_settings = make_settings(
            tmp_path,
            None,
            tokens=TokenSettings(
                issuer=ISSUER, identity_url=auth.url, jwks_refresh_interval=timedelta(seconds=0.3)
            ),
            client=ClientSettings(
                id="orders", secret_file=DataDir(tmp_path).client_secret("orders")
            ),
            ratelimit=TEST_RATELIMIT.model_copy(update={"enabled": False}),
        )
        with ServerThread(create_orders(orders_settings)) as orders:
            load = Load(auth.url, orders.url, shown["admin_password"])

            def admin_token() -> str:
                return str(
                    httpx.post(
                        f"{auth.url}/token",
                        data={
                            "grant_type": "password",
                            "username": "admin",
                            "password": shown["admin_password"],
                        },
                    ).json()["access_token"]
                )

            admin = admin_token()
            first_kid = httpx.get(
                f"{auth.url}/keys", headers={"Authorization": f"Bearer {admin}"}
            ).json()[0]["kid"]
            load.start()
            try:
                for step in range(5):
                    admin = admin_token()
                    publish = httpx.post(
                        f"{auth.url}/keys/rotate", headers={"Authorization": f"Bearer {admin}"}
                    )
                    assert publish.status_code == 200, publish.text
                    time.sleep(1.2)
                    promote = httpx.post(
                        f"{auth.url}/keys/rotate", headers={"Authorization": f"Bearer {admin}"}
                    )
                    assert promote.status_code == 200, promote.text
                    if step == 2:
                        env = {
                            k: v for k, v in os.environ.items() if not k.startswith("BARBACANA_")
                        }
                        rewrap = subprocess.run(
                            [
                                sys.executable,
                                "-m",
                                "barbacana.cli",
                                "keys",
                                "rewrap",
                                "--rotate-kek",
                                "--data-dir",
                                str(tmp_path),
                            ],
                            capture_output=True,
                            text=True,
                            env=env,
                            timeout=60,
                        )
                        assert rewrap.returncode == 0, rewrap.stderr
                    time.sleep(0.5)
            finally:
                load.stop.set()
                load.join(timeout=30)
            assert load.requests > 50
            assert load.failures == [], load.failures[:5]
            admin = admin_token()
            keys = httpx.get(
                f"{auth.url}/keys", headers={"Authorization": f"Bearer {admin}"}
            ).json()
            assert sum(1 for key in keys if key["state"] != "next") >= 6
            assert {key["kid"]: key["state"] for key in keys}[first_kid] in ("retiring", "retired")
