"""Changing the signing algorithm is a rotation like any other (DESIGN invariant 4).

An operator runs auth and orders with tokens signed under one algorithm,
restarts auth with another (same database, same KEK) and runs ``barbacana keys
rotate`` twice: the first step publishes a key for the new algorithm, the
second makes it sign. Throughout, orders accepts every token that is still
valid; new tokens come out under the new algorithm; once the old key's grace
period has passed it leaves the JWKS and orders refuses its tokens.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from barbacana.cli._admin import bootstrap
from barbacana.services._runtime import DataDir, open_sealer
from barbacana.services.auth.app import create_app as create_auth
from barbacana.services.orders.app import create_app as create_orders
from barbacana.settings import ClientSettings, KeySettings, Settings, TokenSettings
from tests.conftest import ServerThread, free_port, make_settings
from tests.services.conftest import ISSUER, TEST_RATELIMIT

pytestmark = pytest.mark.slow

T = TypeVar("T")

ACCESS_TTL = timedelta(seconds=6)
LEEWAY = timedelta(seconds=1)
PUBLISH_DELAY = timedelta(seconds=1)
#: The JWK an algorithm's key is published as: kty and crv (RFC 7518 §6, RFC 8037 §2).
JWK_SHAPE: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "Ed25519": ("OKP", "Ed25519"),
}


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """The first truthy value of ``probe``; fails the test if none comes within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def jose_header(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


def assert_published(jwk: dict[str, Any], alg: str, kid: str) -> None:
    """``jwk`` is the public key ``kid`` for ``alg``, with the members its key type needs."""
    kty, crv = JWK_SHAPE[alg]
    assert (jwk["kid"], jwk["alg"], jwk["kty"], jwk.get("crv"), jwk["use"]) == (
        kid,
        alg,
        kty,
        crv,
        "sig",
    )
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)


