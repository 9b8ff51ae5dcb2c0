"""Chat throughput and latency: a bare FastAPI broadcast against Barbacana's chat service.

Run from the repository root::

    uv run python bench/chat.py                          # print the table (about 40 s)
    uv run python bench/chat.py --update bench/chat.md   # also rewrite the results section

Two servers, each in its own process (uvicorn, one worker, 127.0.0.1, the
WebSocket implementation ``barbacana serve chat`` uses), serve ``WS /ws/{room}``:

- **bare**: the chapter's sketch grown into a room: accept anyone, read text,
  send it to every socket of the room. No ticket, no Origin check, no frame
  model, no rate limit.
- **barbacana**: ``barbacana.services.chat.app.create_app`` as ``barbacana up``
  runs it (minus TLS): tickets redeemed at the identity service (its own
  process), strict frame models in and out, a token bucket per connection, the
  per-user connection cap, revocation and idle checks every 0.5 s. The message
  rate is set to 1000/s with a burst of 200 per connection, above what the
  bench sends, so the bucket is charged on every frame but refuses none.

The client (this process, asyncio, the ``websockets`` library) opens 50
sockets in one room (Barbacana: 10 users with 5 sockets each, the cap), and 5
of them send. Each delivered frame is timed from its send to its receipt by
each of the 50 members. Two phases per server:

- **paced**: 100 messages/s offered in total (5,000 deliveries/s) for
  ``--seconds``: latency under a load both servers sustain;
- **saturated**: each sender keeps 8 messages in flight (waits for its own
  copy before sending the ninth) for ``--seconds``: deliveries per second.

Before measuring, the bench checks the wiring: on Barbacana a handshake
without a ticket is refused (403), a bad frame gets an ``error`` frame, and a
burst over the bucket closes the socket with 1008; on bare the same bad frame
is broadcast as is. A run where any measured socket closes stops without
numbers. The server's CPU time (``/proc``, user + system) is read around each
measured phase.
"""

from __future__ import annotations

# ruff: noqa: E402 -- the imports below must follow the sys.path repair.
import sys
from pathlib import Path

# bench/http.py shares its name with the standard library's ``http`` package, and
# Python puts a script's folder first on sys.path: drop it, or ``import http``
# (httpx, Starlette) would import that file.
BENCH_DIR = Path(__file__).resolve().parent
for _entry in [p for p in sys.path if Path(p or ".").resolve() == BENCH_DIR]:
    sys.path.remove(_entry)

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

ROOM = "general"
USERS = 10
SENDERS = 5
WINDOW = 8
PACED_RATE = 100.0
READY_TIMEOUT = 90.0
BENCH_RATE = 1000.0
BENCH_BURST = 200


# -- servers (run in child processes) ------------------------------------------------


def _ws_settings() -> Any:
    from barbacana.websocket import WebSocketSettings

    return WebSocketSettings(message_rate=BENCH_RATE, message_burst=BENCH_BURST)


def _settings(data_dir: Path, **extra: Any) -> Any:
    from barbacana.settings import IdentitySettings, Settings

    return Settings(
        data_dir=data_dir,
        identity=IdentitySettings(password_profile="test_only_cheap"),
        **extra,
    )


def _serve(app: Any, port: int, ws: Any) -> None:
    import uvicorn

    from barbacana.websocket import WebSocketsProtocol, uvicorn_ws_options

    options = uvicorn_ws_options(ws) if ws is not None else {}
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws=WebSocketsProtocol,
        **options,
    )
    uvicorn.Server(config).run()


def serve_bare(port: int) -> None:
    app = FastAPI()
    rooms: dict[str, set[WebSocket]] = {}

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        members = rooms.setdefault(room, set())
        members.add(websocket)
        try:
            while True:
                text = await websocket.receive_text()
                for member in list(members):
                    try:
                        await member.send_text(text)
                    except (WebSocketDisconnect, RuntimeError, OSError):
                        members.discard(member)
        except WebSocketDisconnect:
            members.discard(websocket)

    _serve(app, port, None)


