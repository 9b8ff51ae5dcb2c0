"""HTTP throughput: bare FastAPI against Barbacana against the chapter's textbook stack.

Run from the repository root::

    uv run python bench/http.py                          # print the table
    uv run python bench/http.py --update bench/http.md   # also rewrite the results section
    uv run python bench/http.py --profile barbacana      # where one app's time goes (cProfile)

The three apps of ``bench/_http_apps.py`` serve the same ``GET /orders`` (a
small JSON list). Each one runs in its own uvicorn process with one worker on
127.0.0.1, all with the same configuration (uvloop and httptools when
installed, no access log). Before anything is measured the bench proves each
app is wired as claimed: 200 and the expected body with the benchmark request;
401 without a token and with a tampered one (Barbacana and textbook); the
security headers of ``secure()`` on Barbacana's answer; the textbook limiter
refusing once its limit is reached (in process, with a limit of 2). A run
with any non-2xx answer, or where the textbook app logged fewer lines than it
served requests, stops without numbers.

``wrk --latency`` then drives each app in turn, after a short warm-up of
each, for several interleaved rounds; each app's best figures are kept (the
highest requests/s and the lowest p99 of its rounds), which is timeit's
advice for a noisy machine: noise only ever makes a run slower. The table
also gives the server process's CPU time per request (user + system, from
``/proc``, over the measured run): other work on a shared machine delays a
server but barely changes the CPU it spends, so that column's ratio is the
steadiest estimate of what the requests/s ratio would be on a quiet core. The
whole run takes about a minute and a half with the defaults.
"""

from __future__ import annotations

# ruff: noqa: E402 -- the imports below must follow the sys.path repair.
import sys
from pathlib import Path

# This file shares its name with the standard library's ``http`` package, and
# Python puts a script's folder first on sys.path: without this repair,
# ``import http`` anywhere below (Starlette, httpx) would import this file.
BENCH_DIR = Path(__file__).resolve().parent
for _entry in [p for p in sys.path if Path(p or ".").resolve() == BENCH_DIR]:
    sys.path.remove(_entry)

import argparse
import asyncio
import cProfile
import importlib.util
import io
import os
import pstats
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import httpx
from fastapi import FastAPI


def _load_apps() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_http_apps", BENCH_DIR / "_http_apps.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {BENCH_DIR / '_http_apps.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


apps = _load_apps()

WRK = "wrk"
READY_TIMEOUT = 90.0
PROFILE_ROUNDS = 40
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass
class Result:
    """One measured wrk run."""

    requests_per_second: float
    p99_ms: float
    requests: int
    #: CPU time the server process spent per request (user + system, every thread).
    cpu_us: float = float("nan")


@dataclass
class App:
    """One contender: its uvicorn factory, the request that counts, and its results."""

    name: str
    label: str
    token: str | None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    results: list[Result] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/orders"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def best_rate(self) -> float:
        return max(r.requests_per_second for r in self.results)

    @property
    def best_p99(self) -> float:
        return min(r.p99_ms for r in self.results)

    @property
    def best_cpu_us(self) -> float:
        return min(r.cpu_us for r in self.results)


# -- servers --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_options() -> list[str]:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return [
        "--workers", "1", "--no-access-log", "--log-level", "warning",
        "--loop", loop, "--http", http,
    ]  # fmt: skip


