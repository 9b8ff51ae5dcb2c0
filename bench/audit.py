"""Audit trail throughput: Barbacana's tamper-evident trail against plain stdlib logging.

Run from the repository root::

    uv run python bench/audit.py                        # print the table
    uv run python bench/audit.py --update bench/audit.md   # also rewrite the results section

One realistic event (a login: user actor, resource, reason, four detail
fields, request id) is recorded over and over, in one run, by:

- ``logging``: stdlib ``logging`` of the same event as one JSON line to a
  file (``FileHandler``: written and flushed, never fsync'ed) — what the
  chapter's sketch does;
- ``logging + fsync``: the same, with ``os.fsync`` after every line — the
  floor for "on disk before we answer";
- ``memory``: ``AuditTrail`` on the in-memory store — the processor chain
  alone (stamp, redact, canonical JSON, leaf hash, MAC, Merkle append,
  Ed25519 checkpoints), no I/O;
- for SQLite (WAL, ``synchronous=NORMAL``) and PostgreSQL on 127.0.0.1:
  ``record()`` one at a time (each one committed before the next), ``record()``
  from 32 concurrent callers (group commit: they share transactions), and
  ``record_access()`` (queued, committed by the background batcher).

Every trail row includes tree hashing and checkpoints at the default policy
(every 256 events or 5 s). Each row runs for about two seconds, bounded in
count too; the whole run stays well under a minute. PostgreSQL is skipped
if it is not reachable (``BARBACANA_BENCH_PG``, default the local server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

# Running ``python bench/audit.py`` puts bench/ first on sys.path, where a
# sibling script's name could shadow a standard module (``http``): drop it.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import asyncpg

from barbacana.audit import Actor, AuditSettings, AuditTrail, SqlAuditStore
from barbacana.storage import Database

PG_DSN = os.environ.get("BARBACANA_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
SECONDS_PER_ROW = 2.0
MAX_EVENTS_PER_ROW = 200_000
CONCURRENCY = 32
BULK_CHUNK = 2_000

ACTOR = Actor.user("user-4711", name="alice", address="203.0.113.24")
DETAILS = {
    "client_id": "orders-web",
    "scope": "orders:read orders:write",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "attempt": 1,
}


@dataclass
class Result:
    backend: str
    mode: str
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _event_dict(i: int) -> dict[str, object]:
    return {
        "timestamp": time.time(),
        "action": "auth.login.succeeded",
        "outcome": "success",
        "actor": {"type": "user", "id": "user-4711", "name": "alice", "address": "203.0.113.24"},
        "resource": "user:4711",
        "reason": None,
        "request_id": f"req-{i}",
        "details": DETAILS,
    }


def bench_logging(folder: Path, *, fsync: bool) -> Result:
    path = folder / ("audit-fsync.log" if fsync else "audit.log")
    logger = logging.getLogger(f"bench.audit.{fsync}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    count = 0
    start = time.perf_counter()
    deadline = start + SECONDS_PER_ROW
    try:
        while count < MAX_EVENTS_PER_ROW and time.perf_counter() < deadline:
            logger.info(json.dumps(_event_dict(count)))
            if fsync:
                os.fsync(handler.stream.fileno())
            count += 1
        elapsed = time.perf_counter() - start
    finally:
        logger.removeHandler(handler)
        handler.close()
    return Result("file", "logging + fsync" if fsync else "logging", count, elapsed)


async def _timed(fn: Callable[[int], Awaitable[int]]) -> tuple[int, float]:
    """Call ``fn(events so far)`` (it returns how many it recorded) for about two seconds."""
    count = 0
    start = time.perf_counter()
    deadline = start + SECONDS_PER_ROW
    while count < MAX_EVENTS_PER_ROW and time.perf_counter() < deadline:
        count += await fn(count)
    return count, time.perf_counter() - start


async def _record(trail: AuditTrail, i: int) -> int:
    await trail.record(
        "auth.login.succeeded",
        actor=ACTOR,
        outcome="success",
        resource="user:4711",
        details={**DETAILS, "attempt": i},
    )
    return 1


async def bench_trail(backend: str, trail: AuditTrail) -> list[Result]:
    results = []
    count, seconds = await _timed(lambda i: _record(trail, i))
    results.append(Result(backend, "record(), one at a time", count, seconds))

    async def concurrent(i: int) -> int:
        await asyncio.gather(*(_record(trail, i + k) for k in range(CONCURRENCY)))
        return CONCURRENCY

    count, seconds = await _timed(concurrent)
    results.append(Result(backend, f"record(), {CONCURRENCY} concurrent", count, seconds))

    async def bulk(i: int) -> int:
        for k in range(BULK_CHUNK):
            await trail.record_access(
                actor=ACTOR,
                outcome="success",
                resource="GET /orders/{order_id}",
                details={"method": "GET", "status": 200, "n": i + k},
            )
        await trail.flush()
        return BULK_CHUNK

    count, seconds = await _timed(bulk)
    results.append(Result(backend, "record_access(), group-committed", count, seconds))
    return results


async def _verify_stored(db: Database, expected: int) -> None:
    head = await SqlAuditStore(db).head()
    if head.size != expected:
        raise SystemExit(f"the trail holds {head.size} events, the bench recorded {expected}")


async def run_database(backend: str, url: str, folder: Path) -> list[Result]:
    db = Database(url)
    try:
        settings = AuditSettings(log_events=False)
        trail = await AuditTrail.open(db, folder, settings, service="bench")
        results = await bench_trail(backend, trail)
        await trail.close()
        await _verify_stored(db, sum(r.events for r in results))
        return results
    finally:
        await db.dispose()


async def run_memory() -> list[Result]:
    trail = AuditTrail.in_memory(AuditSettings(log_events=False), service="bench")
    count, seconds = await _timed(lambda i: _record(trail, i))
    await trail.close()
    return [Result("memory", "record() (processors, hashing, checkpoints)", count, seconds)]


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG_DSN + "/postgres", timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main() -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="barbacana-audit-bench-") as tmp:
        folder = Path(tmp)
        results.append(bench_logging(folder, fsync=False))
        results.append(bench_logging(folder, fsync=True))
        results.extend(await run_memory())
        sqlite_dir = folder / "sqlite"
        sqlite_dir.mkdir()
        results.extend(
            await run_database("SQLite", f"sqlite:///{sqlite_dir / 'barbacana.db'}", sqlite_dir)
        )
        name = f"barbacana_bench_{secrets.token_hex(4)}"
        try:
            await _pg(f'CREATE DATABASE "{name}"')
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
            return results
        try:
            pg_dir = folder / "pg"
            pg_dir.mkdir()
            url = f"postgresql://{PG_DSN.split('://', 1)[1]}/{name}"
            results.extend(await run_database("PostgreSQL", url, pg_dir))
        finally:
            await _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def table(results: list[Result]) -> str:
    baseline = next(r.rate for r in results if r.mode == "logging")
    lines = [
        "| store | how | events | seconds | events/s | vs logging |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.backend} | {r.mode} | {r.events:,} | {r.seconds:.2f} | "
            f"{r.rate:,.0f} | {r.rate / baseline:.3f}x |"
        )
    return "\n".join(lines)


def update(path: Path, text: str) -> None:
    content = path.read_text(encoding="utf-8")
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    python = sys.version.split()[0]
    block = (
        f"<!-- results:start -->\n\nMeasured {stamp} (Python {python}).\n\n{text}\n\n"
        "<!-- results:end -->"
    )
    new, count = re.subn(
        r"<!-- results:start -->.*?<!-- results:end -->", block, content, flags=re.DOTALL
    )
    if count != 1:
        raise SystemExit(f"{path} has no results section")
    path.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", type=Path, help="rewrite the results section of this file")
    args = parser.parse_args()
    started = time.perf_counter()
    rendered = table(asyncio.run(main()))
    print(rendered)
    print(f"\n(total {time.perf_counter() - started:.1f} s)", file=sys.stderr)
    if args.update:
        update(args.update, rendered)
