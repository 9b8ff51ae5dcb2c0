"""Certificate renewal under load: no request fails, new connections get the new certificate."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time
from pathlib import Path

import httpx
import pytest

from barbacana.transport import CertificateReloader, Pki, TLSContextError, serve_config
from tests.transport.conftest import TLSServer, echo_app, mtls_context, serial_of

DURATION = 5.0  # seconds of load
MAX_REQUESTS = 1500  # hard cap, whatever the machine's speed
ROTATE_AFTER = 1.5  # seconds into the load


@dataclasses.dataclass
class Outcome:
    kind: str
    at: float
    ok: bool
    handshake_serial: int | None = None
    echoed_serial: int | None = None
    client_port: int | None = None
    error: str = ""
    end: float = 0.0


def _server_serial(response: httpx.Response) -> tuple[int, int]:
    stream = response.extensions["network_stream"]
    tls: ssl.SSLObject = stream.get_extra_info("ssl_object")
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return serial_of(der), stream.get_extra_info("client_addr")[1]


@pytest.mark.slow
async def test_renewal_under_load(pki: Pki) -> None:
    config = serve_config(
        echo_app(),
        credentials=pki.credentials("orders"),
        port=0,
        require_client_cert=True,
        log_level="warning",
    )
    context = mtls_context(pki, "auth")
    old_serial = pki.info("orders").serial_number
    outcomes: list[Outcome] = []
    start = time.monotonic()
    rotated: dict[str, float | int] = {}

    def done() -> bool:
        return time.monotonic() - start > DURATION or len(outcomes) >= MAX_REQUESTS

    async def call(client: httpx.AsyncClient, url: str, kind: str) -> None:
        at = time.monotonic() - start
        try:
            response = await client.get(url)
            response.raise_for_status()
            handshake, port = _server_serial(response)
            echoed = serial_of(response.json()["tls"]["server_cert"])
            end = time.monotonic() - start
            outcomes.append(Outcome(kind, at, True, handshake, echoed, port, end=end))
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            outcomes.append(Outcome(kind, at, False, error=repr(exc)))

    async def keepalive(url: str) -> None:
        async with httpx.AsyncClient(verify=context, timeout=10) as client:
            while not done():
                await call(client, url, "keepalive")

    async def fresh(url: str) -> None:
        while not done():
            async with httpx.AsyncClient(verify=context, timeout=10) as client:
                await call(client, url, "fresh")

    async def rotate() -> None:
        await asyncio.sleep(ROTATE_AFTER)
        rotated["at"] = time.monotonic() - start
        info = await asyncio.to_thread(pki.rotate, "orders")
        rotated["serial"] = info.serial_number

    with TLSServer(config) as server:
        url = f"{server.url}/whoami"
        await asyncio.gather(
            keepalive(url), keepalive(url), fresh(url), fresh(url), fresh(url), rotate()
        )
        # If the load ended before the reload (a very slow machine), keep dialling
        # new connections, boundedly, until the new certificate shows up.
        deadline = time.monotonic() + 15
        while not any(o.handshake_serial == rotated["serial"] for o in outcomes):
            if time.monotonic() > deadline:
                break
            async with httpx.AsyncClient(verify=context, timeout=10) as client:
                await call(client, url, "fresh")
        assert config.reloader is not None
        reloads = config.reloader.reloads

    failures = [o for o in outcomes if not o.ok]
    assert failures == [], failures[:5]
    new_serial = rotated["serial"]
    assert new_serial != old_serial
    assert reloads == 1
    fresh_calls = [o for o in outcomes if o.kind == "fresh"]
    assert {o.handshake_serial for o in fresh_calls} == {old_serial, new_serial}
    # Once a new connection got the new certificate, every connection opened
    # after that got it too (no flip-flop between the old and new pair).
    first_new = min(
        (o for o in fresh_calls if o.handshake_serial == new_serial), key=lambda o: o.end
    )
    later = [o for o in fresh_calls if o.at > first_new.end]
    assert all(o.handshake_serial == new_serial for o in later)
    # The scope's server_cert is the certificate of that very handshake.
    assert all(o.echoed_serial == o.handshake_serial for o in outcomes)
    # Keep-alive connections opened before the renewal kept serving after it.
    kept = {o.client_port for o in outcomes if o.kind == "keepalive" and o.at < rotated["at"]}
    after = {o.client_port for o in outcomes if o.kind == "keepalive" and o.at > rotated["at"] + 1}
    assert kept & after

    switch_at = first_new.at
    print(
        f"\nrenewal under load: {len(outcomes)} requests "
        f"({len(fresh_calls)} on new connections) in {outcomes[-1].at:.1f} s, "
        f"0 failed; rotated at {rotated['at']:.2f} s, first new-certificate "
        f"handshake at {switch_at:.2f} s"
    )


class TestReloader:
    """The reloader never leaves the live context without a usable key."""

    def test_mismatched_pair_is_skipped(self, pki: Pki, tmp_path: Path) -> None:
        """A certificate caught without its new key is not loaded; the old pair keeps working."""
        creds = pki.credentials("orders")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(creds.cert_file, creds.key_file)
        reloader = CertificateReloader(context, creds.cert_file, creds.key_file)
        before = reloader.certificate.serial_number
        old_key = creds.key_file.read_bytes()
        pki.rotate("orders")
        creds.key_file.write_bytes(old_key)  # new certificate, old key: a half renewal
        assert reloader.check() is False
        assert reloader.reloads == 0
        assert reloader.certificate.serial_number == before
        with pytest.raises(TLSContextError, match="does not match"):
            reloader.reload()
        # The context still completes handshakes with the old pair.
        _handshake(context, pki)
        pki.rotate("orders")  # a complete renewal is then picked up
        assert reloader.check() is True
        assert reloader.certificate.serial_number == pki.info("orders").serial_number
        assert _handshake(context, pki) == pki.info("orders").serial_number

    def test_unchanged_files_are_not_reloaded(self, pki: Pki) -> None:
        creds = pki.credentials("orders")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        reloader = CertificateReloader(context, creds.cert_file, creds.key_file)
        assert reloader.check() is False
        assert reloader.reloads == 0


def _handshake(server_context: ssl.SSLContext, pki: Pki) -> int:
    """Handshake in memory against ``server_context``; return the served certificate's serial."""
    client = mtls_context(pki, None)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    server_side = server_context.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client_side, server_side):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if client_side.version() and server_side.version():
            break
    der = client_side.getpeercert(binary_form=True)
    assert der is not None
    return serial_of(der)