def _start(app: App, folder: Path) -> None:
    # The server imports the apps from a copy beside the key material: with bench/
    # on its sys.path, this file would shadow the standard library's ``http``.
    shutil.copyfile(BENCH_DIR / "_http_apps.py", folder / "_http_apps.py")
    app.port = _free_port()
    app.log = folder / f"uvicorn-{app.name}.log"
    command = [
        sys.executable, "-m", "uvicorn", "--factory", f"_http_apps:{app.name}",
        "--app-dir", str(folder), "--host", "127.0.0.1", "--port", str(app.port),
        *_server_options(),
    ]  # fmt: skip
    env = {**os.environ, apps.DIR_ENV: str(folder)}
    with app.log.open("wb") as log:
        app.process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def _wait_ready(app: App) -> None:
    if app.process is None or app.log is None:
        raise SystemExit(f"{app.label} was not started")
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise SystemExit(f"{app.label} exited at start-up:\n{app.log.read_text()}")
        try:
            httpx.get(app.url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{app.label} did not answer within {READY_TIMEOUT:.0f} s")


def _stop(app: App) -> None:
    if app.process is None or app.process.poll() is not None:
        return
    app.process.terminate()
    try:
        app.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        app.process.kill()
        app.process.wait(timeout=5)


@contextmanager
def _servers(contenders: list[App], folder: Path) -> Iterator[None]:
    try:
        for app in contenders:
            _start(app, folder)
        for app in contenders:
            _wait_ready(app)
        yield
    finally:
        for app in contenders:
            _stop(app)


# -- proofs that each app is what it claims to be -------------------------------------


def _fail(app: App, what: str, response: httpx.Response) -> SystemExit:
    return SystemExit(
        f"{app.label} is misconfigured: {what}; got {response.status_code} {response.text[:200]!r}"
    )


def _tampered(token: str) -> str:
    head, body, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{body}.{flipped}"


def _check(app: App) -> None:
    with httpx.Client(timeout=5.0) as client:
        ok = client.get(app.url, headers=app.headers)
        if ok.status_code != 200 or ok.json() != apps.ORDERS:
            raise _fail(app, "the benchmark request must answer 200 with the orders", ok)
        if app.name.startswith("barbacana"):
            for header in ("x-request-id", "content-security-policy", "x-content-type-options"):
                if header not in ok.headers:
                    raise _fail(app, f"secure() did not add {header}", ok)
        if app.name == "barbacana_full" and "ratelimit" not in ok.headers:
            raise _fail(app, "the rate limiter did not answer", ok)
        if app.token is None:
            return
        anonymous = client.get(app.url)
        if anonymous.status_code != 401:
            raise _fail(app, "a request without a token must answer 401", anonymous)
        forged = client.get(app.url, headers={"Authorization": f"Bearer {_tampered(app.token)}"})
        if forged.status_code != 401:
            raise _fail(app, "a request with a tampered token must answer 401", forged)


async def _textbook_limiter_refuses(folder: Path, token: str) -> None:
    """The textbook app's slowapi decorator is live: with a limit of 2, the third call is 429."""
    app = apps.create_textbook(folder, limit="2/minute")
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as client:
        codes = [(await client.get("/orders", headers=headers)).status_code for _ in range(3)]
    if codes != [200, 200, 429]:
        raise SystemExit(f"textbook limiter is not applied: statuses {codes}, wanted 200, 200, 429")


def _log_lines(folder: Path) -> int:
    path = folder / apps.LOG_FILE
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


# -- wrk ------------------------------------------------------------------------------


def _wrk(app: App, args: argparse.Namespace, seconds: float) -> str:
    command = [
        WRK, "--latency", "--timeout", "5s",
        "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds:g}s",
    ]  # fmt: skip
    for name, value in app.headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(app.url)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"wrk failed on {app.label}: {done.stderr or done.stdout}")
    return done.stdout


