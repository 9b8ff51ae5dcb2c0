"""Attacks on a stored trail, by someone with write access to the database.

The attacker drops the append-only triggers and edits rows with raw SQL; the
real CLI (``barbacana audit verify``) must fail and name the right position.
They do not have the audit key files (outside the database).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from sqlalchemy import text

from barbacana.audit import Actor, CompactRange, canonical_json, leaf_hash
from barbacana.storage import Database

from .conftest import cli, cli_args, drop_triggers, execute, fetch

pytestmark = pytest.mark.postgres

SIZE = 40


@pytest.fixture
async def trail_db(open_trail, db: Database) -> Database:
    """A closed trail of 40 events with checkpoints at 1, 9, 17, 25, 33 and 40."""
    trail = await open_trail(checkpoint_every_events=8)
    for i in range(SIZE):
        await trail.record(
            "order.created",
            actor=Actor.user(f"user-{i}"),
            outcome="success",
            resource=f"order:{i}",
            details={"amount": i * 10},
        )
    await trail.close()
    return db


async def verify(db: Database, database_url: str, tmp_path: Path, *extra: str) -> tuple[int, str]:
    result = await cli("verify", *cli_args(db, database_url, tmp_path), *extra)
    return result.exit_code, result.output


async def body_of(db: Database, seq: int) -> dict[str, object]:
    rows = await fetch(db, f"SELECT body FROM audit_events WHERE seq = {seq}")
    return json.loads(rows[0].body)


async def rewrite(db: Database, seq: int, body: dict[str, object], *, fix_hash: bool) -> None:
    raw = canonical_json(body)
    statement = "UPDATE audit_events SET body = :body" + (", leaf_hash = :leaf" if fix_hash else "")
    await execute(
        db,
        statement + " WHERE seq = :seq",
        params={"body": raw.decode(), "leaf": leaf_hash(raw), "seq": seq},
    )


async def renumber(db: Database, where: str, delta: int) -> None:
    """Shift seq of the rows matching ``where`` by ``delta`` (two steps: the key is unique)."""
    await execute(
        db,
        f"UPDATE audit_events SET seq = seq + ({delta}) + 1000000 WHERE {where}",
        "UPDATE audit_events SET seq = seq - 1000000 WHERE seq >= 1000000",
    )


class TestUntouched:
    async def test_verifies(self, trail_db: Database, database_url: str, tmp_path: Path) -> None:
        """An untouched trail verifies, with every checkpoint checked."""
        code, output = await verify(trail_db, database_url, tmp_path)
        assert code == 0, output
        assert "OK" in output
        assert "40 events" in output
        assert "6 checkpoints" in output

    async def test_triggers_still_protect(self, trail_db: Database) -> None:
        """Without dropping the triggers, the edits below are impossible."""
        with pytest.raises(Exception, match="append-only"):
            await execute(trail_db, "DELETE FROM audit_events WHERE seq = 3")


class TestTampering:
    """Each edit is caught at the right sequence number."""

    async def test_changed_field(
        self, trail_db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """A changed field, hash left alone: the leaf hash no longer matches."""
        await drop_triggers(trail_db)
        body = await body_of(trail_db, 13)
        body["details"] = {"amount": 1}
        await rewrite(trail_db, 13, body, fix_hash=False)
        code, output = await verify(trail_db, database_url, tmp_path)
        assert code == 1
        assert "at seq 13: changed" in output

    async def test_changed_field_with_recomputed_hash(
        self, trail_db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """A changed field with its leaf hash recomputed: the event MAC names it."""
        await drop_triggers(trail_db)
        body = await body_of(trail_db, 13)
        body["actor"] = {"type": "user", "id": "mallory", "name": None, "address": None}
        await rewrite(trail_db, 13, body, fix_hash=True)
        await execute(trail_db, "UPDATE audit_events SET actor_id = 'mallory' WHERE seq = 13")
        code, output = await verify(trail_db, database_url, tmp_path)
        assert code == 1
        assert "at seq 13: changed" in output
        assert "MAC" in output

    async def test_changed_with_public_key_only(
        self, trail_db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """Without the HMAC key, the next signed checkpoint still catches the change."""
        await drop_triggers(trail_db)
        body = await body_of(trail_db, 13)
        body["outcome"] = "failure"
        await rewrite(trail_db, 13, body, fix_hash=True)
        await execute(trail_db, "UPDATE audit_events SET outcome = 'failure' WHERE seq = 13")
        public = tmp_path / "audit" / "audit-key.pub.pem"
        url = (
            database_url
            if trail_db.dialect == "postgresql"
            else f"sqlite:///{tmp_path}/barbacana.db"
        )
        result = await cli("verify", "--database-url", url, "--public-key", str(public))
        assert result.exit_code == 1
        assert "at seq 9: changed" in result.output
        assert "signed at size 17" in result.output

    async def test_changed_column_only(
        self, trail_db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """A query column that disagrees with the hashed event is a change."""
        await drop_triggers(trail_db)
        await execute(trail_db, "UPDATE audit_events SET action = 'auth.logout' WHERE seq = 21")
        code, output = await verify(trail_db, database_url, tmp_path)
        assert code == 1
        assert "at seq 21: changed" in output
        assert "action" in output

    async def test_deleted_row(self, trail_db: Database, database_url: str, tmp_path: Path) -> None:
        """A deleted row leaves a gap."""
        await drop_triggers(trail_db)
        await execute(trail_db, "DELETE FROM audit_events WHERE seq = 20")
        code, output = await verify(trail_db, database_url, tmp_path)
        assert code == 1
        assert "at seq 20: deleted" in output

    async def test_deleted_and_renumbered(
        self, trail_db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """A deleted row whose gap was closed by renumbering is still a deletion at 20."""
        await drop_triggers(trail_db)
        await execute(trail_db, "DELETE FROM audit_events WHERE seq = 20")
        await renumber(trail_db, "seq > 20", -1)
        code, output = await verify(trail_db, database_url, tmp_path)
        assert code == 1
        assert "at seq 20: deleted" in output

    async def test_inserted_row(
        self, trail_db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """A forged event slipped in at 20 (later rows pushed down) is an insertion at 20."""
        await drop_triggers(trail_db)
        forged = await body_of(trail_db, 19)
        forged["seq"] = 20
        forged["actor"] = {"type": "user", "id": "mallory", "name": None, "address": None}
        raw = canonical_json(forged)
        await renumber(trail_db, "seq >= 20", 1)
        await execute(
            trail_db,
            "INSERT INTO audit_events (seq, ts_us, service, action, outcome, actor_type, actor_id,"
            " resource, request_id, body, leaf_hash, mac) SELECT 20, ts_us, service, action,"
            " outcome, actor_type, 'mallory', resource, request_id, :body, :leaf, :mac"
            " FROM audit_events WHERE seq = 19",
            params={"body": raw.decode(), "leaf": leaf_hash(raw), "mac": secrets.token_bytes(32)},
        )
        code, output = await verify(trail_db, database_url, tmp_path)
        assert code == 1
        assert "at seq 20: inserted" in output

    async def test_row_appended_past_head(
        self, trail_db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """A row added after the end, without moving the head, is an insertion there."""
        await drop_triggers(trail_db)
        async with trail_db.begin() as conn:
            row = (
                (await conn.execute(text("SELECT * FROM audit_events WHERE seq = 39")))
                .mappings()
                .one()
            )
            forged = json.loads(row["body"])
            forged["seq"] = SIZE
            raw = canonical_json(forged)
            values = dict(row) | {"seq": SIZE, "body": raw.decode(), "leaf_hash": leaf_hash(raw)}
            columns = ", ".join(values)
            names = ", ".join(f":{c}" for c in values)
            await conn.execute(
                text(f"INSERT INTO audit_events ({columns}) VALUES ({names})"),
                values,
            )
        code, output = await verify(trail_db, database_url, tmp_path)
        assert code == 1
        assert f"at seq {SIZE}: " in output
        assert "inserted" in output or "changed" in output

    async def test_swapped_rows(
        self, trail_db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """Two rows that swapped places: a reordering at the first of them."""
        await drop_triggers(trail_db)
        await execute(
            trail_db,
            "UPDATE audit_events SET seq = 1000000 WHERE seq = 5",
            "UPDATE audit_events SET seq = 5 WHERE seq = 30",
            "UPDATE audit_events SET seq = 30 WHERE seq = 1000000",
        )
        code, output = await verify(trail_db, database_url, tmp_path)
        assert code == 1
        assert "at seq 5: reordered" in output
        assert "holds event 30" in output

    async def test_forged_checkpoint(
        self, trail_db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """A checkpoint whose statement was edited no longer carries a valid signature."""
        await drop_triggers(trail_db)
        rows = await fetch(trail_db, "SELECT statement FROM audit_checkpoints WHERE tree_size = 25")
        statement = json.loads(rows[0].statement)
        statement["root_hash"] = "00" * 32
        await execute(
            trail_db,
            "UPDATE audit_checkpoints SET statement = :s WHERE tree_size = 25",
            params={"s": canonical_json(statement).decode()},
        )
        code, output = await verify(trail_db, database_url, tmp_path)
        assert code == 1
        assert "at seq 25: checkpoint" in output
        assert "invalid signature" in output


class TestTruncation:
    """Cutting the end off, covering every track in the database, against an exported checkpoint."""

    async def test_truncated_after_export(
        self, trail_db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """Only the checkpoint kept elsewhere shows the trail was longer."""
        exported = tmp_path / "kept-elsewhere.jsonl"
        result = await cli(
            "export",
            "--checkpoints",
            *cli_args(trail_db, database_url, tmp_path),
            "-o",
            str(exported),
        )
        assert result.exit_code == 0, result.output
        assert json.loads(exported.read_text().splitlines()[-1])["tree_size"] == SIZE

        await drop_triggers(trail_db)
        await execute(
            trail_db,
            "DELETE FROM audit_events WHERE seq >= 30",
            "DELETE FROM audit_checkpoints WHERE tree_size >= 30",
        )
        leaves = [
            bytes(r.leaf_hash)
            for r in await fetch(trail_db, "SELECT leaf_hash FROM audit_events ORDER BY seq")
        ]
        frontier = CompactRange()
        frontier.extend(leaves)
        await execute(
            trail_db,
            "UPDATE audit_head SET size = 30, frontier = :f, checkpoint_size = 25",
            params={"f": frontier.to_bytes()},
        )
        code, output = await verify(trail_db, database_url, tmp_path)
        assert code == 0, "without the exported checkpoint the cut is invisible: " + output
        code, output = await verify(trail_db, database_url, tmp_path, "--checkpoint", str(exported))
        assert code == 1
        assert "at seq 30: truncated" in output
        assert f"says it had {SIZE}" in output

    async def test_tail_deleted_head_left(
        self, trail_db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """Deleting the last events while the head still counts them is a truncation."""
        await drop_triggers(trail_db)
        await execute(trail_db, "DELETE FROM audit_events WHERE seq >= 36")
        code, output = await verify(trail_db, database_url, tmp_path)
        assert code == 1
        assert "at seq 36: truncated" in output


class TestNothingToVerify:
    """An unreadable or foreign database is an error, never a pass."""

    async def test_missing_database(self, tmp_path: Path) -> None:
        result = await cli("verify", "--data-dir", str(tmp_path))
        assert result.exit_code == 2
        assert "no database" in result.output

    async def test_foreign_database(self, tmp_path: Path) -> None:
        """A database without audit tables."""
        other = Database(f"sqlite:///{tmp_path / 'barbacana.db'}")
        await execute(other, "CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        await other.dispose()
        result = await cli("verify", "--data-dir", str(tmp_path))
        assert result.exit_code == 2
        assert "no audit trail" in result.output

    async def test_garbage_file(self, tmp_path: Path) -> None:
        """A file that is not a database at all."""
        (tmp_path / "barbacana.db").write_bytes(b"not a database" * 100)
        result = await cli("verify", "--data-dir", str(tmp_path))
        assert result.exit_code == 2
