"""The chat in a real browser: headless Chromium against auth and chat on loopback.

Page A (the allowed origin) logs in, obtains a ticket from the identity
service (a cross-origin request CORS allows) and chats over a WebSocket. Page
B (another port, so another origin) plays a cross-site WebSocket hijacking
page: whatever ticket it holds — none, one leaked from page A, or one issued
to a program — the browser sends B's Origin, and the handshake is refused
before any frame, so the page never sees an open socket.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from tests.conftest import ServerThread, free_port, missing
from tests.websocket.helpers import ChatSystem, chat_system

from barbacana.websocket import WebSocketSettings

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def page_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return "<!doctype html><title>chat page</title><p>chat page</p>"

    return app


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not CHROMIUM.exists():
        missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("ws-browser")
    page_a_port = free_port()
    page_a = f"http://127.0.0.1:{page_a_port}"
    with (
        ServerThread(page_app(), port=page_a_port),
        ServerThread(page_app()) as page_b,
        chat_system(
            tmp,
            f"sqlite+aiosqlite:///{tmp / 'barbacana.db'}",
            WebSocketSettings(),
            origins=(page_a,),
        ) as system,
    ):
        system.add_user("alice")
        system.add_user("bob")
        yield {"a": page_a, "b": page_b.url, "system": system}


CHAT = """async ({auth, chat, username, password}) => {
    const form = new URLSearchParams({grant_type: "password", username, password});
    const tokens = await (await fetch(auth + "/token", {method: "POST", body: form})).json();
    const issued = await fetch(auth + "/ws/tickets", {
        method: "POST", headers: {Authorization: "Bearer " + tokens.access_token}});
    const ticket = (await issued.json()).ticket;
    return await new Promise((resolve) => {
        const frames = [];
        const url = chat.replace("http://", "ws://") + "/ws/general";
        const ws = new WebSocket(url, ["barbacana.chat.v1", "barbacana.ticket." + ticket]);
        const timer = setTimeout(() => resolve({frames, timeout: true}), 10000);
        ws.onmessage = (event) => {
            const frame = JSON.parse(event.data);
            frames.push(frame);
            if (frame.type === "welcome") {
                ws.send(JSON.stringify({type: "message", text: "hello from the browser"}));
            } else if (frame.type === "message") {
                clearTimeout(timer);
                const cacheControl = issued.headers.get("Cache-Control");
                resolve({frames, protocol: ws.protocol, cacheControl});
                ws.close(1000);
            }
        };
        ws.onclose = (event) => { clearTimeout(timer); resolve({frames, closed: event.code}); };
    });
}"""

HIJACK = """async ({chat, ticket}) => new Promise((resolve) => {
    const protocols = ["barbacana.chat.v1"];
    if (ticket) protocols.push("barbacana.ticket." + ticket);
    let opened = false;
    const frames = [];
    const ws = new WebSocket(chat.replace("http://", "ws://") + "/ws/general", protocols);
    const timer = setTimeout(() => resolve({opened, frames, timeout: true}), 10000);
    ws.onopen = () => { opened = true; };
    ws.onmessage = (event) => { frames.push(event.data); };
    ws.onclose = (event) => { clearTimeout(timer); resolve({opened, frames, code: event.code}); };
})"""

STEAL_TICKET = """async ({auth, token}) => {
    try {
        const r = await fetch(auth + "/ws/tickets", {
            method: "POST", headers: {Authorization: "Bearer " + token}});
        return {status: r.status, body: await r.text()};
    } catch (e) { return {error: String(e)}; }
}"""


async def test_allowed_origin_chats_other_origin_cannot_open(servers: dict[str, Any]) -> None:
    """Page A chats with Bob; page B opens nothing, with any ticket it could hold."""
    from playwright.async_api import async_playwright

    system: ChatSystem = servers["system"]
    bob = await system.join("bob", origin=servers["a"])
    leaked_from_a = system.ticket(system.token("alice"), origin=servers["a"])
    program_ticket = system.ticket(system.token("alice"))
    alice_token = system.token("alice")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(servers["a"] + "/")
            chatted = await page.evaluate(
                CHAT,
                {
                    "auth": system.auth,
                    "chat": system.chat,
                    "username": "alice",
                    "password": system.passwords["alice"],
                },
            )
            await page.goto(servers["b"] + "/")
            hijacks = [
                await page.evaluate(HIJACK, {"chat": system.chat, "ticket": ticket})
                for ticket in (None, leaked_from_a, program_ticket)
            ]
            stolen = await page.evaluate(STEAL_TICKET, {"auth": system.auth, "token": alice_token})
        finally:
            await browser.close()

    # Page A: welcome, then its own message back; the chat protocol was selected.
    assert [f["type"] for f in chatted["frames"]] == ["welcome", "message"], chatted
    assert chatted["frames"][1]["from"] == "alice"
    assert chatted["protocol"] == "barbacana.chat.v1"
    assert chatted["cacheControl"] == "no-store"
    # Bob, a program connected with the same origin, got Alice's message too.
    heard = await bob.next("message")
    assert (heard["from"], heard["text"]) == ("alice", "hello from the browser")

    # Page B: never open, never a frame; the browser reports an abnormal close (1006).
    for hijack in hijacks:
        assert hijack == {"opened": False, "frames": [], "code": 1006}, hijack
    # The server refused each handshake for B's origin, before looking at the ticket.
    refused = system.audit.find("ws.refused", reason="ws_origin_not_allowed")
    assert [e["details"]["origin"] for e in refused] == [servers["b"]] * 3
    # The leaked ticket was not burnt by B's attempt: A's page could still use it.
    opened = await system.open("general", leaked_from_a, origin=servers["a"])
    assert json.loads(await opened.recv())["type"] == "welcome"
    await opened.close()
    # B cannot even obtain a ticket with a stolen token: the CORS preflight is refused.
    assert set(stolen) == {"error"}
    await bob.close()
