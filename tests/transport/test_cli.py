"""``barbacana pki`` and ``barbacana proxy-config`` through typer's runner, as a user types them."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from barbacana.cli import pki as pki_cli
from barbacana.cli import proxy as proxy_cli
from tests.transport.conftest import need_tool

runner = CliRunner()


def pki(*args: str) -> tuple[int, str]:
    result = runner.invoke(pki_cli.app, list(args))
    return result.exit_code, result.output


class TestPki:
    def test_init_issue_list_rotate(self, tmp_path: Path) -> None:
        data = str(tmp_path / "data")
        code, out = pki("init", "--data-dir", data, "--json")
        assert code == 0, out
        assert json.loads(out)[0]["kind"] == "ca"
        key = tmp_path / "data" / "pki" / "ca-key.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600

        code, out = pki("init", "--data-dir", data)
        assert code == 1
        assert "already exists" in out

        code, out = pki(
            "issue", "orders", "--dns", "orders", "--dns", "localhost", "--ip", "127.0.0.1",
            "--data-dir", data, "--json",
        )  # fmt: skip
        assert code == 0, out
        issued = json.loads(out)[0]
        assert issued["spiffe_id"] == "spiffe://barbacana.internal/svc/orders"
        assert issued["dns"] == "orders,localhost"
        assert issued["ip"] == "127.0.0.1"
        assert 6.9 < issued["days_left"] <= 7.0

        code, out = pki("issue", "tests", "--client", "--days", "1", "--data-dir", data, "--json")
        assert code == 0, out
        assert json.loads(out)[0]["kind"] == "client"

        code, out = pki("list", "--data-dir", data, "--json")
        assert code == 0, out
        assert [(r["name"], r["kind"]) for r in json.loads(out)] == [
            ("ca", "ca"),
            ("orders", "service"),
            ("tests", "client"),
        ]
        code, out = pki("list", "--data-dir", data)
        assert code == 0
        assert "orders" in out
        assert "days_left" in out

        code, out = pki("rotate", "orders", "--data-dir", data, "--json")
        assert code == 0, out
        rotated = json.loads(out)[0]
        assert rotated["serial"] != issued["serial"]
        assert rotated["dns"] == issued["dns"]

    def test_errors_are_messages(self, tmp_path: Path) -> None:
        data = str(tmp_path / "data")
        code, out = pki("issue", "orders", "--data-dir", data)
        assert code == 1
        assert "no CA" in out
        pki("init", "--data-dir", data)
        code, out = pki("issue", "../evil", "--data-dir", data)
        assert code == 1
        assert "not a valid name" in out
        code, out = pki("rotate", "ghost", "--data-dir", data)
        assert code == 1
        assert "does not exist" in out
        assert "Traceback" not in out

    def test_passphrase_file(self, tmp_path: Path) -> None:
        data = str(tmp_path / "data")
        secret = tmp_path / "passphrase"
        secret.write_text("correct horse battery staple\n")
        code, out = pki("init", "--data-dir", data, "--passphrase-file", str(secret))
        assert code == 0, out
        assert b"ENCRYPTED" in (tmp_path / "data" / "pki" / "ca-key.pem").read_bytes()
        code, out = pki("issue", "orders", "--data-dir", data)
        assert code == 1
        assert "passphrase" in out
        code, out = pki("issue", "orders", "--data-dir", data, "--passphrase-file", str(secret))
        assert code == 0, out


class TestProxyConfig:
    def test_writes_a_config(self, tmp_path: Path) -> None:
        out = tmp_path / "front" / "nginx.conf"
        result = runner.invoke(
            proxy_cli.app,
            [
                "nginx", "--auth", "127.0.0.1:9001", "--orders", "127.0.0.1:9002",
                "--chat", "127.0.0.1:9003", "--listen-https", "9443", "--listen-http", "9080",
                "--data-dir", str(tmp_path / "data"), "--out", str(out),
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        text = out.read_text()
        assert "listen 127.0.0.1:9443 ssl" in text
        assert "return 301 https://localhost:9443$request_uri;" in text
        assert "server 127.0.0.1:9002;" in text
        # nginx's own certificate was issued in the data directory's PKI.
        proxy_cert = tmp_path / "data" / "pki" / "proxy.pem"
        assert proxy_cert.exists()
        assert f'ssl_certificate "{proxy_cert.resolve()}";' in text

    def test_stdout_and_errors(self, tmp_path: Path) -> None:
        result = runner.invoke(
            proxy_cli.app, ["nginx", "--orders", "127.0.0.1:9002", "--data-dir", str(tmp_path)]
        )
        assert result.exit_code == 0, result.output
        assert "upstream barbacana_orders" in result.output
        result = runner.invoke(proxy_cli.app, ["nginx", "--data-dir", str(tmp_path)])
        assert result.exit_code == 1
        assert "give at least one" in result.output
        result = runner.invoke(
            proxy_cli.app, ["nginx", "--auth", "localhost:1;evil", "--data-dir", str(tmp_path)]
        )
        assert result.exit_code == 1
        assert "HOST:PORT" in result.output

    def test_nginx_accepts_it(self, tmp_path: Path) -> None:
        nginx = need_tool("nginx")
        out = tmp_path / "front" / "nginx.conf"
        result = runner.invoke(
            proxy_cli.app,
            [
                "nginx",
                "--auth",
                "127.0.0.1:9001",
                "--data-dir",
                str(tmp_path / "d"),
                "--out",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        check = subprocess.run(
            [nginx, "-t", "-p", str(out.parent), "-c", "nginx.conf", "-e", "stderr"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        assert "test is successful" in check.stderr
