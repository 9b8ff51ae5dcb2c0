"""TLS scanners against a service: nothing below TLS 1.2, no weak suite, a sound certificate.

The only findings tolerated are those a private CA with short-lived
certificates produces by design, each named below with its reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from barbacana.transport import Pki, serve_config
from tests.conftest import missing
from tests.transport.conftest import TLSServer, echo_app, need_tool

pytestmark = pytest.mark.slow

#: testssl findings that are the design, not a defect.
TESTSSL_EXPECTED = {
    # Service certificates live 7 days on purpose (renewed and reloaded live).
    "cert_expirationStatus": "short-lived by design",
    "cert_notAfter": "short-lived by design",
    # A private CA publishes no CRL or OCSP: short lifetimes replace revocation.
    "cert_revocation": "private CA",
    # CAA records are for public CAs and public DNS.
    "DNS_CAArecord": "private CA",
    # The scanner's own openssl build, not the server.
    "engine_problem": "scanner environment",
}
#: Checks of session resumption (a performance feature, not a security property)
#: that testssl sometimes cannot complete: TLS 1.3 tickets arrive after the
#: handshake, and its probe may quit first ("check failed ...").
TESTSSL_INCONCLUSIVE = ("sessionresumption_ticket", "sessionresumption_ID")
AEAD_TLS12 = re.compile(r"^ECDHE-ECDSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$")


@pytest.fixture
def server(pki: Pki) -> Iterator[TLSServer]:
    config = serve_config(
        echo_app(), credentials=pki.credentials("auth"), port=0, log_level="warning"
    )
    with TLSServer(config) as running:
        yield running


def test_testssl_finds_nothing_weak(pki: Pki, server: TLSServer, tmp_path: Path) -> None:
    testssl = need_tool("testssl")
    report = tmp_path / "testssl.json"
    subprocess.run(
        [
            testssl,
            "-p",  # protocols
            "-E",  # every suite, per protocol
            "-S",  # server defaults: certificate checks
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--add-ca",
            str(pki.ca_file),
            "--jsonfile",
            str(report),
            f"127.0.0.1:{server.port}",
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        check=False,
    )
    findings: dict[str, dict[str, Any]] = {f["id"]: f for f in json.loads(report.read_text())}
    for version in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert findings[version]["finding"] == "not offered", findings[version]
    assert findings["TLS1_2"]["finding"] == "offered"
    assert findings["TLS1_3"]["finding"].startswith("offered")
    suites = {
        f["finding"].split()[3]: f["id"] for f in findings.values() if f["id"].startswith("cipher-")
    }
    tls12 = [name for name, ident in suites.items() if ident.startswith("cipher-tls1_2")]
    tls13 = [name for name, ident in suites.items() if ident.startswith("cipher-tls1_3")]
    assert tls12, "no TLS 1.2 suite reported"
    assert all(AEAD_TLS12.match(name) for name in tls12), tls12
    assert not any(
        ident.startswith(("cipher-tls1_1", "cipher-tls1_x")) for ident in suites.values()
    )
    assert set(tls13) <= {
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    }
    assert findings["cert_chain_of_trust"]["finding"] == "passed."
    assert findings["cert_trust"]["severity"] == "OK"
    problems = {
        ident: f"{f['severity']}: {f['finding']}"
        for ident, f in findings.items()
        if f["severity"] not in ("OK", "INFO")
        and ident not in TESTSSL_EXPECTED
        and not (ident in TESTSSL_INCONCLUSIVE and f["finding"].startswith("check failed"))
    }
    assert problems == {}


def _sslyze() -> list[str]:
    """``uvx`` running sslyze from the local uv cache only (tests contact nothing outside)."""
    uvx = shutil.which("uvx")
    if uvx is None:
        missing("uvx is not installed")
    assert uvx is not None
    command = [uvx, "--offline", "--from", "sslyze==6.3.1", "sslyze"]
    probe = subprocess.run([*command, "--help"], capture_output=True, timeout=120, check=False)
    if probe.returncode != 0:
        missing("sslyze 6.3.1 is not in the uv cache (uvx --from sslyze==6.3.1 sslyze --help)")
    return command


def test_sslyze_finds_nothing_weak(pki: Pki, server: TLSServer, tmp_path: Path) -> None:
    command = _sslyze()
    report = tmp_path / "sslyze.json"
    scans = ["--certinfo", "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3"]
    scans += ["--compression", "--reneg", "--heartbleed", "--robot", "--fallback"]
    subprocess.run(
        [
            *command,
            "--mozilla_config=disable",
            f"--certinfo_ca_file={pki.ca_file}",
            *scans,
            f"--json_out={report}",
            f"127.0.0.1:{server.port}",
        ],
        capture_output=True,
        timeout=300,
        check=False,
    )
    result = json.loads(report.read_text())["server_scan_results"][0]
    assert result["scan_status"] == "COMPLETED"
    scan = {name: entry["result"] for name, entry in result["scan_result"].items() if entry}
    for version in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"):
        assert scan[f"{version}_cipher_suites"]["accepted_cipher_suites"] == [], version
    tls12 = [
        s["cipher_suite"]["openssl_name"]
        for s in scan["tls_1_2_cipher_suites"]["accepted_cipher_suites"]
    ]
    assert tls12
    assert all(AEAD_TLS12.match(name) for name in tls12), tls12
    assert scan["tls_1_3_cipher_suites"]["accepted_cipher_suites"]
    assert scan["tls_compression"]["supports_compression"] is False
    assert scan["session_renegotiation"]["is_vulnerable_to_client_renegotiation_dos"] is False
    assert scan["tls_fallback_scsv"]["supports_fallback_scsv"] is True
    assert scan["heartbleed"]["is_vulnerable_to_heartbleed"] is False
    deployment = scan["certificate_info"]["certificate_deployments"][0]
    ours = [
        p
        for p in deployment["path_validation_results"]
        if p["trust_store"]["path"] == str(pki.ca_file)
    ]
    assert ours
    assert ours[0]["was_validation_successful"] is True
    assert deployment["verified_chain_has_sha1_signature"] is False
    assert deployment["received_chain_has_valid_order"] is True