class Deployment:
    """auth and orders on loopback sockets, and the ``barbacana`` CLI, as an operator runs them."""

    def __init__(self, tmp_path: Path, database_url: str, stack: contextlib.ExitStack) -> None:
        self.data_dir = tmp_path
        self.database_url = database_url
        self.stack = stack
        self.port = free_port()
        self.auth_url = f"http://127.0.0.1:{self.port}"
        self._auth: ServerThread | None = None
        self.admin_password = ""
        self.orders_url = ""

    def settings(self, alg: str) -> Settings:
        return make_settings(
            self.data_dir,
            self.database_url,
            tokens=TokenSettings(
                issuer=ISSUER,
                algorithm=alg,
                access_ttl=ACCESS_TTL,
                leeway=LEEWAY,
                revocation_poll_interval=timedelta(seconds=0.1),
            ),
            key=KeySettings(publish_delay=PUBLISH_DELAY),
            ratelimit=TEST_RATELIMIT,
        )

    def start(self, alg: str) -> None:
        """First run: prepare the data directory, then start auth and orders."""
        self.admin_password = asyncio.run(bootstrap(self.settings(alg)))["admin_password"]
        self.start_auth(alg)
        orders_settings = make_settings(
            self.data_dir,
            self.database_url,
            tokens=TokenSettings(
                issuer=ISSUER,
                identity_url=self.auth_url,
                jwks_refresh_interval=timedelta(seconds=0.3),
                leeway=LEEWAY,
            ),
            client=ClientSettings(
                id="orders", secret_file=DataDir(self.data_dir).client_secret("orders")
            ),
            ratelimit=TEST_RATELIMIT,
        )
        orders = self.stack.enter_context(ServerThread(create_orders(orders_settings)))
        self.orders_url = orders.url

    def start_auth(self, alg: str) -> None:
        """(Re)start the identity service on its port, signing new keys with ``alg``."""
        if self._auth is not None:
            self._auth.__exit__(None, None, None)
        settings = self.settings(alg)
        sealer = asyncio.run(open_sealer(settings))
        self._auth = self.stack.enter_context(
            ServerThread(create_auth(settings, sealer=sealer), port=self.port)
        )

    def cli(
        self, alg: str, *args: str, publish_delay: timedelta = PUBLISH_DELAY
    ) -> list[dict[str, Any]]:
        """``barbacana <args> --json`` in its own process, configured from the environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BARBACANA_")}
        env.update(
            {
                "BARBACANA_DATABASE_URL": self.database_url,
                "BARBACANA_TOKENS_ISSUER": ISSUER,
                "BARBACANA_TOKENS_ALGORITHM": alg,
                "BARBACANA_TOKENS_ACCESS_TTL": f"PT{ACCESS_TTL.total_seconds():.0f}S",
                "BARBACANA_TOKENS_LEEWAY": f"PT{LEEWAY.total_seconds():.0f}S",
                "BARBACANA_KEY_PUBLISH_DELAY": f"PT{publish_delay.total_seconds():.0f}S",
                "BARBACANA_IDENTITY_PASSWORD_PROFILE": "test_only_cheap",
            }
        )
        command = [sys.executable, "-m", "barbacana.cli", *args]
        done = subprocess.run(
            [*command, "--data-dir", str(self.data_dir), "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def rotate(self, alg: str, publish_delay: timedelta = PUBLISH_DELAY) -> dict[str, str]:
        """``barbacana keys rotate``; every key's state by kid."""
        rows = self.cli(alg, "keys", "rotate", publish_delay=publish_delay)
        return {row["kid"]: row["state"] for row in rows}

    def rotate_over_http(self) -> dict[str, str]:
        """``POST /keys/rotate`` as the admin: the running auth swaps its keys at once."""
        response = httpx.post(
            f"{self.auth_url}/keys/rotate", headers={"Authorization": f"Bearer {self.token()}"}
        )
        assert response.status_code == 200, response.text
        return {row["kid"]: row["state"] for row in response.json()}

    def token(self) -> str:
        response = httpx.post(
            f"{self.auth_url}/token",
            data={"grant_type": "password", "username": "admin", "password": self.admin_password},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def signing_keys(self) -> list[dict[str, Any]]:
        """``GET /keys`` as the admin: every key, retired ones included."""
        response = httpx.get(
            f"{self.auth_url}/keys", headers={"Authorization": f"Bearer {self.token()}"}
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def jwks(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.auth_url}/.well-known/jwks.json")
        assert response.status_code == 200, response.text
        return response.json()["keys"]  # type: ignore[no-any-return]

    def orders(self, token: str) -> httpx.Response:
        return httpx.get(f"{self.orders_url}/orders", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def deployment(tmp_path: Path, database_url: str) -> Iterator[Deployment]:
    with contextlib.ExitStack() as stack:
        yield Deployment(tmp_path, database_url, stack)


def published_kids(deployment: Deployment) -> list[str]:
    return [jwk["kid"] for jwk in deployment.jwks()]


@pytest.mark.parametrize(("old", "new"), [("RS256", "Ed25519"), ("Ed25519", "ES256")])
def test_algorithm_change(deployment: Deployment, old: str, new: str) -> None:
    """old → new through restart, publish, promote and retire; no valid token is refused."""
    deployment.start(old)
    first = deployment.token()
    old_kid = jose_header(first)["kid"]
    assert jose_header(first) == {"alg": old, "kid": old_kid, "typ": "at+jwt"}
    (jwk,) = deployment.jwks()
    assert_published(jwk, old, old_kid)
    assert deployment.orders(first).status_code == 200

    # The operator restarts auth with the new algorithm: existing keys are unchanged.
    deployment.start_auth(new)
    assert jose_header(deployment.token())["kid"] == old_kid

    # Step one publishes a key for the new algorithm; the old key still signs.
    states = deployment.rotate(new)
    (new_kid,) = (kid for kid, state in states.items() if state == "next")
    published_at = time.monotonic()
    assert states[old_kid] == "active"
    eventually(lambda: published_kids(deployment) == [old_kid, new_kid], "the next key's JWKS")
    active, upcoming = deployment.jwks()
    assert_published(active, old, old_kid)
    assert_published(upcoming, new, new_kid)
    assert jose_header(deployment.token())["kid"] == old_kid  # a next key never signs

    # Step two, once the next key has been published long enough, makes it sign
    # (through the admin endpoint this time, so auth uses the new key at once).
    time.sleep(max(0.0, published_at + PUBLISH_DELAY.total_seconds() - time.monotonic()))
    bridge = deployment.token()
    assert jose_header(bridge) == {"alg": old, "kid": old_kid, "typ": "at+jwt"}
    states = deployment.rotate_over_http()
    assert (states[new_kid], states[old_kid]) == ("active", "retiring")
    fresh = deployment.token()
    assert jose_header(fresh) == {"alg": new, "kid": new_kid, "typ": "at+jwt"}
    assert deployment.orders(fresh).status_code == 200
    still = deployment.orders(bridge)
    assert still.status_code == 200, still.text  # the retiring key still verifies
    assert published_kids(deployment) == [new_kid, old_kid]
    active, retiring = deployment.jwks()
    assert_published(active, new, new_kid)
    assert_published(retiring, old, old_kid)

    # Once its grace period has passed, the old key is retired: gone from the JWKS,
    # and orders refuses its tokens because it no longer knows the key.
    timeout = (ACCESS_TTL + LEEWAY).total_seconds() + 30
    eventually(lambda: published_kids(deployment) == [new_kid], "the old key to retire", timeout)

    def refused_for_unknown_key() -> httpx.Response | None:
        response = deployment.orders(bridge)
        unknown = response.status_code == 401 and response.json()["code"] == "token_key_unknown"
        return response if unknown else None

    refused = eventually(refused_for_unknown_key, "orders to forget the retired key")
    assert refused.headers["content-type"] == "application/problem+json"
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    keys = {row["kid"]: row for row in deployment.signing_keys()}
    assert (keys[old_kid]["alg"], keys[old_kid]["state"]) == (old, "retired")
    assert (keys[new_kid]["alg"], keys[new_kid]["state"]) == (new, "active")
    assert deployment.orders(deployment.token()).status_code == 200


def test_next_key_of_the_old_algorithm_never_signs(deployment: Deployment) -> None:
    """A next key published before the change is replaced by one of the new algorithm."""
    deployment.start("Ed25519")
    old_kid = jose_header(deployment.token())["kid"]
    states = deployment.rotate("Ed25519")
    (stale_kid,) = (kid for kid, state in states.items() if state == "next")
    time.sleep(PUBLISH_DELAY.total_seconds())

    deployment.start_auth("RS256")
    states = deployment.rotate("RS256")
    (new_kid,) = (kid for kid, state in states.items() if state == "next")
    assert (states[old_kid], states[stale_kid]) == ("active", "retired")
    published_at = time.monotonic()
    eventually(lambda: published_kids(deployment) == [old_kid, new_kid], "the RS256 next key")
    assert_published(deployment.jwks()[1], "RS256", new_kid)

    time.sleep(max(0.0, published_at + PUBLISH_DELAY.total_seconds() - time.monotonic()))
    states = deployment.rotate_over_http()
    assert (states[new_kid], states[old_kid], states[stale_kid]) == (
        "active",
        "retiring",
        "retired",
    )
    fresh = deployment.token()
    assert jose_header(fresh) == {"alg": "RS256", "kid": new_kid, "typ": "at+jwt"}
    assert deployment.orders(fresh).status_code == 200
    assert stale_kid not in published_kids(deployment)


def test_change_right_after_a_publication(deployment: Deployment) -> None:
    """The first step after a change publishes at once, however young the old next key."""
    asyncio.run(bootstrap(deployment.settings("Ed25519")))
    long_delay = timedelta(minutes=10)
    states = deployment.rotate("Ed25519", publish_delay=long_delay)
    (stale_kid,) = (kid for kid, state in states.items() if state == "next")
    states = deployment.rotate("ES256", publish_delay=long_delay)
    assert states[stale_kid] == "retired"
    assert sorted(states.values()) == ["active", "next", "retired"]
