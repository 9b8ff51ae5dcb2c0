"""``barbacana check`` as an operator runs it: JSON, tables and exit codes.

In-process through typer's runner for the many small cases, and as real
subprocesses against real servers on 127.0.0.1 for the end-to-end ones.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from barbacana.cli.check import check
from tests.checks.conftest import References, subprocess_env
from tests.checks.test_findings import https_server, secured_app
from tests.conftest import ServerThread, free_port

app = typer.Typer(pretty_exceptions_enable=False)
app.command()(check)

#: The same one-command app, for a subprocess (until `check` is registered in barbacana.cli).
HARNESS = (
    "import typer; from barbacana.cli.check import check; "
    "app = typer.Typer(pretty_exceptions_enable=False); app.command()(check); app()"
)


def invoke(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def found_ids(document: dict[str, Any]) -> list[str]:
    return [finding["id"] for finding in document["findings"]]


class TestInProcess:
    def test_reference_passes(self, references: References) -> None:
        """The data directory `barbacana up` prepares: exit 0, no finding."""
        code, document = invoke("--data-dir", str(references.development))
        assert code == 0
        assert document == {
            "ok": True,
            "profile": "development",
            "summary": {"error": 0, "warning": 0, "info": 0},
            "findings": [],
        }

    def test_table_output(self, references: References, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without --json: a table with ids and fixes, a verdict, and the profile caveat."""
        monkeypatch.setenv("BARBACANA_AUDIT_ON_FAILURE", "continue")
        result = CliRunner().invoke(app, ["--data-dir", str(references.development)])
        assert result.exit_code == 0
        assert "BRB-W051" in result.stdout
        assert "no blocking finding" in result.stdout
        assert "production-only checks were skipped" in result.stdout

    def test_error_exits_1(self, references: References, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BARBACANA_AUDIT_ENABLED", "false")
        code, document = invoke("--data-dir", str(references.development))
        assert code == 1
        assert document["ok"] is False
        assert found_ids(document) == ["BRB-E050"]
        assert document["findings"][0]["severity"] == "error"

    def test_fail_level(self, references: References, monkeypatch: pytest.MonkeyPatch) -> None:
        """A warning passes by default and fails with --fail-level warning."""
        monkeypatch.setenv("BARBACANA_WEB_HSTS_MAX_AGE", "0")
        assert invoke("--data-dir", str(references.development))[0] == 0
        code, document = invoke(
            "--data-dir", str(references.development), "--fail-level", "warning"
        )
        assert code == 1
        assert found_ids(document) == ["BRB-W012"]

    def test_plain_http_option(self, references: References) -> None:
        code, document = invoke("--data-dir", str(references.development), "--plain-http")
        assert code == 1
        assert found_ids(document) == ["BRB-E010"]

    def test_unloadable_settings(
        self, references: References, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Settings that do not load are a finding (E000) naming the field, not the value;
        the environment is still searched for HMAC leftovers."""
        value = secrets.token_urlsafe(24)
        monkeypatch.setenv("BARBACANA_TOKENS_ALGORITHM", "HS256")
        monkeypatch.setenv("BARBACANA_TOKENS_SECRET", value)
        code, document = invoke("--data-dir", str(references.development))
        assert code == 1
        assert document["profile"] is None
        # E001 for the algorithm; the 32-byte secret is long enough but useless (W003).
        assert found_ids(document) == ["BRB-E000", "BRB-E001", "BRB-W003"]
        detail = document["findings"][0]["detail"]
        assert "tokens.algorithm" in detail
        assert "tokens.secret" in detail
        assert value not in json.dumps(document)

    def test_dotenv_is_read(
        self, references: References, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """A .env file is part of the environment the services get, so it is checked too."""
        (tmp_path / ".env").write_text("JWT_SECRET=short\n")
        monkeypatch.chdir(tmp_path)
        code, document = invoke("--data-dir", str(references.development))
        assert code == 1
        assert found_ids(document) == ["BRB-E002"]

    @pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "127.0.0.1:8000", "https://u:p@h/"])
    def test_bad_url_is_misuse(self, references: References, url: str) -> None:
        result = CliRunner().invoke(app, ["--data-dir", str(references.development), "--url", url])
        assert result.exit_code == 2

    def test_unreachable_service(self, references: References) -> None:
        code, document = invoke(
            "--data-dir", str(references.development), "--url", f"https://127.0.0.1:{free_port()}"
        )
        assert code == 1
        assert found_ids(document) == ["BRB-E095"]

    def test_bad_ca_file_is_misuse(self, references: References, tmp_path: Path) -> None:
        bogus = tmp_path / "ca.pem"
        bogus.write_text("not a certificate")
        result = CliRunner().invoke(
            app,
            [
                "--data-dir",
                str(references.development),
                "--url",
                "https://127.0.0.1:1",
                "--ca",
                str(bogus),
            ],
        )
        assert result.exit_code == 2


def _registered() -> bool:
    from barbacana.cli._app import app as barbacana

    return any(command.name == "check" for command in barbacana.registered_commands)


def barbacana_check(*args: str, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Run `barbacana check ... --json` in a subprocess; return its exit code and JSON."""
    if _registered():
        command = [sys.executable, "-m", "barbacana.cli", "check", *args, "--json"]
    else:
        command = [sys.executable, "-c", HARNESS, *args, "--json"]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stderr.strip() == "" or done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


@pytest.mark.slow
class TestSubprocess:
    def test_reference_passes(self, references: References) -> None:
        code, document = barbacana_check(
            "--data-dir", str(references.development), env=subprocess_env()
        )
        assert (code, document["findings"]) == (0, [])

    def test_plain_http_service_is_flagged(self, references: References) -> None:
        """A secured app served over plain HTTP: E010 names the URL, exit 1."""
        with ServerThread(secured_app(), server_header=False) as server:
            code, document = barbacana_check(
                "--data-dir", str(references.development), "--url", server.url, env=subprocess_env()
            )
        assert code == 1
        assert [(f["id"], f["target"]) for f in document["findings"]] == [("BRB-E010", server.url)]

    def test_docs_exposed_in_production(self, references: References) -> None:
        """Over HTTPS, configured without docs, but the running service serves them: W092 only."""
        env = subprocess_env(
            BARBACANA_PROFILE="production",
            BARBACANA_WEB_DOCS="false",
            BARBACANA_SECRETS_DIR=str(references.mounted_secrets),
        )
        ca = str(references.development / "pki" / "ca.pem")
        with https_server(references, secured_app(docs=True)) as server:
            args = ("--data-dir", str(references.production), "--url", server.url, "--ca", ca)
            code, document = barbacana_check(*args, env=env)
            strict, _ = barbacana_check(*args, "--fail-level", "warning", env=env)
        assert code == 0
        assert strict == 1
        assert document["profile"] == "production"
        assert sorted(f["target"] for f in document["findings"]) == [
            f"{server.url}/docs",
            f"{server.url}/openapi.json",
        ]
        assert set(found_ids(document)) == {"BRB-W092"}

    def test_registered_in_barbacana_cli(self, references: References) -> None:
        """`python -m barbacana.cli check` is the command operators run."""
        if not _registered():
            pytest.skip("the check command is not registered in barbacana.cli yet")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "barbacana.cli",
                "check",
                "--data-dir",
                str(references.development),
            ],
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "no blocking finding" in done.stdout
