import httpx

from tests.services.conftest import System


def test_login_and_order(system: System) -> None:
    token = system.token()["access_token"]
    r = httpx.post(f"{system.orders}/orders", json={"item": "tea", "quantity": 2}, headers=system.bearer(token))
    assert r.status_code == 201, r.text
