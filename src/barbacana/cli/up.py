"""``barbacana up``: the reference system on one machine."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess  # nosec B404 -- starts the reference services, never a shell
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from ..services._runtime import DataDir
from ..transport import Pki
from ._admin import bootstrap
from ._common import DataDirOption, console, fail, load_settings, run
from .check import deployment_warnings, print_messages

app = typer.Typer(help="Run the reference system.")


@dataclass
class _Child:
    name: str
    url: str
    process: subprocess.Popen[bytes]


def _environment(data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    # The operator's BARBACANA_* settings reach every service; ours come on top.
    env = dict(os.environ)
    env["BARBACANA_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def _issue(pki: Pki, names: tuple[str, ...], host: str) -> None:
    ips = [host] if _is_ip(host) else []
    dns = ["localhost"] + ([] if ips else [host])
    for name in names:
        pki.ensure_service(name, dns=dns, ips=ips or ["127.0.0.1"])


def _cors_origins(own: list[str]) -> str:
    """The services' own origins plus the operator's ``BARBACANA_CORS_ORIGINS`` (a JSON list).

    The same list is the WebSocket ``Origin`` allow-list, so pages served by the
    services themselves can open the chat. A value that is not a JSON list is
    passed on unchanged, for the services to refuse with a clear message.
    """
    extra = os.environ.get("BARBACANA_CORS_ORIGINS")
    if not extra:
        return json.dumps(own)
    try:
        listed = json.loads(extra)
    except ValueError:
        return extra
    if not isinstance(listed, list):
        return extra
    return json.dumps(own + [origin for origin in listed if origin not in own])


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _wait_ready(child: _Child, ca_file: Path | None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            fail(
                f"the {child.name} service exited during start-up (code {child.process.returncode})"
            )
        try:
            verify: str | bool = str(ca_file) if ca_file else True
            response = httpx.get(f"{child.url}/ready", timeout=2.0, verify=verify)
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet: retried until the deadline
        time.sleep(0.2)
    fail(f"the {child.name} service did not become ready within {timeout:.0f} s")


def _stop(children: list[_Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


@app.command()
def up(
    data_dir: DataDirOption = None,
    host: Annotated[str, typer.Option(help="Address the services listen on")] = "127.0.0.1",
    base_port: Annotated[
        int, typer.Option("--base-port", help="auth on P, orders on P+1, chat on P+2")
    ] = 8000,
    plain_http: Annotated[
        bool, typer.Option("--plain-http", help="Serve plain HTTP (local experiments only)")
    ] = False,
) -> None:
    """Start auth (P), orders (P+1) and chat (P+2); Ctrl-C stops them cleanly."""
    settings = load_settings(data_dir)
    root = settings.data_dir.resolve()
    scheme = "http" if plain_http else "https"
    auth_url = f"{scheme}://{host}:{base_port}"
    orders_url = f"{scheme}://{host}:{base_port + 1}"
    chat_url = f"{scheme}://{host}:{base_port + 2}"
    console.print(f"[bold]Barbacana[/] data directory: {root}")
    shown = run(bootstrap(settings.model_copy(update={"data_dir": root})))
    data = DataDir(root)
    pki = None if plain_http else Pki(data.pki, settings=settings.transport)
    names = ("auth", "orders", "chat")
    if pki is not None:
        _issue(pki, names, host)
    found = deployment_warnings(
        settings.model_copy(update={"data_dir": root}), plain_http=plain_http
    )
    if found:
        print_messages(found)
    common = {
        "BARBACANA_TOKENS_ISSUER": auth_url,
        "BARBACANA_CORS_ORIGINS": _cors_origins([auth_url, orders_url, chat_url]),
    }
    specs: list[tuple[str, str, int, dict[str, str]]] = [
        ("auth", auth_url, base_port, {"BARBACANA_PUBLIC_URL": auth_url}),
        (
            "orders",
            orders_url,
            base_port + 1,
            {
                "BARBACANA_PUBLIC_URL": orders_url,
                "BARBACANA_TOKENS_IDENTITY_URL": auth_url,
                "BARBACANA_CLIENT_ID": "orders",
                "BARBACANA_CLIENT_SECRET_FILE": str(data.client_secret("orders")),
            },
        ),
        (
            "chat",
            chat_url,
            base_port + 2,
            {
                "BARBACANA_PUBLIC_URL": chat_url,
                "BARBACANA_TOKENS_IDENTITY_URL": auth_url,
                "BARBACANA_CLIENT_ID": "chat",
                "BARBACANA_CLIENT_SECRET_FILE": str(data.client_secret("chat")),
            },
        ),
    ]
    children: list[_Child] = []
    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for name, url, port, extra in specs:
            command = [
                sys.executable,
                "-m",
                "barbacana.cli",
                "serve",
                name,
                "--host",
                host,
                "--port",
                str(port),
                "--data-dir",
                str(root),
            ]
            if plain_http:
                command.append("--plain-http")
            env = _environment(root, {**common, **extra})
            process = subprocess.Popen(command, env=env)  # noqa: S603  # nosec B603 -- our interpreter
            children.append(_Child(name, url, process))
            _wait_ready(children[-1], pki.ca_file if pki else None)
        _banner(children, shown, settings.identity.admin_username, pki.ca_file if pki else None)
        renew_at = time.monotonic() + 60
        while not stopping:
            if pki is not None and time.monotonic() >= renew_at:
                # Re-issues certificates nearing expiry; servers reload them live.
                _issue(pki, names, host)
                renew_at = time.monotonic() + 60
            for child in children:
                if child.process.poll() is not None:
                    console.print(
                        f"[red]{child.name} exited (code {child.process.returncode}); stopping[/]"
                    )
                    stopping = True
            time.sleep(0.2)
    finally:
        console.print("stopping…")
        _stop(children)
    console.print("stopped.")


def _banner(children: list[_Child], shown: dict[str, str], admin: str, ca: Path | None) -> None:
    for child in children:
        console.print(f"  [green]{child.name:<7}[/] {child.url}   docs: {child.url}/docs")
    cacert = ""
    if ca is not None:
        console.print(f"\n  Trust the dev CA: {ca}")
        cacert = f"--cacert {ca} "
    if "admin_password" in shown:
        console.print(
            f"\n  First run: account [bold]{admin}[/] with password "
            f"[bold yellow]{shown['admin_password']}[/] (shown only once)."
        )
    auth = children[0].url
    orders = children[1].url if len(children) > 1 else auth
    console.print(
        "\n  Try it:\n"
        f"    TOKEN=$(curl -s {cacert}-d grant_type=password -d username={admin} "
        f"--data-urlencode password=PASSWORD {auth}/token | python3 -c "
        "'import json,sys;print(json.load(sys.stdin)[\"access_token\"])')\n"
        f'    curl -s {cacert}-H "Authorization: Bearer $TOKEN" {orders}/orders'
    )
    if len(children) > 2:
        chat = children[2].url.replace("https://", "wss://").replace("http://", "ws://")
        console.print(
            f'    curl -s {cacert}-X POST -H "Authorization: Bearer $TOKEN" {auth}/ws/tickets\n'
            f"    # then open {chat}/ws/general offering the subprotocols\n"
            "    # barbacana.chat.v1 and barbacana.ticket.<ticket> (single use, 30 s)"
        )
    console.print("\n  Press Ctrl-C to stop.")