def serve_queued(port: int) -> None:
    """Bare, with the chat service's delivery design: a queue and a sender task per socket."""
    app = FastAPI()
    rooms: dict[str, set[asyncio.Queue[str]]] = {}

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        queue: asyncio.Queue[str] = asyncio.Queue()
        members = rooms.setdefault(room, set())
        members.add(queue)

        async def sender() -> None:
            while True:
                await websocket.send_text(await queue.get())

        task = asyncio.create_task(sender())
        try:
            while True:
                text = await websocket.receive_text()
                for member in members:
                    member.put_nowait(text)
        except WebSocketDisconnect:
            members.discard(queue)
            task.cancel()

    _serve(app, port, None)


def serve_auth(port: int, data_dir: Path) -> None:
    from barbacana.services._runtime import open_sealer
    from barbacana.services.auth._tickets import ticket_router
    from barbacana.services.auth.app import create_app

    # 50 logins and 50 ticket redemptions in a second, all from 127.0.0.1: more than the
    # identity service's default per-address request limits allow.
    settings = _settings(data_dir, ratelimit={"enabled": False})
    app = create_app(settings, sealer=asyncio.run(open_sealer(settings)))
    if not any(getattr(route, "path", None) == "/ws/tickets" for route in app.routes):
        app.include_router(ticket_router(settings, _ws_settings()))
    _serve(app, port, None)


def serve_chat(port: int, data_dir: Path, auth_url: str) -> None:
    from barbacana.services._runtime import DataDir
    from barbacana.services.chat.app import create_app

    settings = _settings(
        data_dir,
        tokens={"identity_url": auth_url},
        client={"id": "chat", "secret_file": DataDir(data_dir).client_secret("chat")},
    )
    ws = _ws_settings()
    _serve(create_app(settings, ws), port, ws)


# -- the client side ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def child(*args: str, url: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, __file__, *args], env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server {args} exited during start-up")
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server {args} did not start")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Run:
    name: str
    sent: int = 0
    delivered: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    client_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def row(self) -> dict[str, float]:
        lat = sorted(self.latencies)
        q = statistics.quantiles(lat, n=100) if len(lat) >= 100 else [float("nan")] * 99
        return {
            "delivered_per_s": self.delivered / self.seconds,
            "p50_ms": q[49] * 1000,
            "p99_ms": q[98] * 1000,
            "cpu_us_per_delivery": self.cpu / max(1, self.delivered) * 1e6,
            "client_us_per_delivery": self.client_cpu / max(1, self.delivered) * 1e6,
        }