def parse_wrk(output: str) -> Result:
    """Requests/s, the 99th-percentile latency in ms, and the request count of one run.

    Raises:
        SystemExit: The output lacks a figure, or reports non-2xx answers.
    """
    rate = re.search(r"^Requests/sec:\s+([\d.]+)\s*$", output, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    count = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    if rate is None or p99 is None or count is None:
        raise SystemExit(f"cannot read wrk's output:\n{output}")
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if refused is not None:
        raise SystemExit(f"{refused.group(1)} answers were not 2xx:\n{output}")
    return Result(
        requests_per_second=float(rate.group(1)),
        p99_ms=float(p99.group(1)) * _UNITS[p99.group(2)],
        requests=int(count.group(1)),
    )


def _cpu_seconds(process: subprocess.Popen[bytes] | None) -> float:
    """User + system CPU time of a running process (Linux ``/proc``; NaN elsewhere)."""
    if process is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    # After the command name: state is field 3 of proc(5), utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(app: App, args: argparse.Namespace, folder: Path, *, warm_up: bool) -> Result:
    if warm_up and args.warmup > 0:
        parse_wrk(_wrk(app, args, args.warmup))
    logged_before = _log_lines(folder)
    cpu_before = _cpu_seconds(app.process)
    output = _wrk(app, args, args.duration)
    result = parse_wrk(output)
    result.cpu_us = (_cpu_seconds(app.process) - cpu_before) / result.requests * 1e6
    errors = re.search(r"Socket errors: (.*)", output)
    if errors is not None:
        print(f"  {app.label}: socket errors: {errors.group(1)}", file=sys.stderr)
    if app.name == "textbook":
        logged = _log_lines(folder) - logged_before
        if logged < result.requests:
            raise SystemExit(f"textbook logged {logged} lines for {result.requests} requests")
    return result


# -- report ---------------------------------------------------------------------------


def _table(contenders: list[App]) -> str:
    bare = contenders[0]
    lines = [
        "| app | requests/s | vs bare | p99 latency (ms) | vs bare "
        "| server CPU µs/request | bare CPU / this |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for app in contenders:
        lines.append(
            f"| {app.label} | {app.best_rate:,.0f} | {app.best_rate / bare.best_rate:.2f} | "
            f"{app.best_p99:.2f} | {app.best_p99 / bare.best_p99:.2f} | "
            f"{app.best_cpu_us:.0f} | {bare.best_cpu_us / app.best_cpu_us:.2f} |"
        )
    return "\n".join(lines)


def _rounds(contenders: list[App]) -> str:
    lines = []
    for app in contenders:
        runs = "; ".join(
            f"{r.requests_per_second:,.0f} req/s, p99 {r.p99_ms:.2f} ms, {r.cpu_us:.0f} µs CPU"
            for r in app.results
        )
        lines.append(f"- {app.label}: {runs}")
    return "\n".join(lines)


def _update(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(r"(<!-- results:start -->\n)(?:.*?\n)?(<!-- results:end -->)", re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no results markers")
    path.write_text(pattern.sub(lambda m: f"{m.group(1)}{section}\n{m.group(2)}", text), "utf-8")


# -- profile --------------------------------------------------------------------------


def _in_process(app: FastAPI, headers: dict[str, str], count: int) -> Callable[[], None]:
    """``count`` requests straight into the ASGI app: no client, no socket, no HTTP parser."""
    raw_headers = [(b"host", b"bench.test")] + [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]

    def scope() -> dict[str, object]:
        return {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": "GET", "scheme": "http", "path": "/orders",
            "raw_path": b"/orders", "root_path": "", "query_string": b"",
            "headers": list(raw_headers), "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000), "state": {},
        }  # fmt: skip

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def drive() -> None:
        statuses: list[int] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        for _ in range(count):
            await app(scope(), receive, send)
        if set(statuses) != {200} or len(statuses) != count:
            raise SystemExit(f"in-process requests answered {sorted(set(statuses))}")

    return lambda: asyncio.run(drive())


def _profile(name: str, count: int, folder: Path) -> None:
    """CPU time per request of every app and of Barbacana's two halves, then a cProfile."""
    barbacana_token = apps.issue_barbacana_token(folder)
    textbook_token = apps.issue_textbook_token(folder)
    rows: dict[str, tuple[FastAPI, str | None]] = {
        "bare": (apps.create_bare(), None),
        "secure() alone, no auth": (apps.create_barbacana(folder, guarded=False), None),
        "require alone, no secure()": (
            apps.create_barbacana(folder, secured=False),
            barbacana_token,
        ),
        "barbacana": (apps.create_barbacana(folder), barbacana_token),
        "textbook": (apps.create_textbook(folder), textbook_token),
    }
    runs = {
        label: _in_process(app, {"Authorization": f"Bearer {token}"} if token else {}, count)
        for label, (app, token) in rows.items()
    }
    best = dict.fromkeys(runs, float("inf"))
    for run in runs.values():
        run()  # warm-up, and a check that every answer is 200
    for _ in range(PROFILE_ROUNDS):
        for label, run in runs.items():
            started = time.process_time()
            run()
            best[label] = min(best[label], (time.process_time() - started) / count)
    print(
        f"CPU time per request, in process (ASGI calls, no socket or HTTP parser), "
        f"best of {PROFILE_ROUNDS} interleaved batches of {count}:"
    )
    for label, seconds in best.items():
        extra = (seconds - best["bare"]) * 1e6
        print(f"  {label:<28} {seconds * 1e6:7.1f} µs  ({extra:+6.1f} µs vs bare)")

    run = runs[name]
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(PROFILE_ROUNDS // 4):
        run()
    profiler.disable()
    for order in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats(order).print_stats(30)
        print(f"\n--- {name}: top 30 by {order} ---")
        print(buffer.getvalue())


# -- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per run")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of warm-up per app, before round 1"
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per app")
    parser.add_argument("--update", type=Path, help="rewrite the results section of this file")
    parser.add_argument(
        "--profile",
        choices=["bare", "barbacana", "textbook"],
        help="instead of wrk: time every app in process, then cProfile this one",
    )
    parser.add_argument("--requests", type=int, default=200, help="requests per --profile batch")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.rounds < 1 or args.connections < args.threads:
        parser.error("need --duration > 0, --rounds >= 1 and --connections >= --threads")

    with tempfile.TemporaryDirectory(prefix="barbacana-http-bench-") as temp:
        folder = Path(temp)
        apps.write_key_material(folder)
        if args.profile:
            _profile(args.profile, args.requests, folder)
            return 0
        if shutil.which(WRK) is None:
            raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
        return _run(args, folder)


def _run(args: argparse.Namespace, folder: Path) -> int:
    started = time.perf_counter()
    load = os.getloadavg()[0]
    textbook_token = apps.issue_textbook_token(folder)
    asyncio.run(_textbook_limiter_refuses(folder, textbook_token))
    contenders = [
        App("bare", "bare FastAPI", None),
        App("barbacana", "Barbacana", apps.issue_barbacana_token(folder)),
        App(
            "barbacana_full",
            "Barbacana + rate limits + audit trail",
            apps.issue_barbacana_token(folder),
        ),
        App("textbook", "textbook stack", textbook_token),
    ]
    with _servers(contenders, folder):
        for app in contenders:
            _check(app)
        for round_ in range(args.rounds):
            for app in contenders:
                app.results.append(_measure(app, args, folder, warm_up=round_ == 0))
                last = app.results[-1]
                print(
                    f"round {round_ + 1}: {app.label}: {last.requests_per_second:,.0f} req/s, "
                    f"p99 {last.p99_ms:.2f} ms, server CPU {last.cpu_us:.0f} µs/request",
                    file=sys.stderr,
                    flush=True,
                )

    table = _table(contenders)
    options = " ".join(_server_options())
    footer = (
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency "
        f"({args.warmup:g} s of warm-up first), best figure of {args.rounds} interleaved rounds; "
        f"uvicorn {options}; Python {sys.version.split()[0]}; {os.cpu_count()} cores, "
        f"load average {load:.2f} at start; {time.perf_counter() - started:.0f} s in total."
    )
    print(table, end="\n\n")
    print("Every round:\n" + _rounds(contenders), end="\n\n")
    print(footer)
    if args.update is not None:
        _update(args.update, f"{table}\n\nEvery round:\n\n{_rounds(contenders)}\n\n{footer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
