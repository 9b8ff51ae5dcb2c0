"""A child process that appends audit events and prints each acknowledged one.

Usage: python _writer.py DATABASE_URL DATA_DIR NAME COUNT [MODE]

MODE ``durable`` records every event with ``record()``; ``mixed`` alternates
``record()`` and ``record_access()`` and closes the trail at the end. It
prints ``ready`` once the trail is open, waits for a line on stdin, then
writes. Each durable event acknowledged by the trail prints ``<seq> <i>`` and is flushed
at once, so a parent that kills this process knows exactly what was acked.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from barbacana.audit import Actor, AuditSettings, AuditTrail
from barbacana.storage import Database


async def main(url: str, data_dir: Path, name: str, count: int, mode: str) -> None:
    db = Database(url)
    settings = AuditSettings(
        checkpoint_every_events=7, batch_size=5, batch_interval_ms=20, log_events=False
    )
    trail = await AuditTrail.open(db, data_dir, settings, service=name, run_migrations=False)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # "go": start together with the other writers
    for i in range(count):
        details = {"writer": name, "i": i}
        if mode == "mixed" and i % 2:
            await trail.record_access(actor=Actor.service(name), outcome="success", details=details)
            continue
        event = await trail.record(
            "order.created", actor=Actor.user(name), outcome="success", details=details
        )
        print(event.seq, i, flush=True)
    await trail.close()
    await db.dispose()
    print("done", flush=True)


if __name__ == "__main__":
    mode = sys.argv[5] if len(sys.argv) > 5 else "durable"
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), mode))
