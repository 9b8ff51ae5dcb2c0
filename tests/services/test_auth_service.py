"""The identity service over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import time

import httpx

from tests.services.conftest import System


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()  # type: ignore[no-any-return]


def claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


class TestPasswordGrant:
    def test_login_issues_rfc9068_token(self, system: System) -> None:
        """A password login returns an at+jwt with RFC 9068 claims and no-store caching."""
        response = httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "password", "username": "admin", "password": system.admin_password},
        )
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert body["refresh_token"]
        header = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))
        assert header["typ"] == "at+jwt"
        assert header["alg"] == "Ed25519"
        claims = claims_of(body["access_token"])
        for claim in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "roles"):
            assert claim in claims
        assert claims["roles"] == ["admin"]

    def test_same_answer_for_unknown_user_and_wrong_password(self, system: System) -> None:
        """Unknown user and wrong password get byte-identical answers (no enumeration)."""
        answers = []
        for username in ("admin", "nobody-here"):
            response = httpx.post(
                f"{system.auth}/token",
                data={
                    "grant_type": "password",
                    "username": username,
                    "password": "wrong-password-123",
                },
                headers={"X-Request-ID": "same-id"},
            )
            body = problem(response, 400)
            assert body["error"] == "invalid_grant"
            answers.append(response.content)
        assert answers[0] == answers[1]

    def test_disabled_user_cannot_log_in(self, system: System) -> None:
        """A disabled account gets the same invalid_grant as a wrong password."""
        password = system.add_user("carol")
        admin = system.token()["access_token"]
        carol_id = httpx.get(
            f"{system.auth}/users/me",
            headers=system.bearer(system.token("carol", password)["access_token"]),
        ).json()["id"]
        assert (
            httpx.post(
                f"{system.auth}/users/{carol_id}/disable", headers=system.bearer(admin)
            ).status_code
            == 200
        )
        response = httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "password", "username": "carol", "password": password},
        )
        assert problem(response, 400)["error"] == "invalid_grant"

    def test_scope_narrows(self, system: System) -> None:
        """A requested subset of scopes is granted exactly."""
        password = system.add_user("dave")
        body = system.token("dave", password, scope="orders:read")
        assert body["scope"] == "orders:read"
        assert claims_of(body["access_token"])["scope"] == "orders:read"

    def test_scope_not_held_is_refused(self, system: System) -> None:
        """A scope the user does not hold is refused with invalid_scope, never granted."""
        password = system.add_user("erin")
        response = httpx.post(
            f"{system.auth}/token",
            data={
                "grant_type": "password",
                "username": "erin",
                "password": password,
                "scope": "orders:read users:write",
            },
        )
        assert problem(response, 400)["error"] == "invalid_scope"

    def test_unsupported_grant(self, system: System) -> None:
        """An unknown grant type is unsupported_grant_type."""
        response = httpx.post(f"{system.auth}/token", data={"grant_type": "implicit"})
        assert problem(response, 400)["error"] == "unsupported_grant_type"

    def test_missing_field_is_named(self, system: System) -> None:
        """A missing grant_type is a 422 that names the field."""
        response = httpx.post(f"{system.auth}/token", data={"username": "x"})
        assert "grant_type" in str(problem(response, 422)["detail"])


class TestRefresh:
    def test_rotation_and_reuse_detection(self, system: System) -> None:
        """A refresh token works once; replaying it revokes the whole family."""
        first = system.token()
        second = httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        ).json()
        assert second["refresh_token"] != first["refresh_token"]
        replay = httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        )
        assert problem(replay, 400)["error"] == "invalid_grant"
        # The successor died with its family, and so did the access token minted from it.
        successor = httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
        )
        assert problem(successor, 400)["error"] == "invalid_grant"
        me = httpx.get(f"{system.auth}/users/me", headers=system.bearer(second["access_token"]))
        problem(me, 401)

    def test_refresh_never_widens_scope(self, system: System) -> None:
        """A refresh may narrow the original scope but not widen it."""
        first = system.token(scope="orders:read")
        wider = httpx.post(
            f"{system.auth}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": first["refresh_token"],
                "scope": "orders:read orders:write",
            },
        )
        assert problem(wider, 400)["error"] == "invalid_scope"

    def test_refresh_token_is_not_an_access_token(self, system: System) -> None:
        """A refresh token presented as a bearer token is refused."""
        first = system.token()
        problem(
            httpx.get(f"{system.auth}/users/me", headers=system.bearer(first["refresh_token"])), 401
        )

    def test_access_token_is_not_a_refresh_token(self, system: System) -> None:
        """An access token presented as a refresh token is refused."""
        first = system.token()
        response = httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "refresh_token", "refresh_token": first["access_token"]},
        )
        problem(response, 400)


class TestRevocationAndLogout:
    def test_revoke_refresh_token(self, system: System) -> None:
        """RFC 7009: revoking a refresh token ends its family; the answer is 200."""
        first = system.token()
        assert (
            httpx.post(f"{system.auth}/revoke", data={"token": first["refresh_token"]}).status_code
            == 200
        )
        again = httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        )
        problem(again, 400)

    def test_revoke_unknown_token_is_200(self, system: System) -> None:
        """RFC 7009 §2.2: an unknown token still gets 200."""
        assert httpx.post(f"{system.auth}/revoke", data={"token": "nonsense"}).status_code == 200

    def test_revoke_access_token(self, system: System) -> None:
        """A revoked access token stops working at the issuer at once."""
        token = system.token()["access_token"]
        assert (
            httpx.post(
                f"{system.auth}/revoke", data={"token": token, "token_type_hint": "access_token"}
            ).status_code
            == 200
        )
        problem(httpx.get(f"{system.auth}/users/me", headers=system.bearer(token)), 401)

    def test_logout_is_honoured_by_orders_within_two_seconds(self, system: System) -> None:
        """After logout, the orders service refuses the token within 2 s."""
        body = system.token()
        headers = system.bearer(body["access_token"])
        assert httpx.get(f"{system.orders}/orders", headers=headers).status_code == 200
        assert httpx.post(f"{system.auth}/logout", headers=headers).status_code == 204
        logged_out = time.monotonic()
        while httpx.get(f"{system.orders}/orders", headers=headers).status_code == 200:
            assert time.monotonic() - logged_out < 2.0, "orders still accepts a logged-out token"
            time.sleep(0.05)
        refused = httpx.get(f"{system.orders}/orders", headers=headers)
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        # The refresh family died too.
        again = httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        )
        problem(again, 400)

    def test_disabled_user_is_refused_by_orders_within_two_seconds(self, system: System) -> None:
        """Disabling a user voids its live tokens everywhere within 2 s."""
        password = system.add_user("frank")
        token = system.token("frank", password)["access_token"]
        headers = system.bearer(token)
        frank = httpx.get(f"{system.auth}/users/me", headers=headers).json()["id"]
        assert httpx.get(f"{system.orders}/orders", headers=headers).status_code == 200
        admin = system.token()["access_token"]
        httpx.post(f"{system.auth}/users/{frank}/disable", headers=system.bearer(admin))
        start = time.monotonic()
        while httpx.get(f"{system.orders}/orders", headers=headers).status_code == 200:
            assert time.monotonic() - start < 2.0
            time.sleep(0.05)


class TestClientsAndIntrospection:
    def _orders_secret(self, system: System) -> str:
        return (system.data_dir / "secrets" / "orders.client-secret").read_text()

    def test_client_credentials(self, system: System) -> None:
        """A service client gets a token for itself, without a refresh token."""
        response = httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "client_credentials"},
            auth=("orders", self._orders_secret(system)),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "refresh_token" not in body
        assert claims_of(body["access_token"])["sub"] == "orders"

    def test_bad_client_secret(self, system: System) -> None:
        """A wrong client secret is 401 invalid_client with a Basic challenge."""
        response = httpx.post(
            f"{system.auth}/token",
            data={"grant_type": "client_credentials"},
            auth=("orders", "wrong"),
        )
        assert problem(response, 401)["error"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic")

    def test_introspection(self, system: System) -> None:
        """RFC 7662: active tokens show claims; inactive ones only active=false."""
        token = system.token()["access_token"]
        auth = ("orders", self._orders_secret(system))
        active = httpx.post(f"{system.auth}/introspect", data={"token": token}, auth=auth).json()
        assert active["active"] is True and active["username"] == "admin"
        inactive = httpx.post(
            f"{system.auth}/introspect", data={"token": "garbage"}, auth=auth
        ).json()
        assert inactive == {"active": False}

    def test_introspection_needs_client_auth(self, system: System) -> None:
        """Introspection without client credentials is 401."""
        problem(httpx.post(f"{system.auth}/introspect", data={"token": "x"}), 401)

    def test_revocation_feed_needs_client_auth(self, system: System) -> None:
        """The revocation feed is for service clients only."""
        problem(httpx.get(f"{system.auth}/internal/revocations"), 401)


class TestUsersAndDiscovery:
    def test_me_has_no_secrets(self, system: System) -> None:
        """/users/me shows the account, never the password hash."""
        token = system.token()["access_token"]
        body = httpx.get(f"{system.auth}/users/me", headers=system.bearer(token)).json()
        assert body["username"] == "admin"
        text = json.dumps(body)
        assert "argon2" not in text and "password" not in text

    def test_user_admin_needs_scope(self, system: System) -> None:
        """A plain user cannot create users: 403 insufficient_scope naming the scope."""
        password = system.add_user("gina")
        token = system.token("gina", password)["access_token"]
        response = httpx.post(
            f"{system.auth}/users",
            json={"username": "mallory", "password": "mallory-password", "roles": ["admin"]},
            headers=system.bearer(token),
        )
        problem(response, 403)
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert 'scope="users:write"' in response.headers["www-authenticate"]

    def test_create_user_conflict_and_validation(self, system: System) -> None:
        """Duplicate names are 409; unknown roles and short passwords are 4xx naming the field."""
        admin = system.bearer(system.token()["access_token"])
        system.add_user("hank")
        dup = httpx.post(
            f"{system.auth}/users",
            json={"username": "hank", "password": "another-password"},
            headers=admin,
        )
        problem(dup, 409)
        role = httpx.post(
            f"{system.auth}/users",
            json={"username": "ivy", "password": "ivy-password-long", "roles": ["root"]},
            headers=admin,
        )
        assert (
            "roles" in str(problem(role, 400)["detail"]) or problem(role, 400)["field"] == "roles"
        )
        short = httpx.post(
            f"{system.auth}/users", json={"username": "ivy", "password": "short"}, headers=admin
        )
        assert "password" in str(problem(short, 422)["detail"])

    def test_role_change_voids_old_tokens(self, system: System) -> None:
        """Changing roles voids tokens carrying the old roles."""
        password = system.add_user("jack", ["admin"])
        token = system.token("jack", password)["access_token"]
        jack = httpx.get(f"{system.auth}/users/me", headers=system.bearer(token)).json()["id"]
        admin = system.bearer(system.token()["access_token"])
        changed = httpx.put(
            f"{system.auth}/users/{jack}/roles", json={"roles": ["user"]}, headers=admin
        )
        assert changed.json()["roles"] == ["user"]
        problem(httpx.get(f"{system.auth}/users/me", headers=system.bearer(token)), 401)

    def test_jwks_and_metadata(self, system: System) -> None:
        """The JWKS has public keys only; RFC 8414 metadata points at the endpoints."""
        jwks = httpx.get(f"{system.auth}/.well-known/jwks.json").json()
        assert jwks["keys"]
        for key in jwks["keys"]:
            assert "d" not in key and key["kid"] and key["alg"]
        meta = httpx.get(f"{system.auth}/.well-known/oauth-authorization-server").json()
        assert meta["token_endpoint"].endswith("/token")
        assert "refresh_token" in meta["grant_types_supported"]

    def test_key_rotation_over_http(self, system: System) -> None:
        """An admin rotates keys; tokens from the old key still verify at orders."""
        admin = system.token()["access_token"]
        published = httpx.post(f"{system.auth}/keys/rotate", headers=system.bearer(admin))
        assert {key["state"] for key in published.json()} == {"active", "next"}
        # Promoting the next key at once is refused: caches may not know it yet.
        early = httpx.post(f"{system.auth}/keys/rotate", headers=system.bearer(admin))
        assert problem(early, 409)["code"] == "rotation_too_early"
        time.sleep(1.2)  # publish_delay (1 s) in these tests; orders refreshes every 0.5 s
        response = httpx.post(f"{system.auth}/keys/rotate", headers=system.bearer(admin))
        assert response.status_code == 200
        states = {key["state"] for key in response.json()}
        assert {"active", "retiring"} <= states
        assert httpx.get(f"{system.orders}/orders", headers=system.bearer(admin)).status_code == 200
        fresh = system.token()["access_token"]
        assert (
            claims_of(fresh)
            and httpx.get(f"{system.orders}/orders", headers=system.bearer(fresh)).status_code
            == 200
        )


class TestApiKeys:
    def test_api_key_lifecycle(self, system: System) -> None:
        """Created once (shown once), scoped, usable at orders, revoked within 2 s."""
        admin = system.bearer(system.token()["access_token"])
        created = httpx.post(
            f"{system.auth}/apikeys",
            json={"name": "robot", "scopes": ["orders:read"]},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        assert key.startswith("brb_")
        listed = httpx.get(f"{system.auth}/apikeys", headers=admin).json()
        assert key not in json.dumps(listed)
        headers = {"X-API-Key": key}
        assert httpx.get(f"{system.orders}/orders", headers=headers).status_code == 200
        # Scoped: it cannot write.
        problem(
            httpx.post(
                f"{system.orders}/orders", json={"item": "x", "quantity": 1}, headers=headers
            ),
            403,
        )
        assert (
            httpx.delete(f"{system.auth}/apikeys/{created.json()['id']}", headers=admin).status_code
            == 204
        )
        start = time.monotonic()
        while httpx.get(f"{system.orders}/orders", headers=headers).status_code == 200:
            assert time.monotonic() - start < 2.0
            time.sleep(0.05)

    def test_bad_api_key(self, system: System) -> None:
        """An unknown API key is 401."""
        problem(httpx.get(f"{system.orders}/orders", headers={"X-API-Key": "brb_0000_nope"}), 401)


def test_nul_characters_are_a_4xx_not_a_500(system: System) -> None:
    """A NUL in a field (PostgreSQL refuses it in text; SQLite stores it) is never a 500."""
    response = httpx.post(
        f"{system.auth}/token",
        data={"grant_type": "password", "username": "ad\x00min", "password": "whatever-123"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    admin = system.bearer(system.token()["access_token"])
    created = httpx.post(
        f"{system.orders}/orders", json={"item": "te\u0000a", "quantity": 1}, headers=admin
    )
    assert created.status_code < 500, created.text
