"""Protocol versions, suites and renegotiation, probed with the openssl command line.

Debian's openssl refuses TLS 1.0/1.1 on its own at its default security level,
which would make a refusal prove nothing; every probe lowers the client's level
(``DEFAULT:@SECLEVEL=0``) so that only the server can say no. A permissive
control server shows that the same probe does negotiate the old versions.
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from barbacana.transport import Pki, serve_config
from tests.transport.conftest import TLSServer, echo_app, need_tool

LOW = "DEFAULT:@SECLEVEL=0"
# "New, <cipher's own version>, Cipher is <name or (NONE)>", then the session's "Protocol".
CIPHER = re.compile(r"^New, (\S+), Cipher is (\S+)", re.MULTILINE)
PROTOCOL = re.compile(r"^\s+Protocol\s+: (TLSv[0-9.]+)", re.MULTILINE)


def probe(port: int, ca_file: Path, *args: str, stdin: bytes = b"") -> tuple[str | None, str]:
    """Run ``openssl s_client``; return the negotiated version (None: refused) and its output."""
    openssl = need_tool("openssl")
    result = subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca_file), *args],
        input=stdin,
        capture_output=True,
        timeout=20,
        check=False,
    )
    output = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    cipher, protocol = CIPHER.search(output), PROTOCOL.search(output)
    if cipher is None:
        pytest.fail(f"unexpected s_client output:\n{output}")
    if cipher.group(2) == "(NONE)":
        return None, output
    if protocol is not None:
        return protocol.group(1), output
    # The session block can be missing when s_client quits before TLS 1.3's
    # post-handshake messages; a TLS 1.3 suite then names the version by itself.
    assert cipher.group(1) == "TLSv1.3", output
    return cipher.group(1), output


@pytest.fixture
def server(pki: Pki) -> Iterator[TLSServer]:
    config = serve_config(
        echo_app(), credentials=pki.credentials("auth"), port=0, log_level="warning"
    )
    with TLSServer(config) as running:
        yield running


@pytest.fixture
def permissive(pki: Pki) -> Iterator[int]:
    """A deliberately weak server (TLS 1.0+, every suite): the control for each probe."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers(LOW)
    context.load_cert_chain(pki.cert_file("auth"), pki.key_file("auth"))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


class TestVersions:
    """TLS 1.2 and 1.3 only, refused by the server itself below that."""

    @pytest.mark.parametrize(("flag", "name"), [("-tls1", "TLSv1"), ("-tls1_1", "TLSv1.1")])
    def test_old_versions_refused(
        self, pki: Pki, server: TLSServer, permissive: int, flag: str, name: str
    ) -> None:
        control, _ = probe(permissive, pki.ca_file, flag, "-cipher", LOW)
        assert control == name, "the probe itself must be able to speak the old version"
        version, output = probe(server.port, pki.ca_file, flag, "-cipher", LOW)
        assert version is None, output

    @pytest.mark.parametrize(("flag", "name"), [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
    def test_current_versions_accepted(
        self, pki: Pki, server: TLSServer, flag: str, name: str
    ) -> None:
        version, output = probe(server.port, pki.ca_file, flag, "-servername", "localhost")
        assert version == name
        assert "Verify return code: 0 (ok)" in output

    def test_tls13_preferred(self, pki: Pki, server: TLSServer) -> None:
        """A client offering everything gets TLS 1.3."""
        version, _ = probe(server.port, pki.ca_file, "-cipher", LOW)
        assert version == "TLSv1.3"


class TestSuites:
    """Only ECDHE with AEAD in TLS 1.2: CBC, RSA key exchange and SHA-1 MACs are refused."""

    @pytest.mark.parametrize(
        "suite",
        [
            "ECDHE-ECDSA-AES128-SHA256",  # CBC
            "ECDHE-ECDSA-AES256-SHA",  # CBC, SHA-1
            "AES128-GCM-SHA256",  # static RSA key exchange (and no ECDSA key anyway)
        ],
    )
    def test_weak_suite_refused(
        self, pki: Pki, server: TLSServer, permissive: int, suite: str
    ) -> None:
        args = ("-tls1_2", "-cipher", f"{suite}:@SECLEVEL=0")
        if suite.startswith("ECDHE-ECDSA"):
            control, _ = probe(permissive, pki.ca_file, *args)
            assert control == "TLSv1.2", "the control server must accept this suite"
        version, output = probe(server.port, pki.ca_file, *args)
        assert version is None, output

    def test_no_compression(self, pki: Pki, server: TLSServer) -> None:
        _, output = probe(server.port, pki.ca_file, "-tls1_2")
        assert "Compression: NONE" in output


class TestRenegotiation:
    def test_client_renegotiation_refused(self, pki: Pki, server: TLSServer) -> None:
        """``R`` asks s_client to renegotiate mid-connection (TLS 1.2); the server refuses."""
        _, output = probe(
            server.port,
            pki.ca_file,
            "-tls1_2",
            "-servername",
            "localhost",
            stdin=b"R\n",
        )
        assert "RENEGOTIATING" in output
        assert "no renegotiation" in output