class Room:
    """50 sockets in one room; each records when it receives what."""

    def __init__(self, sockets: list[ClientConnection]) -> None:
        self.sockets = sockets
        self.phase: Run | None = None
        self.own: list[asyncio.Queue[int]] = [asyncio.Queue() for _ in sockets]
        self.failed: str | None = None
        self.tasks = [asyncio.create_task(self._read(i)) for i in range(len(sockets))]

    async def _read(self, index: int) -> None:
        try:
            async for raw in self.sockets[index]:
                now = time.perf_counter()
                frame = json.loads(raw)
                if frame.get("type") != "message":
                    if frame.get("type") == "ping":
                        await self.sockets[index].send('{"type":"pong"}')
                    continue
                sender, seq, sent_at = frame["text"].split(":")
                run = self.phase
                if run is not None:
                    run.delivered += 1
                    run.latencies.append(now - float(sent_at))
                if int(sender) == index:
                    self.own[index].put_nowait(int(seq))
        except ConnectionClosed as exc:
            self.failed = f"socket {index} closed: {exc.rcvd}"

    async def send(self, index: int, seq: int) -> None:
        text = f"{index}:{seq}:{time.perf_counter()!r}"
        await self.sockets[index].send(json.dumps({"type": "message", "text": text}))

    async def paced(self, run: Run, seconds: float) -> None:
        interval = SENDERS / PACED_RATE
        self.phase = run
        start = time.perf_counter()

        async def sender(index: int) -> None:
            seq = 0
            next_at = start + index * interval / SENDERS
            while next_at < start + seconds:
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                await self.send(index, seq)
                run.sent += 1
                seq += 1
                next_at += interval

        await asyncio.gather(*(sender(i) for i in range(SENDERS)))
        await self._drain(run)
        run.seconds = seconds

    async def saturated(self, run: Run, seconds: float) -> None:
        self.phase = run
        start = time.perf_counter()
        for queue in self.own:
            while not queue.empty():
                queue.get_nowait()

        async def sender(index: int) -> None:
            seq = 0
            in_flight = 0
            while time.perf_counter() - start < seconds:
                while in_flight < WINDOW:
                    await self.send(index, seq)
                    run.sent += 1
                    seq += 1
                    in_flight += 1
                await asyncio.wait_for(self.own[index].get(), 10)
                in_flight -= 1

        await asyncio.gather(*(sender(i) for i in range(SENDERS)))
        run.seconds = time.perf_counter() - start
        await self._drain(run)

    async def _drain(self, run: Run) -> None:
        expected = run.sent * len(self.sockets)
        deadline = time.perf_counter() + 10
        while run.delivered < expected and time.perf_counter() < deadline:
            if self.failed:
                raise SystemExit(f"a measured socket failed: {self.failed}")
            await asyncio.sleep(0.01)
        self.phase = None
        if run.delivered != expected:
            raise SystemExit(f"{run.name}: {run.delivered} of {expected} deliveries arrived")

    async def close(self) -> None:
        for sock in self.sockets:
            await sock.close()
        for task in self.tasks:
            task.cancel()


@dataclass
class Target:
    name: str
    ws_url: str
    pid: int
    auth: str | None = None
    passwords: dict[str, str] = field(default_factory=dict)

    def token(self, username: str) -> str:
        assert self.auth is not None
        response = httpx.post(
            f"{self.auth}/token",
            data={
                "grant_type": "password",
                "username": username,
                "password": self.passwords[username],
            },
        )
        return str(response.json()["access_token"])

    def ticket(self, token: str) -> str:
        assert self.auth is not None
        response = httpx.post(
            f"{self.auth}/ws/tickets", headers={"Authorization": f"Bearer {token}"}
        )
        response.raise_for_status()
        return str(response.json()["ticket"])

    async def open(self, username: str | None = None, token: str | None = None) -> ClientConnection:
        if self.auth is None:
            return await connect(f"{self.ws_url}/ws/{ROOM}", max_queue=None)
        ticket = self.ticket(token or self.token(username or "user0"))
        return await connect(
            f"{self.ws_url}/ws/{ROOM}",
            subprotocols=["barbacana.chat.v1", f"barbacana.ticket.{ticket}"],  # type: ignore[list-item]
            max_queue=None,
        )


async def check_wiring(target: Target) -> None:
    """Refuse to measure unless each server is what the table says it is."""
    sock = await target.open("user0")
    if target.auth is None:
        await sock.send("not json")
        if await asyncio.wait_for(sock.recv(), 5) != "not json":
            raise SystemExit("bare: expected the bad frame broadcast back unchanged")
        await sock.close()
        return
    if json.loads(await sock.recv())["type"] != "welcome":
        raise SystemExit("barbacana: no welcome frame")
    await sock.send("not json")
    if json.loads(await asyncio.wait_for(sock.recv(), 5)).get("code") != "invalid_json":
        raise SystemExit("barbacana: a bad frame was not refused")
    try:
        await connect(f"{target.ws_url}/ws/{ROOM}")
        raise SystemExit("barbacana: a handshake without a ticket was accepted")
    except InvalidStatus as exc:
        if exc.response.status_code != 403:
            raise SystemExit("barbacana: a handshake without a ticket was not 403") from None
    frame = json.dumps({"type": "message", "text": "burst"})
    try:
        for _ in range(BENCH_BURST * 10):
            await sock.send(frame)
        while True:
            await asyncio.wait_for(sock.recv(), 5)
    except ConnectionClosed as exc:
        if exc.rcvd is None or exc.rcvd.code != 1008:
            raise SystemExit(f"barbacana: a burst did not close with 1008 ({exc.rcvd})") from None
    await asyncio.sleep(0.2)  # let the others receive the burst before measuring


