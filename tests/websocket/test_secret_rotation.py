"""The chat service keeps redeeming WebSocket tickets across a rotation of its client secret.

Chat redeems every ticket at the identity service as the client ``chat``. An
operator rotates that secret over the admin API with a short overlap and writes
the new one where chat reads it; chat is never restarted. Once the old secret
is refused, a new ticket is still redeemed and the join succeeds.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from barbacana.cli._admin import write_secret_file
from barbacana.services._runtime import DataDir
from barbacana.websocket import WebSocketSettings
from tests.websocket.helpers import chat_system

OVERLAP = 2


def grant(auth: str, secret: str) -> int:
    return httpx.post(
        f"{auth}/token", data={"grant_type": "client_credentials"}, auth=("chat", secret)
    ).status_code


async def test_tickets_are_redeemed_after_the_old_secret_ends(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'barbacana.db'}"
    with chat_system(tmp_path, database, WebSocketSettings()) as system:
        before = await system.join("admin")
        await before.close()

        secret_file = DataDir(tmp_path).client_secret("chat")
        old = secret_file.read_text().strip()
        admin = {"Authorization": f"Bearer {system.token('admin')}"}
        answer = httpx.post(
            f"{system.auth}/clients/chat/rotate-secret", json={"overlap": OVERLAP}, headers=admin
        )
        assert answer.status_code == 200, answer.text
        write_secret_file(secret_file, answer.json()["client_secret"])

        deadline = time.monotonic() + 30
        while grant(system.auth, old) != 401:
            assert time.monotonic() < deadline, "the old secret was never refused"
            time.sleep(0.2)

        after = await system.join("admin")
        await after.close()
