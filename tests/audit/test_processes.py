"""Real processes: a writer killed with SIGKILL, and two writers on one trail."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from barbacana.audit import (
    AuditKey,
    AuditProofError,
    AuditTrail,
    load_public_key,
    migrate,
    read_checkpoints,
    verify_consistency_proof,
    verify_proof,
)
from barbacana.storage import Database

from .conftest import cli, cli_args, fetch, settings

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

WRITER = Path(__file__).with_name("_writer.py")
SRC = Path(__file__).resolve().parents[2] / "src"


async def start_writer(
    url: str, data_dir: Path, name: str, count: int, mode: str
) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITER),
        url,
        str(data_dir),
        name,
        str(count),
        mode,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def go(*writers: asyncio.subprocess.Process) -> None:
    """Wait until every writer has opened the trail, then let them all start."""
    for writer in writers:
        assert writer.stdout is not None
        line = await asyncio.wait_for(writer.stdout.readline(), 60)
        assert line.strip() == b"ready", line
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write(b"go\n")
        await writer.stdin.drain()


async def prepare(db: Database, tmp_path: Path) -> None:
    """Migrate once and create the audit key, as `barbacana db upgrade` would."""
    await migrate(db)
    trail = await AuditTrail.open(db, tmp_path, settings(), run_migrations=False)
    await trail.close()


class TestCrash:
    async def test_sigkill_loses_no_acknowledged_event(
        self, db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """Kill -9 mid-stream: the trail verifies and holds every event that was acknowledged."""
        await prepare(db, tmp_path)
        child = await start_writer(database_url, tmp_path, "victim", 100_000, "durable")
        assert child.stdout is not None
        acked: dict[int, int] = {}
        try:
            await go(child)
            while len(acked) < 40:
                line = await asyncio.wait_for(child.stdout.readline(), 60)
                assert line, (await child.stderr.read()).decode() if child.stderr else ""
                seq, i = map(int, line.split())
                acked[seq] = i
        finally:
            child.send_signal(signal.SIGKILL)
            await child.wait()
        assert child.returncode == -signal.SIGKILL

        result = await cli("verify", *cli_args(db, database_url, tmp_path))
        assert result.exit_code == 0, result.output
        rows = await fetch(db, "SELECT seq, body FROM audit_events ORDER BY seq")
        stored = {row.seq: json.loads(row.body)["details"]["i"] for row in rows}
        for seq, i in acked.items():
            assert stored.get(seq) == i, f"acknowledged event {seq} is missing"
        assert sorted(stored) == list(range(len(stored)))

        # The trail goes on after the crash, from where it really ended.
        trail = await AuditTrail.open(db, tmp_path, settings(), run_migrations=False)
        event = await trail.record("service.started", actor={"type": "system"}, outcome="success")
        await trail.close()
        assert event.seq == len(stored)
        result = await cli("verify", *cli_args(db, database_url, tmp_path))
        assert result.exit_code == 0, result.output


class TestTwoWriters:
    async def test_one_consistent_tree(
        self, db: Database, database_url: str, tmp_path: Path
    ) -> None:
        """Two processes appending at once leave one gap-free trail that verifies, with proofs."""
        await prepare(db, tmp_path)
        writers = [
            await start_writer(database_url, tmp_path, name, 60, "mixed") for name in ("a", "b")
        ]
        await go(*writers)
        outputs = await asyncio.wait_for(asyncio.gather(*(w.communicate() for w in writers)), 120)
        for writer, (stdout, stderr) in zip(writers, outputs, strict=True):
            assert writer.returncode == 0, stderr.decode()
            assert stdout.decode().splitlines()[-1] == "done"

        result = await cli("verify", *cli_args(db, database_url, tmp_path), "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["events"] == 120
        assert report["uncovered_events"] == 0
        rows = await fetch(db, "SELECT seq, body FROM audit_events ORDER BY seq")
        assert [r.seq for r in rows] == list(range(120))
        written = {
            (json.loads(r.body)["details"]["writer"], json.loads(r.body)["details"]["i"])
            for r in rows
        }
        assert written == {(name, i) for name in ("a", "b") for i in range(60)}
        # Interleaved, not one after the other (else this test proves little).
        order = [json.loads(r.body)["details"]["writer"] for r in rows]
        assert sum(1 for x, y in itertools.pairwise(order) if x != y) > 2

        exported = tmp_path / "checkpoints.jsonl"
        result = await cli(
            "export", "--checkpoints", *cli_args(db, database_url, tmp_path), "-o", str(exported)
        )
        assert result.exit_code == 0
        checkpoints = read_checkpoints(exported.read_text().splitlines())
        older = next(c for c in checkpoints if c.tree_size >= 30)
        kept = tmp_path / "kept.jsonl"
        kept.write_text(older.to_line() + "\n")
        proof_file = tmp_path / "proof.json"
        result = await cli(
            "prove",
            "17",
            *cli_args(db, database_url, tmp_path),
            "--checkpoint",
            str(kept),
            "-o",
            str(proof_file),
        )
        assert result.exit_code == 0, result.output

        # Standalone: the proof document, the kept checkpoint and the public key; no database.
        public_key = load_public_key((tmp_path / "audit" / "audit-key.pub.pem").read_bytes())
        document = json.loads(proof_file.read_text())
        checked = verify_proof(
            document, public_key, trusted=read_checkpoints([kept.read_text()])[0]
        )
        assert checked.event.seq == 17
        assert checked.checkpoint.tree_size == 120
        assert checked.consistent_with is not None
        assert checked.consistent_with.tree_size == older.tree_size

        # The consistency proof alone links the kept checkpoint to the latest one...
        latest = checkpoints[-1]
        proof = [bytes.fromhex(h) for h in document["consistency"]["proof"]]
        verify_consistency_proof(older, latest, proof, public_key)
        # ...and only under the trail's own key.
        with pytest.raises(AuditProofError, match="public key"):
            verify_consistency_proof(older, latest, proof, AuditKey.generate().public_key)