async def measure(target: Target, clients: int, seconds: float) -> dict[str, Run]:
    await check_wiring(target)
    users = [f"user{i % USERS}" for i in range(clients)]
    tokens = {u: target.token(u) for u in set(users)} if target.auth else {}
    try:
        sockets = [await target.open(u, tokens.get(u)) for u in users]
    except InvalidStatus as exc:
        raise SystemExit(f"{target.name}: a socket was refused: {exc.response.body!r}") from None
    if target.auth is not None:
        for sock in sockets:
            await sock.recv()  # welcome
    room = Room(sockets)
    runs = {}
    for phase in ("paced", "saturated"):
        run = Run(f"{target.name} {phase}")
        cpu, client_cpu = cpu_seconds(target.pid), time.process_time()
        await (room.paced(run, seconds) if phase == "paced" else room.saturated(run, seconds))
        run.cpu = cpu_seconds(target.pid) - cpu
        run.client_cpu = time.process_time() - client_cpu
        runs[phase] = run
    await room.close()
    return runs


def per_message_cost(count: int = 50_000) -> dict[str, float]:
    """CPU µs per inbound message of the checks alone, in process (steadier than the runs).

    ``validation``: parse a client frame into the strict union and build and
    serialise the outgoing model; ``rate``: one token-bucket decision;
    ``unchecked``: what a server does without them (``json.loads`` + ``json.dumps``).
    """
    from barbacana.services.chat._models import ClientFrame, MessageOut
    from barbacana.websocket import FrameParser, MessageRate

    parser: FrameParser[Any] = FrameParser(ClientFrame)
    rate = MessageRate(1e9, 10**9)
    text = json.dumps({"type": "message", "text": "0:17:12345.678901234"})

    def timed(step: Any) -> float:
        start = time.process_time()
        for _ in range(count):
            step()
        return (time.process_time() - start) / count * 1e6

    def validation() -> None:
        frame = parser.parse(text)
        MessageOut(room=ROOM, sender="user0", text=frame.text, ts=1.0).model_dump_json()

    def unchecked() -> None:
        json.dumps({"type": "message", "text": json.loads(text)["text"]})

    return {
        "validation": timed(validation),
        "rate": timed(rate.allow),
        "unchecked": timed(unchecked),
    }


def prepare(data_dir: Path) -> dict[str, str]:
    from barbacana.cli._admin import bootstrap, identity_context

    settings = _settings(data_dir)
    shown = asyncio.run(bootstrap(settings))
    passwords = {"admin": shown["admin_password"]}

    async def users() -> None:
        async with identity_context(settings) as identity:
            for i in range(USERS):
                name = f"user{i}"
                passwords[name] = f"{name}-password-long"
                await identity.users.create(name, passwords[name], ["user"])

    asyncio.run(users())
    return passwords


