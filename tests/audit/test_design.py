"""Structural promises of the audit package."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Sequence
from pathlib import Path

import barbacana.audit
from barbacana.audit import Actor, AuditEvent, AuditSettings, AuditTrail, MemoryAuditStore

PACKAGE = Path(barbacana.audit.__file__).parent


def test_core_imports_no_web_framework() -> None:
    """No module of the audit package imports FastAPI or Starlette (the ASGI layer is plain)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.name}: {name}"
                for name in names
                if name.split(".")[0] in {"fastapi", "starlette"}
            ]
    assert offenders == []


class SlowStore(MemoryAuditStore):
    """A store whose commits take a while, so callers pile up behind one."""

    def __init__(self) -> None:
        super().__init__()
        self.transactions = 0

    async def append(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        await asyncio.sleep(0.02)
        self.transactions += 1
        return await super().append(events)


async def test_group_commit_shares_transactions_and_survives_cancellation() -> None:
    """Waiting callers share one transaction; a cancelled caller does not strand the others."""
    store = SlowStore()
    trail = AuditTrail(store, settings=AuditSettings(log_events=False), key=store.key)
    tasks = [
        asyncio.create_task(
            trail.record("order.created", actor=Actor.user(f"u{i}"), outcome="success")
        )
        for i in range(10)
    ]
    await asyncio.sleep(0)
    tasks[0].cancel()
    done = await asyncio.wait_for(asyncio.gather(*tasks[1:]), timeout=10)
    assert len({e.seq for e in done}) == 9
    assert store.transactions <= 3
    head = await store.head()
    rows = await store.rows()
    assert [r.seq for r in rows] == list(range(head.size))
    await trail.close()
