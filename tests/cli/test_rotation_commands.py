"""``barbacana clients`` and ``barbacana apikeys rotate`` as an operator runs them."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from barbacana.cli._admin import bootstrap, identity_context
from barbacana.cli._app import app
from barbacana.identity import InvalidClientError
from barbacana.services._runtime import DataDir
from barbacana.settings import Settings
from tests.conftest import make_settings


class Operator:
    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self.env = {
            "BARBACANA_DATABASE_URL": database_url,
            "BARBACANA_IDENTITY_PASSWORD_PROFILE": "test_only_cheap",
        }

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(app, [*args, "--data-dir", str(self.data_dir)], env=self.env)

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def authenticates(self, client_id: str, secret: str) -> bool:
        async def go() -> bool:
            async with identity_context(self.settings, keys=False) as identity:
                try:
                    await identity.clients.authenticate(client_id, secret)
                except InvalidClientError:
                    return False
                return True

        return asyncio.run(go())


@pytest.fixture
def operator(tmp_path: Path, database_url: str) -> Operator:
    settings = make_settings(tmp_path, database_url)
    asyncio.run(bootstrap(settings))
    return Operator(settings, database_url)


class TestClients:
    def test_list_shows_the_overlap_of_a_rotation(self, operator: Operator) -> None:
        """While a rotation overlaps, the list says until when; never a secret."""
        listed = operator.json("clients", "list")
        assert [(c["client_id"], c["previous_valid_until"]) for c in listed] == [
            ("chat", None),
            ("orders", None),
        ]
        [row] = operator.json("clients", "rotate-secret", "orders", "--overlap", "2h")
        listed = {c["client_id"]: c for c in operator.json("clients", "list")}
        assert listed["orders"]["previous_valid_until"] == row["previous_valid_until"]
        secret = DataDir(operator.data_dir).client_secret("orders").read_text()
        assert secret not in json.dumps(listed)

    def test_rotation_writes_the_file_the_service_reads(self, operator: Operator) -> None:
        """The new secret replaces the file (owner-only), and the old one still authenticates."""
        path = DataDir(operator.data_dir).client_secret("orders")
        old = path.read_text()
        result = operator.run("clients", "rotate-secret", "orders", "--overlap", "15m")
        assert result.exit_code == 0, result.output
        new = path.read_text()
        assert new != old and new not in result.output
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
        assert operator.authenticates("orders", old) and operator.authenticates("orders", new)

    def test_show_prints_once_and_leaves_the_file(self, operator: Operator) -> None:
        """--show is for secrets kept elsewhere: printed, not written."""
        path = DataDir(operator.data_dir).client_secret("chat")
        before = path.read_text()
        [row] = operator.json("clients", "rotate-secret", "chat", "--show")
        assert path.read_text() == before
        assert operator.authenticates("chat", row["client_secret"])

    def test_secret_file_option(self, operator: Operator, tmp_path: Path) -> None:
        """--secret-file writes where a service of one's own reads its secret."""
        target = tmp_path / "elsewhere" / "billing.secret"
        [row] = operator.json(
            "clients", "rotate-secret", "chat", "--secret-file", str(target), "--overlap", "0"
        )
        assert row["secret_file"] == str(target)
        assert operator.authenticates("chat", target.read_text())
        old = DataDir(operator.data_dir).client_secret("chat").read_text()
        assert not operator.authenticates("chat", old)  # no overlap

    def test_unwritable_target_rotates_nothing(self, operator: Operator, tmp_path: Path) -> None:
        """A secret that could not be stored must not replace the current one."""
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("")
        result = operator.run(
            "clients", "rotate-secret", "orders", "--secret-file", str(blocker / "secret")
        )
        assert result.exit_code == 1 and "nothing was rotated" in result.output
        assert operator.json("clients", "list")[1]["previous_valid_until"] is None

    def test_operator_mistakes(self, operator: Operator) -> None:
        """Bad durations, unknown clients and a rotation inside an overlap are explained."""
        bad = operator.run("clients", "rotate-secret", "orders", "--overlap", "soon")
        assert bad.exit_code == 2 and "not a duration" in bad.output
        too_long = operator.run("clients", "rotate-secret", "orders", "--overlap", "31d")
        assert too_long.exit_code == 2 and "30 days" in too_long.output
        unknown = operator.run("clients", "rotate-secret", "nobody")
        assert unknown.exit_code == 1 and "no client 'nobody'" in unknown.output
        assert operator.run("clients", "rotate-secret", "orders").exit_code == 0
        again = operator.run("clients", "rotate-secret", "orders")
        assert again.exit_code == 1 and "force" in again.output
        forced = operator.run("clients", "rotate-secret", "orders", "--force", "--overlap", "0")
        assert forced.exit_code == 0, forced.output


class TestApiKeys:
    def test_rotate_list_and_mistakes(self, operator: Operator) -> None:
        """The new key is printed once; the list shows which key replaced which, and until when."""
        [created] = operator.json(
            "apikeys", "create", "--name", "export", "--owner", "admin", "--scope", "orders:read"
        )
        [rotated] = operator.json("apikeys", "rotate", created["id"], "--overlap", "1h")
        assert rotated["replaces"] == created["id"]
        assert rotated["key"].startswith("brb_") and rotated["key"] != created["key"]
        listed = {k["id"]: k for k in operator.json("apikeys", "list")}
        assert listed[created["id"]]["replaced_by"] == rotated["id"]
        assert listed[created["id"]]["retire_at"] == rotated["previous_valid_until"]
        assert listed[created["id"]]["revoked_at"] is None
        assert created["key"] not in json.dumps(listed) and rotated["key"] not in json.dumps(listed)

        again = operator.run("apikeys", "rotate", created["id"])
        assert again.exit_code == 1 and rotated["id"] in again.output
        unknown = operator.run("apikeys", "rotate", "000000000000")
        assert unknown.exit_code == 1 and "no such active API key" in unknown.output

        [now] = operator.json("apikeys", "rotate", rotated["id"], "--overlap", "0")
        listed = {k["id"]: k for k in operator.json("apikeys", "list")}
        assert listed[rotated["id"]]["revoked_at"] is not None
        assert listed[now["id"]]["revoked_at"] is None
