"""The orders service over HTTP: scopes, ownership, roles, strict input."""

from __future__ import annotations

import httpx
import pytest

from tests.services.conftest import System


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()  # type: ignore[no-any-return]


def test_create_and_read_order(system: System) -> None:
    """A complete order is 201 with its id and Location; the owner reads it back."""
    headers = system.bearer(system.token()["access_token"])
    response = httpx.post(
        f"{system.orders}/orders", json={"item": "tea", "quantity": 2}, headers=headers
    )
    assert response.status_code == 201
    order = response.json()
    assert response.headers["location"] == f"/orders/{order['id']}"
    again = httpx.get(f"{system.orders}{response.headers['location']}", headers=headers)
    assert again.json() == order


def test_someone_elses_order_is_404(system: System) -> None:
    """Another user's order answers 404 exactly like a missing one (no id probing)."""
    alice = system.bearer(system.token("alice", system.add_user("alice"))["access_token"])
    bob = system.bearer(system.token("bob", system.add_user("bob"))["access_token"])
    order = httpx.post(
        f"{system.orders}/orders", json={"item": "tea", "quantity": 1}, headers=alice
    ).json()
    theirs = httpx.get(f"{system.orders}/orders/{order['id']}", headers=bob)
    missing = httpx.get(f"{system.orders}/orders/999999", headers=bob)
    assert problem(theirs, 404)["detail"] == problem(missing, 404)["detail"]
    assert order["id"] not in [
        o["id"] for o in httpx.get(f"{system.orders}/orders", headers=bob).json()
    ]
    # An admin may read it.
    admin = system.bearer(system.token()["access_token"])
    assert httpx.get(f"{system.orders}/orders/{order['id']}", headers=admin).status_code == 200


def test_dashboard_needs_admin_role(system: System) -> None:
    """The dashboard is 403 for a user and 200 for an admin."""
    user = system.bearer(system.token("una", system.add_user("una"))["access_token"])
    problem(httpx.get(f"{system.orders}/admin/dashboard", headers=user), 403)
    admin = system.bearer(system.token()["access_token"])
    assert set(httpx.get(f"{system.orders}/admin/dashboard", headers=admin).json()) == {
        "orders",
        "customers",
        "items",
    }


def test_no_token_is_401_with_challenge(system: System) -> None:
    """No credentials: 401 with an RFC 6750 challenge."""
    response = httpx.get(f"{system.orders}/orders")
    problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_missing_scope_is_403(system: System) -> None:
    """A read-only token cannot place orders: 403 insufficient_scope."""
    headers = system.bearer(system.token(scope="orders:read")["access_token"])
    response = httpx.post(
        f"{system.orders}/orders", json={"item": "tea", "quantity": 1}, headers=headers
    )
    problem(response, 403)
    assert 'scope="orders:write"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"item": "tea", "quantity": 0}, "body.quantity"),
        ({"item": "tea", "quantity": "5"}, "body.quantity"),
        ({"item": "tea", "quantity": True}, "body.quantity"),
        ({"item": "tea", "quantity": 1.5}, "body.quantity"),
        ({"item": "", "quantity": 1}, "body.item"),
        ({"item": "tea", "quantity": 1, "owner_id": "someone"}, "body.owner_id"),
        ({"quantity": 1}, "body.item"),
    ],
)
def test_strict_order_input(system: System, body: dict[str, object], field: str) -> None:
    """Bad orders are 422 naming the field; nothing is coerced or mass-assigned."""
    headers = system.bearer(system.token()["access_token"])
    errors = problem(httpx.post(f"{system.orders}/orders", json=body, headers=headers), 422)[
        "errors"
    ]
    assert field in [e["field"] for e in errors]  # type: ignore[union-attr]


def test_bad_path_id(system: System) -> None:
    """A non-numeric or out-of-range id is a 422, not a 500."""
    headers = system.bearer(system.token()["access_token"])
    problem(httpx.get(f"{system.orders}/orders/abc", headers=headers), 422)
    problem(httpx.get(f"{system.orders}/orders/99999999999999", headers=headers), 422)


def test_ready(system: System) -> None:
    """/ready reports the database and the identity keys."""
    body = httpx.get(f"{system.orders}/ready").json()
    assert body == {
        "status": "ready",
        "checks": {"database": "ok", "identity_keys": "ok", "ratelimit": "ok"},
    }
