"""Invariant 4 for the database password: a rotation never fails a request.

The identity and orders services run against a PostgreSQL that checks
passwords, logged in as one role through ``BARBACANA_DATABASE_CREDENTIALS_REF``.
Under a steady load (log in, refresh, read orders) the secret moves to the
second role; once no session of the first is left, the DBA locks it out and
kills whatever it still had. Not one request of the load fails.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from barbacana.cli._admin import bootstrap
from barbacana.secrets import SecretsSettings
from barbacana.services._runtime import DataDir, open_sealer
from barbacana.services.auth.app import create_app as create_auth
from barbacana.services.orders.app import create_app as create_orders
from barbacana.settings import ClientSettings, KeySettings, TokenSettings
from tests.conftest import ServerThread, make_settings
from tests.services.conftest import TEST_RATELIMIT
from tests.services.test_rotation_under_load import Load
from tests.storage.conftest import AppRoles, ScramCluster
from tests.storage.test_credential_rotation import REF, write_credentials

pytestmark = pytest.mark.slow
ISSUER = "https://issuer.test"


def test_services_keep_answering_through_a_database_password_rotation(
    scram_cluster: ScramCluster, app_roles: AppRoles, tmp_path: Path
) -> None:
    first, second = app_roles.first, app_roles.second
    write_credentials(DataDir(tmp_path).secrets, *first)
    common = {
        "database": {"url": scram_cluster.url(app_roles.database), "credentials_ref": REF},
        "secrets": SecretsSettings(
            sources=[f"file://{DataDir(tmp_path).secrets}"],
            ttl=timedelta(seconds=0.3),
            refresh_interval=timedelta(seconds=0.1),
        ),
        "ratelimit": TEST_RATELIMIT.model_copy(update={"enabled": False}),
    }
    settings = make_settings(
        tmp_path,
        None,
        tokens=TokenSettings(issuer=ISSUER),
        key=KeySettings(publish_delay=timedelta(seconds=1)),
        service_name="auth",
        **common,
    )
    shown = asyncio.run(bootstrap(settings))
    sealer = asyncio.run(open_sealer(settings))
    with ServerThread(create_auth(settings, sealer=sealer)) as auth:
        orders_settings = make_settings(
            tmp_path,
            None,
            tokens=TokenSettings(issuer=ISSUER, identity_url=auth.url),
            client=ClientSettings(
                id="orders", secret_file=DataDir(tmp_path).client_secret("orders")
            ),
            service_name="orders",
            **common,
        )
        with ServerThread(create_orders(orders_settings)) as orders:
            load = Load(auth.url, orders.url, shown["admin_password"])
            load.start()
            try:
                time.sleep(0.5)
                assert scram_cluster.sessions(app_roles.database)  # logged in as the first
                assert set(scram_cluster.sessions(app_roles.database)) == {first[0]}
                write_credentials(DataDir(tmp_path).secrets, *second)
                for _ in range(300):
                    if set(scram_cluster.sessions(app_roles.database)) == {second[0]}:
                        break
                    time.sleep(0.1)
                else:
                    pytest.fail(f"sessions left: {scram_cluster.sessions(app_roles.database)}")
                requests_at_switch = load.requests
                scram_cluster.execute(
                    f'ALTER ROLE "{first[0]}" NOLOGIN',
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE usename = '{first[0]}'",
                )
                time.sleep(1.5)
            finally:
                load.stop.set()
                load.join(timeout=30)
            assert load.failures == [], load.failures[:5]
            assert load.requests > requests_at_switch + 10
            assert set(scram_cluster.sessions(app_roles.database)) == {second[0]}
            # Both services still answer, on the new login only.
            token = httpx.post(
                f"{auth.url}/token",
                data={
                    "grant_type": "password",
                    "username": "admin",
                    "password": shown["admin_password"],
                },
            )
            assert token.status_code == 200
            listed = httpx.get(
                f"{orders.url}/orders",
                headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            )
            assert listed.status_code == 200
            # Each service recorded the rotation on the trail, without the password.
            admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
            page = httpx.get(
                f"{auth.url}/audit/events",
                params={"action": "secret.rotated", "limit": 50},
                headers=admin,
            )
            assert page.status_code == 200, page.text
            rotated = [
                event
                for event in page.json()["events"]
                if event["details"].get("kind") == "database_credentials"
            ]
            assert {event["service"] for event in rotated} == {"auth", "orders"}
            assert all(event["details"]["ref"] == REF for event in rotated)
            assert second[1] not in page.text
            assert first[1] not in page.text
