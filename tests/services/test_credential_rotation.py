"""Rotating client secrets, API keys and signing keys on a running system, as an operator does.

auth and orders run for real (uvicorn on loopback, SQLite or PostgreSQL), the
data directory has a real key-encryption key, and rotations go through the
``barbacana`` command line (its own process) and the admin API. Overlaps are a few seconds long,
so "during" and "after" the window are both reached.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from barbacana.cli._admin import bootstrap, write_secret_file
from barbacana.services._runtime import DataDir, open_sealer
from barbacana.services.auth.app import create_app as create_auth
from barbacana.services.orders.app import create_app as create_orders
from barbacana.settings import ClientSettings, KeySettings, TokenSettings
from tests.conftest import ServerThread, make_settings
from tests.services.conftest import ISSUER, TEST_RATELIMIT

T = TypeVar("T")

#: Long enough for the "during the overlap" checks that follow a rotation at once.
OVERLAP = 4


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()  # type: ignore[no-any-return]


def eventually(check: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


@dataclass
class Deployment:
    database_url: str
    data_dir: Path
    auth: str
    orders: str
    admin_password: str

    def admin(self) -> dict[str, str]:
        response = httpx.post(
            f"{self.auth}/token",
            data={"grant_type": "password", "username": "admin", "password": self.admin_password},
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def cli(self, *args: str) -> Any:
        """Run ``barbacana ARGS --data-dir DIR --json`` in its own process, on this database."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BARBACANA_")}
        env["BARBACANA_DATABASE_URL"] = self.database_url
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "barbacana.cli",
                *args,
                "--data-dir",
                str(self.data_dir),
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def grant(self, client_id: str, secret: str) -> httpx.Response:
        return httpx.post(
            f"{self.auth}/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )

    def introspect(self, secret: str, token: str) -> httpx.Response:
        return httpx.post(f"{self.auth}/introspect", data={"token": token}, auth=("orders", secret))

    def api_key(self, headers: dict[str, str]) -> dict[str, Any]:
        created = httpx.post(
            f"{self.auth}/apikeys",
            json={"name": "nightly-export", "scopes": ["orders:read"]},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        return created.json()  # type: ignore[no-any-return]

    def orders_with_key(self, key: str) -> httpx.Response:
        return httpx.get(f"{self.orders}/orders", headers={"X-API-Key": key})

    def audit(self, headers: dict[str, str], **query: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 500, **query}
        while True:
            page = httpx.get(f"{self.auth}/audit/events", params=params, headers=headers)
            assert page.status_code == 200, page.text
            events += page.json()["events"]
            if page.json()["next"] is None:
                return events
            params["after"] = page.json()["next"]


@pytest.fixture
def deployment(database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """auth and orders as ``barbacana up`` runs them: the data directory's own KEK and secrets."""
    settings = make_settings(
        tmp_path,
        database_url,
        tokens=TokenSettings(issuer=ISSUER),
        key=KeySettings(publish_delay=timedelta(seconds=1)),
        ratelimit=TEST_RATELIMIT,
    )
    shown = asyncio.run(bootstrap(settings))
    with ServerThread(create_auth(settings, sealer=asyncio.run(open_sealer(settings)))) as auth:
        orders_settings = make_settings(
            tmp_path,
            database_url,
            tokens=TokenSettings(
                issuer=ISSUER, identity_url=auth.url, jwks_refresh_interval=timedelta(seconds=0.5)
            ),
            client=ClientSettings(
                id="orders", secret_file=DataDir(tmp_path).client_secret("orders")
            ),
            ratelimit=TEST_RATELIMIT,
        )
        with ServerThread(create_orders(orders_settings)) as orders:
            yield Deployment(database_url, tmp_path, auth.url, orders.url, shown["admin_password"])


class TestClientSecretRotation:
    def test_cli_rotation_reaches_the_running_service_without_a_restart(
        self, deployment: Deployment
    ) -> None:
        """Both secrets work during the overlap; afterwards the old one is refused, and orders,
        never restarted, keeps introspecting API keys and following revocations."""
        secret_file = DataDir(deployment.data_dir).client_secret("orders")
        old = secret_file.read_text().strip()
        admin = deployment.admin()
        assert deployment.orders_with_key(deployment.api_key(admin)["key"]).status_code == 200

        [row] = deployment.cli("clients", "rotate-secret", "orders", "--overlap", f"{OVERLAP}s")
        new = secret_file.read_text().strip()
        assert new != old and row["secret_file"] == str(secret_file)
        assert "client_secret" not in row  # written to the file, not printed

        # During the overlap: both secrets, for tokens and for the /internal and
        # /introspect endpoints the running orders service calls.
        for secret in (old, new):
            assert deployment.grant("orders", secret).status_code == 200
            assert deployment.introspect(secret, "nothing").json() == {"active": False}
            feed = httpx.get(f"{deployment.auth}/internal/revocations", auth=("orders", secret))
            assert feed.status_code == 200
        key = deployment.api_key(admin)["key"]
        assert deployment.orders_with_key(key).status_code == 200

        # Across the end of the window, orders never fails a request (its API-key
        # answers are cached for 1 s, so it introspects about once a second).
        def old_refused() -> bool:
            assert deployment.orders_with_key(key).status_code == 200
            return deployment.grant("orders", old).status_code == 401

        eventually(old_refused, "the old secret refused after the overlap")
        assert problem(deployment.grant("orders", old), 401)["error"] == "invalid_client"
        problem(deployment.introspect(old, "nothing"), 401)
        problem(httpx.get(f"{deployment.auth}/internal/revocations", auth=("orders", old)), 401)
        assert deployment.grant("orders", new).status_code == 200

        # A key orders has never seen is introspected now, with the new secret.
        fresh = deployment.api_key(admin)["key"]
        assert deployment.orders_with_key(fresh).status_code == 200
        assert httpx.get(f"{deployment.orders}/ready").status_code == 200
        # The revocation feed is still followed: a logout reaches orders.
        login = httpx.post(
            f"{deployment.auth}/token",
            data={
                "grant_type": "password",
                "username": "admin",
                "password": deployment.admin_password,
            },
        ).json()["access_token"]
        bearer = {"Authorization": f"Bearer {login}"}
        assert httpx.get(f"{deployment.orders}/orders", headers=bearer).status_code == 200
        assert httpx.post(f"{deployment.auth}/logout", headers=bearer).status_code == 204
        eventually(
            lambda: httpx.get(f"{deployment.orders}/orders", headers=bearer).status_code == 401,
            "orders refuses the logged-out token",
        )

        [event] = [
            e
            for e in deployment.audit(admin, action="secret.rotated")
            if e["resource"] == "client:orders"
        ]
        assert event["actor"]["type"] == "operator" and event["service"] == "cli"
        assert event["details"]["kind"] == "client_secret"
        trail = json.dumps(deployment.audit(admin))
        assert old not in trail and new not in trail

    def test_admin_api_rotation(self, deployment: Deployment) -> None:
        """Over HTTP the new secret is returned once; a second rotation inside the overlap is
        refused unless forced; bad input is a 4xx naming the field."""
        admin = deployment.admin()
        listed = httpx.get(f"{deployment.auth}/clients", headers=admin)
        assert {c["client_id"] for c in listed.json()} == {"orders", "chat"}
        old = DataDir(deployment.data_dir).client_secret("chat").read_text().strip()
        answer = httpx.post(
            f"{deployment.auth}/clients/chat/rotate-secret", json={"overlap": 600}, headers=admin
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        new = answer.json()["client_secret"]
        assert deployment.grant("chat", new).status_code == 200
        assert deployment.grant("chat", old).status_code == 200
        [chat] = [
            c
            for c in httpx.get(f"{deployment.auth}/clients", headers=admin).json()
            if c["client_id"] == "chat"
        ]
        assert chat["previous_valid_until"] == answer.json()["previous_valid_until"]
        assert new not in json.dumps(chat)

        again = httpx.post(f"{deployment.auth}/clients/chat/rotate-secret", headers=admin)
        assert problem(again, 409)["code"] == "rotation_in_progress"
        forced = httpx.post(
            f"{deployment.auth}/clients/chat/rotate-secret",
            json={"overlap": 0, "force": True},
            headers=admin,
        )
        assert forced.status_code == 200
        problem(deployment.grant("chat", old), 401)
        problem(deployment.grant("chat", new), 401)
        assert deployment.grant("chat", forced.json()["client_secret"]).status_code == 200

        problem(httpx.post(f"{deployment.auth}/clients/nobody/rotate-secret", headers=admin), 404)
        bad = httpx.post(
            f"{deployment.auth}/clients/chat/rotate-secret", json={"overlap": -1}, headers=admin
        )
        assert "overlap" in json.dumps(problem(bad, 422))
        problem(httpx.post(f"{deployment.auth}/clients/chat/rotate-secret"), 401)

        events = [
            e
            for e in deployment.audit(admin, action="secret.rotated")
            if e["resource"] == "client:chat"
        ]
        assert [e["details"]["forced"] for e in events] == [False, True]
        assert all(e["actor"]["type"] == "user" for e in events)
        trail = json.dumps(deployment.audit(admin))
        assert new not in trail and forced.json()["client_secret"] not in trail

    def test_operator_delivers_an_api_rotated_secret(self, deployment: Deployment) -> None:
        """A secret rotated over HTTP and written where orders reads it is picked up live."""
        admin = deployment.admin()
        answer = httpx.post(
            f"{deployment.auth}/clients/orders/rotate-secret",
            json={"overlap": OVERLAP},
            headers=admin,
        )
        write_secret_file(
            DataDir(deployment.data_dir).client_secret("orders"), answer.json()["client_secret"]
        )
        key = deployment.api_key(admin)["key"]
        time.sleep(OVERLAP + 0.5)
        assert deployment.orders_with_key(key).status_code == 200


def _rotate_over_http(deployment: Deployment, key_id: str, overlap: int) -> dict[str, Any]:
    answer = httpx.post(
        f"{deployment.auth}/apikeys/{key_id}/rotate",
        json={"overlap": overlap},
        headers=deployment.admin(),
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == f"/apikeys/{answer.json()['id']}"
    assert answer.headers["cache-control"] == "no-store"
    return answer.json()  # type: ignore[no-any-return]


def _rotate_with_cli(deployment: Deployment, key_id: str, overlap: int) -> dict[str, Any]:
    [row] = deployment.cli("apikeys", "rotate", key_id, "--overlap", f"{overlap}s")
    return row  # type: ignore[no-any-return]


class TestApiKeyRotation:
    @pytest.mark.parametrize("rotate", [_rotate_over_http, _rotate_with_cli], ids=["http", "cli"])
    def test_old_key_works_until_the_overlap_ends_then_is_revoked(
        self,
        deployment: Deployment,
        rotate: Callable[[Deployment, str, int], dict[str, Any]],
    ) -> None:
        """Both keys work at orders during the overlap; then the old one is a 401 there,
        and the identity service records it as revoked."""
        admin = deployment.admin()
        created = deployment.api_key(admin)
        old = created["key"]
        assert deployment.orders_with_key(old).status_code == 200
        rotated = rotate(deployment, created["id"], OVERLAP)
        new = rotated["key"]
        assert rotated["replaces"] == created["id"] and rotated["id"] != created["id"]
        assert rotated["name"] == "nightly-export"
        assert deployment.orders_with_key(old).status_code == 200
        assert deployment.orders_with_key(new).status_code == 200
        problem(
            httpx.post(
                f"{deployment.orders}/orders",
                json={"item": "x", "quantity": 1},
                headers={"X-API-Key": new},
            ),
            403,
        )  # same scopes: read only

        eventually(
            lambda: deployment.orders_with_key(old).status_code == 401, "the old key refused"
        )
        body = problem(deployment.orders_with_key(old), 401)
        assert old not in json.dumps(body)
        assert deployment.orders_with_key(new).status_code == 200

        def swept() -> dict[str, Any] | None:
            keys = httpx.get(f"{deployment.auth}/apikeys", headers=admin).json()
            [entry] = [k for k in keys if k["id"] == created["id"]]
            return entry if entry["revoked_at"] is not None else None

        entry = eventually(swept, "the old key recorded as revoked")
        assert entry["replaced_by"] == rotated["id"]
        assert entry["retire_at"] is not None
        again = httpx.post(f"{deployment.auth}/apikeys/{created['id']}/rotate", headers=admin)
        problem(again, 404)

        events = deployment.audit(admin, action="secret.rotated")
        [event] = [e for e in events if e["details"].get("key_id") == created["id"]]
        assert event["details"]["kind"] == "api_key"
        assert event["details"]["replaced_by"] == rotated["id"]
        [revoked] = [
            e
            for e in deployment.audit(admin, action="apikey.revoked")
            if e["details"].get("key_id") == created["id"]
        ]
        assert revoked["reason"] == "rotated"
        trail = json.dumps(deployment.audit(admin))
        assert old not in trail and new not in trail

    def test_rotating_twice_and_bad_input(self, deployment: Deployment) -> None:
        """A rotated key is not rotated again (409); unknown ids are 404; the overlap is checked."""
        admin = deployment.admin()
        created = deployment.api_key(admin)
        url = f"{deployment.auth}/apikeys/{created['id']}/rotate"
        problem(httpx.post(url, json={"overlap": 40_000_000}, headers=admin), 422)
        problem(httpx.post(url, json={"overlap": "1h"}, headers=admin), 422)
        rotated = httpx.post(url, headers=admin)  # default overlap
        assert rotated.status_code == 201
        assert problem(httpx.post(url, headers=admin), 409)["code"] == "rotation_in_progress"
        problem(httpx.post(f"{deployment.auth}/apikeys/000000000000/rotate", headers=admin), 404)


class TestSigningKeyRotationAudit:
    def test_every_rotation_step_is_one_event(self, deployment: Deployment) -> None:
        """At the command line and over HTTP, each step (and a refused one) is recorded."""
        admin = deployment.admin()
        before = deployment.audit(admin, action="key.rotated")
        deployment.cli("keys", "rotate")  # publishes a next key
        refused = httpx.post(f"{deployment.auth}/keys/rotate", headers=admin)
        assert problem(refused, 409)["code"] == "rotation_too_early"
        time.sleep(1.1)  # the publish delay
        assert httpx.post(f"{deployment.auth}/keys/rotate", headers=admin).status_code == 200
        events = deployment.audit(admin, action="key.rotated")[len(before) :]
        assert [(e["service"], e["actor"]["type"], e["outcome"]) for e in events] == [
            ("cli", "operator", "success"),
            ("auth", "user", "failure"),
            ("auth", "user", "success"),
        ]
        assert "PRIVATE KEY" not in json.dumps(events)