def table(
    results: dict[str, dict[str, Run]], clients: int, seconds: float, cost: dict[str, float]
) -> str:
    lines = [
        f"{clients} clients in one room, {SENDERS} senders, {seconds:g} s per phase; "
        f"paced: {PACED_RATE:g} messages/s offered ({PACED_RATE * clients:,.0f} deliveries/s); "
        f"saturated: {WINDOW} messages in flight per sender.",
        "",
        "| server | phase | deliveries/s | p50 ms | p99 ms | server CPU µs/delivery "
        "| client CPU µs/delivery |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        for phase, run in runs.items():
            row = run.row()
            lines.append(
                f"| {name} | {phase} | {row['delivered_per_s']:,.0f} | {row['p50_ms']:.1f} | "
                f"{row['p99_ms']:.1f} | {row['cpu_us_per_delivery']:.1f} | "
                f"{row['client_us_per_delivery']:.1f} |"
            )
    ours = results["barbacana"]["saturated"].row()
    lines.append("")
    for base in ("bare", "queued"):
        other = results[base]["saturated"].row()
        lines.append(
            f"Saturated, barbacana / {base}: deliveries/s "
            f"{ours['delivered_per_s'] / other['delivered_per_s']:.2f}, server CPU per delivery "
            f"{ours['cpu_us_per_delivery'] / other['cpu_us_per_delivery']:.2f}."
        )
    lines += [
        "",
        f"In process, per inbound message: strict parsing and the outgoing model "
        f"{cost['validation']:.1f} µs, the token bucket {cost['rate']:.1f} µs, against "
        f"{cost['unchecked']:.1f} µs for json.loads + json.dumps without checks; "
        f"spread over {clients} deliveries, "
        f"{(cost['validation'] + cost['rate'] - cost['unchecked']) / clients:.2f} µs per delivery.",
    ]
    return "\n".join(lines)


def update(path: Path, section: str) -> None:
    text = path.read_text()
    pattern = re.compile(r"(<!-- results:start -->\n).*?(<!-- results:end -->)", re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no results markers")
    path.write_text(pattern.sub(lambda m: m.group(1) + section + "\n" + m.group(2), text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--serve", choices=["bare", "queued", "auth", "chat"], help=argparse.SUPPRESS
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--auth-url", help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--update", type=Path, help="rewrite the results section of this file")
    args = parser.parse_args()
    if args.serve == "bare":
        serve_bare(args.port)
        return
    if args.serve == "queued":
        serve_queued(args.port)
        return
    if args.serve == "auth":
        serve_auth(args.port, args.data_dir)
        return
    if args.serve == "chat":
        serve_chat(args.port, args.data_dir, args.auth_url)
        return
    if args.clients > USERS * 5:
        raise SystemExit(f"at most {USERS * 5} clients ({USERS} users, 5 sockets each)")
    started = time.monotonic()
    results: dict[str, dict[str, Run]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        passwords = prepare(data_dir)
        for name in ("bare", "queued"):
            port = free_port()
            with child(
                "--serve", name, "--port", str(port), url=f"http://127.0.0.1:{port}/"
            ) as bare:
                target = Target(name, f"ws://127.0.0.1:{port}", bare.pid)
                results[name] = asyncio.run(measure(target, args.clients, args.seconds))
        auth_port, chat_port = free_port(), free_port()
        auth_url = f"http://127.0.0.1:{auth_port}"
        with (
            child(
                "--serve",
                "auth",
                "--port",
                str(auth_port),
                "--data-dir",
                tmp,
                url=f"{auth_url}/ready",
            ),
            child(
                "--serve",
                "chat",
                "--port",
                str(chat_port),
                "--data-dir",
                tmp,
                "--auth-url",
                auth_url,
                url=f"http://127.0.0.1:{chat_port}/ready",
            ) as chat,
        ):
            target = Target(
                "barbacana", f"ws://127.0.0.1:{chat_port}", chat.pid, auth_url, passwords
            )
            results["barbacana"] = asyncio.run(measure(target, args.clients, args.seconds))
    section = table(results, args.clients, args.seconds, per_message_cost())
    print(section)
    print(f"\n(bench ran {time.monotonic() - started:.0f} s)")
    if args.update:
        update(args.update, section)


if __name__ == "__main__":
    main()
