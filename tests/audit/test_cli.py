"""``barbacana audit`` commands against a real trail (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from barbacana.audit import Actor, AuditTrail, leaf_hash, root_hash
from barbacana.storage import Database

from .conftest import cli, cli_args

pytestmark = pytest.mark.postgres


@pytest.fixture
async def trail(open_trail) -> AuditTrail:
    trail = await open_trail(checkpoint_every_events=5)
    for i in range(12):
        await trail.record(
            "auth.login.succeeded" if i % 2 else "auth.login.failed",
            actor=Actor.user(f"user-{i}"),
            outcome="success" if i % 2 else "failure",
        )
    await trail.checkpoint()
    return trail


class TestExport:
    async def test_events_are_the_hashed_bytes(
        self, trail: AuditTrail, db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """Exported events hash to the leaves, whose root is the latest checkpoint's."""
        result = await cli("export", "--events", *cli_args(db, database_url, tmp_path))
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert len(lines) == 12
        leaves = [leaf_hash(line.encode()) for line in lines]
        checkpoints = await trail.store.checkpoints()
        assert root_hash(leaves) == checkpoints[-1].root_hash
        assert [json.loads(line)["seq"] for line in lines] == list(range(12))

    async def test_checkpoints(
        self, trail: AuditTrail, db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """Exported checkpoints are canonical JSON lines with a signature."""
        result = await cli("export", "--checkpoints", *cli_args(db, database_url, tmp_path))
        assert result.exit_code == 0
        sizes = [json.loads(line)["tree_size"] for line in result.stdout.splitlines()]
        assert sizes == [c.tree_size for c in await trail.store.checkpoints()]
        assert sizes[-1] == 12

    @pytest.mark.parametrize("flags", [[], ["--events", "--checkpoints"]])
    async def test_exactly_one_kind(self, tmp_path: Path, flags: list[str]) -> None:
        result = await cli("export", *flags, "--data-dir", str(tmp_path))
        assert result.exit_code == 2


class TestProve:
    async def test_prove_and_verify_with_public_key_only(
        self, trail: AuditTrail, db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """A proof verifies with just the public key; an altered one does not."""
        old = tmp_path / "old.jsonl"
        result = await cli(
            "export", "--checkpoints", *cli_args(db, database_url, tmp_path), "-o", str(old)
        )
        assert result.exit_code == 0
        for i in range(7):
            await trail.record("auth.logout", actor=Actor.user(f"u{i}"), outcome="success")
        await trail.checkpoint()

        proof = tmp_path / "proof.json"
        result = await cli(
            "prove",
            "3",
            *cli_args(db, database_url, tmp_path),
            "--checkpoint",
            str(old),
            "-o",
            str(proof),
        )
        assert result.exit_code == 0, result.output
        document = json.loads(proof.read_text())
        assert document["checkpoint"]["tree_size"] == 19
        assert document["consistency"]["from"]["tree_size"] == 12

        public = tmp_path / "public.pem"
        result = await cli("public-key", "--data-dir", str(tmp_path))
        public.write_text(result.stdout)
        assert public.read_bytes() == (tmp_path / "audit" / "audit-key.pub.pem").read_bytes()

        # The auditor's side: no database, no data directory, only the public key.
        outside = tmp_path / "auditor"
        outside.mkdir()
        (outside / "key.pem").write_bytes(public.read_bytes())
        (outside / "kept.jsonl").write_bytes(old.read_bytes())
        (outside / "proof.json").write_bytes(proof.read_bytes())
        result = await cli(
            "verify-proof",
            str(outside / "proof.json"),
            "--public-key",
            str(outside / "key.pem"),
            "--checkpoint",
            str(outside / "kept.jsonl"),
        )
        assert result.exit_code == 0, result.output
        assert "event 3" in result.output
        assert "extends the checkpoint at size 12" in result.output

        document["event"] = document["event"].replace("user-3", "user-9")
        (outside / "forged.json").write_text(json.dumps(document))
        result = await cli(
            "verify-proof", str(outside / "forged.json"), "--public-key", str(outside / "key.pem")
        )
        assert result.exit_code == 1
        assert "does not hash" in result.output

    async def test_uncovered_event(
        self, trail: AuditTrail, db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """An event newer than the latest checkpoint has no proof yet: run `audit checkpoint`."""
        await trail.record("auth.logout", actor=Actor.user("u"), outcome="success")
        result = await cli("prove", "12", *cli_args(db, database_url, tmp_path))
        assert result.exit_code == 2
        assert "audit checkpoint" in result.output
        await trail.close()
        result = await cli("checkpoint", *cli_args(db, database_url, tmp_path))
        assert result.exit_code == 0, result.output
        result = await cli("prove", "12", *cli_args(db, database_url, tmp_path))
        assert result.exit_code == 0, result.output


class TestVerifyOutput:
    async def test_progress_and_json(
        self, trail: AuditTrail, db: Database, database_url: str, tmp_path: Path, monkeypatch
    ) -> None:
        """Long trails show a progress bar (on stderr); --json reports the same verdict."""
        monkeypatch.setattr("barbacana.cli.audit._PROGRESS_FROM", 5)
        result = await cli("verify", *cli_args(db, database_url, tmp_path))
        assert result.exit_code == 0, result.output
        assert "12 events" in result.stdout
        result = await cli("verify", *cli_args(db, database_url, tmp_path), "--json")
        report = json.loads(result.stdout)
        assert report["ok"] is True
        assert report["events"] == 12
        assert report["macs_checked"] is True
        assert report["problem"] is None


class TestTail:
    async def test_recent(
        self, trail: AuditTrail, db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """--no-follow prints the last N events, oldest first."""
        result = await cli(
            "tail", *cli_args(db, database_url, tmp_path), "-n", "3", "--no-follow", "--json"
        )
        assert result.exit_code == 0, result.output
        assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [9, 10, 11]
        result = await cli("tail", *cli_args(db, database_url, tmp_path), "-n", "2", "--no-follow")
        assert "#11 auth.login.succeeded success actor=user:user-11" in result.stdout

    async def test_control_characters_escaped(
        self, trail: AuditTrail, db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """A user name carrying terminal escapes is printed inert."""
        await trail.record(
            "auth.login.failed",
            actor={"type": "anonymous", "name": "x\x1b[2J\x1b]0;pwned\x07"},
            outcome="failure",
        )
        result = await cli("tail", *cli_args(db, database_url, tmp_path), "-n", "1", "--no-follow")
        assert "\x1b" not in result.stdout
        assert "\\x1b[2J" in result.stdout

    async def test_follow(
        self, trail: AuditTrail, db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """tail follows new events as they are appended."""
        follower = asyncio.create_task(
            cli(
                "tail",
                *cli_args(db, database_url, tmp_path),
                "--after",
                "11",
                "--interval",
                "0.05",
                "--max-events",
                "4",
                "--json",
            )
        )
        for i in range(4):
            await asyncio.sleep(0.05)
            await trail.record("order.created", actor=Actor.user(f"buyer-{i}"), outcome="success")
        result = await asyncio.wait_for(follower, timeout=30)
        assert result.exit_code == 0, result.output
        actors = [json.loads(line)["actor"]["id"] for line in result.stdout.splitlines()]
        assert actors == [f"buyer-{i}" for i in range(4)]


class TestKeys:
    async def test_hmac(self, open_trail, tmp_path: Path) -> None:
        """`audit hmac VALUE` prints the blind index the trail stores."""
        trail = await open_trail(blind_index_fields=["email"])
        result = await cli("hmac", "bob@example.org", "--data-dir", str(tmp_path))
        assert result.exit_code == 0
        assert result.stdout.strip() == trail.blind_index("bob@example.org")
