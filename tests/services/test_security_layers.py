"""The layers together over HTTP: audit events, lockout, rate limits, no secret leaks."""

from __future__ import annotations

import json
import time

import httpx

from tests.services.conftest import System


def audit_events(system: System, **params: str) -> list[dict[str, object]]:
    admin = system.bearer(system.token()["access_token"])
    response = httpx.get(
        f"{system.auth}/audit/events", params={"limit": "500", **params}, headers=admin
    )
    assert response.status_code == 200, response.text
    return response.json()["events"]  # type: ignore[no-any-return]


class TestAuditOverHttp:
    def test_login_events_carry_actor_address_and_request_id(self, system: System) -> None:
        """Failed and successful logins are audited with address and the client's request id."""
        httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "password", "username": "admin", "password": "not-the-password"},
            headers={"X-Request-ID": "req-failed-1"},
        )
        httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "password", "username": "admin", "password": system.admin_password},
            headers={"X-Request-ID": "req-ok-1"},
        )
        events = audit_events(system, action="auth.login.")
        failed = [e for e in events if e["request_id"] == "req-failed-1"]
        ok = [e for e in events if e["request_id"] == "req-ok-1"]
        assert failed and failed[0]["action"] == "auth.login.failed"
        assert failed[0]["actor"]["address"] == "127.0.0.1"  # type: ignore[index]
        assert ok and ok[0]["action"] == "auth.login.succeeded"
        assert ok[0]["actor"]["name"] == "admin"  # type: ignore[index]

    def test_access_denied_and_user_events(self, system: System) -> None:
        """A 401 becomes access.denied; creating a user is user.created."""
        httpx.get(f"{system.auth}/users/me", headers={"X-Request-ID": "req-denied-1"})
        system.add_user("quinn")
        events = audit_events(system)
        assert any(
            e["action"] == "access.denied" and e["request_id"] == "req-denied-1" for e in events
        )
        assert any(e["action"] == "user.created" for e in events)

    def test_audit_api_needs_scope(self, system: System) -> None:
        """A plain user cannot read the trail."""
        token = system.token("rita", system.add_user("rita"))["access_token"]
        assert (
            httpx.get(f"{system.auth}/audit/events", headers=system.bearer(token)).status_code
            == 403
        )

    def test_order_created_is_audited_at_orders(self, system: System) -> None:
        """orders records order.created in its own trail (verified by the CLI elsewhere)."""
        headers = system.bearer(system.token()["access_token"])
        response = httpx.post(
            f"{system.orders}/orders",
            json={"item": "tea", "quantity": 1},
            headers={**headers, "X-Request-ID": "req-order-1"},
        )
        assert response.status_code == 201
        # Both services share the database in this configuration; the trail is one table.
        events = audit_events(system, action="order.created")
        assert any(e["request_id"] == "req-order-1" and e["service"] == "orders" for e in events)


class TestBruteForce:
    def test_account_locks_within_thirty_failures_and_reveals_nothing(self, system: System) -> None:
        """Failures lock an account (429, Retry-After); unknown accounts answer the same."""
        password = system.add_user("sam")
        answers = {}
        for username in ("sam", "nobody-at-all"):
            for attempt in range(30):  # noqa: B007 -- compared after the loop
                response = httpx.post(
                    f"{system.auth}/token",
                    data={
                        "grant_type": "password",
                        "username": username,
                        "password": "wrong-password!",
                    },
                    timeout=60,
                )
                if response.status_code == 429:
                    break
            assert response.status_code == 429, f"{username} not locked after 30 failures"
            assert int(response.headers["retry-after"]) > 0
            answers[username] = (attempt, response.json()["code"], response.json()["detail"])
        assert answers["sam"] == answers["nobody-at-all"]
        # Locked: even the right password is refused, with the same answer.
        locked = httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "password", "username": "sam", "password": password},
        )
        assert locked.status_code == 429


