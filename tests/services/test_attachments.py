"""POST /orders/{id}/attachments: remote files through the SSRF-safe client.

Loopback servers stand in for the internet: a file server the test policy
allows (one port on 127.0.0.1, test-only), and a canary that must never be
reached. Other internal addresses are only ever named by the stub resolver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from barbacana.outbound import OutboundSettings
from barbacana.outbound.testing import CanaryServer, CannedResponse, LocalHTTPServer, StubResolver
from barbacana.services._runtime import DataDir
from barbacana.services.orders.app import create_app as create_orders
from barbacana.settings import ClientSettings, TokenSettings
from tests.conftest import ServerThread, make_settings
from tests.services.conftest import ISSUER, TEST_RATELIMIT, System


@dataclass
class Shop:
    orders: str
    headers: dict[str, str]
    order_id: int
    canary: CanaryServer
    files: LocalHTTPServer


@pytest.fixture
async def shop(system: System) -> AsyncIterator[Shop]:
    async with (
        CanaryServer() as canary,
        LocalHTTPServer(
            {
                "/doc.txt": CannedResponse(
                    body=b"hello attachment", headers=(("Content-Type", "text/plain"),)
                ),
                "/big": CannedResponse(body=b"x" * 2_000_000),
            }
        ) as files,
    ):
        files.routes["/to-canary"] = CannedResponse(
            status=302, headers=(("Location", f"http://127.0.0.1:{canary.port}/steal"),)
        )
        files.routes["/to-metadata"] = CannedResponse(
            status=302, headers=(("Location", "http://169.254.169.254/latest/meta-data/"),)
        )
        resolver = StubResolver(
            {
                "files.test": ["127.0.0.1"],
                "internal.test": ["10.0.0.7"],
                "metadata.test": ["169.254.169.254"],
                "mixed.test": ["93.184.216.34", "127.0.0.1"],
            }
        )
        settings = make_settings(
            system.data_dir,
            None,
            database={"url": f"sqlite+aiosqlite:///{system.data_dir / 'orders-attach.db'}"},
            tokens=TokenSettings(
                issuer=ISSUER, identity_url=system.auth, jwks_refresh_interval=timedelta(seconds=1)
            ),
            client=ClientSettings(
                id="orders", secret_file=DataDir(system.data_dir).client_secret("orders")
            ),
            ratelimit=TEST_RATELIMIT,
            outbound=OutboundSettings(
                allow_http=True,
                allowed_ports=[80, 443, files.port],
                test_only_allowed_cidrs=["127.0.0.1/32"],
                test_only_allowed_ports=[files.port],
            ),
        )
        with ServerThread(create_orders(settings, resolver=resolver)) as orders:
            headers = system.bearer(system.token()["access_token"])
            async with httpx.AsyncClient() as client:
                order = await client.post(
                    f"{orders.url}/orders", json={"item": "box", "quantity": 1}, headers=headers
                )
            yield Shop(orders.url, headers, order.json()["id"], canary, files)
        assert canary.hits == 0, "an internal address was reached"


async def attach(shop: Shop, url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.post(
            f"{shop.orders}/orders/{shop.order_id}/attachments",
            json={"url": url},
            headers={**shop.headers, "Cookie": "session=secret-cookie"},
        )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_fetches_and_stores_a_public_file(shop: Shop) -> None:
    """An allowed URL is fetched and stored; the caller's credentials are not forwarded."""
    response = await attach(shop, f"http://files.test:{shop.files.port}/doc.txt")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["size"] == len(b"hello attachment") and body["content_type"] == "text/plain"
    sent = shop.files.requests[-1]
    assert "authorization" not in {k.lower() for k, _ in sent.headers}
    assert "cookie" not in {k.lower() for k, _ in sent.headers}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{canary}/",
        "http://2130706433:{canary}/",
        "http://0x7f000001:{canary}/",
        "http://0177.0.0.1:{canary}/",
        "http://127.1:{canary}/",
        "http://[::ffff:127.0.0.1]:{canary}/",
        "http://localhost:{canary}/",
        "http://localhost.:{canary}/",
        "http://files.test@127.0.0.1:{canary}/",
        "http://internal.test/",
        "http://metadata.test/latest/meta-data/",
        "http://169.254.169.254/latest/meta-data/",
        "http://mixed.test/",
        "http://files.test:{files}/to-canary",
        "http://files.test:{files}/to-metadata",
        "file:///etc/passwd",
        "gopher://127.0.0.1:{canary}/",
    ],
)
async def test_refuses_internal_targets(shop: Shop, template: str) -> None:
    """Internal, odd-spelled and redirected targets get a 4xx problem at once; nothing stored."""
    url = template.format(canary=shop.canary.port, files=shop.files.port)
    response = await attach(shop, url)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"].startswith("outbound_")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_size_cap(shop: Shop) -> None:
    """A body over the attachment cap is refused."""
    response = await attach(shop, f"http://files.test:{shop.files.port}/big")
    assert response.status_code == 422
    assert response.json()["code"].startswith("outbound_")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_someone_elses_order(shop: Shop, system: System) -> None:
    """Attaching to another user's order is 404, before any fetch."""
    other = system.bearer(system.token("olga", system.add_user("olga"))["access_token"])
    before = len(shop.files.requests)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{shop.orders}/orders/{shop.order_id}/attachments",
            json={"url": f"http://files.test:{shop.files.port}/doc.txt"},
            headers=other,
        )
    assert response.status_code == 404
    assert len(shop.files.requests) == before