class TestRateLimits:
    def test_limited_responses_carry_headers(self, system: System) -> None:
        """Responses carry RateLimit / RateLimit-Policy and X-RateLimit-* headers."""
        headers = system.bearer(system.token()["access_token"])
        response = httpx.get(f"{system.orders}/orders", headers=headers)
        assert response.status_code == 200
        assert "ratelimit-policy" in response.headers and "ratelimit" in response.headers
        assert "x-ratelimit-remaining" in response.headers

    def test_token_route_is_strictly_limited(self, system: System) -> None:
        """POST /token answers 429 problem+json with Retry-After once its quota is spent."""
        for _ in range(200):
            response = httpx.post(f"{system.auth}/token", data={"grant_type": "client_credentials"})
            if response.status_code == 429:
                break
        assert response.status_code == 429
        assert response.headers["content-type"] == "application/problem+json"
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["type"].endswith("quota-exceeded")


def test_secrets_never_reach_the_trail_or_logs(system: System, capfd: object) -> None:
    """Passwords, tokens, API keys and client secrets used over HTTP appear in no stored event."""
    password = system.add_user("tess")
    body = system.token("tess", password)
    admin = system.bearer(system.token()["access_token"])
    key = httpx.post(
        f"{system.auth}/apikeys", json={"name": "bot", "scopes": ["orders:read"]}, headers=admin
    ).json()["key"]
    httpx.get(f"{system.orders}/orders", headers={"X-API-Key": key})
    httpx.post(
        f"{system.auth}/token",
        data={"grant_type": "password", "username": "tess", "password": password + "x"},
    )
    httpx.post(f"{system.auth}/revoke", data={"token": body["refresh_token"]})
    httpx.get(
        f"{system.orders}/orders", headers={"Authorization": f"Bearer {body['access_token']}x"}
    )
    client_secret = (system.data_dir / "secrets" / "orders.client-secret").read_text()
    secrets = [
        password,
        password + "x",
        body["access_token"],
        body["refresh_token"],
        key,
        client_secret,
        system.admin_password,
    ]
    time.sleep(0.5)  # bulk access events are group-committed
    stored = json.dumps(audit_events(system))
    for secret in secrets:
        assert secret not in stored
    out, err = capfd.readouterr()  # type: ignore[attr-defined]
    for secret in secrets:
        assert secret not in out and secret not in err


def test_operator_lists_and_unlocks_locked_accounts(system: System) -> None:
    """`barbacana users locked` / `users unlock` see and lift a lock on the running service."""
    import os
    import subprocess
    import sys

    password = system.add_user("uma")
    for _ in range(30):
        response = httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "password", "username": "uma", "password": "wrong-password!"},
        )
        if response.status_code == 429:
            break
    assert response.status_code == 429
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARBACANA_")}
    env["BARBACANA_TOKEN"] = system.token()["access_token"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "barbacana.cli", "users", *args, "--url", system.auth],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    listed = cli("locked", "--json")
    assert listed.returncode == 0, listed.stderr
    assert any(row["name"] == "uma" for row in json.loads(listed.stdout))
    assert cli("unlock", "uma").returncode == 0
    assert system.token("uma", password)["access_token"]
    again = cli("unlock", "uma")
    assert again.returncode == 1
    assert "no such lock" in again.stderr


def test_request_id_follows_a_user_action_across_services(system: System) -> None:
    """An API-key call to orders makes orders ask auth; both trails carry the client's id."""
    admin = system.bearer(system.token()["access_token"])
    key = httpx.post(
        f"{system.auth}/apikeys", json={"name": "tracer", "scopes": ["orders:read"]}, headers=admin
    ).json()["key"]
    response = httpx.get(
        f"{system.orders}/orders", headers={"X-API-Key": key, "X-Request-ID": "trace-me-42"}
    )
    assert response.status_code == 200
    time.sleep(0.5)  # bulk access events are group-committed
    seen = {
        (e["service"], e["resource"])
        for e in audit_events(system)
        if e["request_id"] == "trace-me-42"
    }
    assert ("orders", "GET /orders") in seen
    assert ("auth", "POST /introspect") in seen
