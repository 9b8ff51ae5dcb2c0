"""``barbacana proxy-config nginx``: a hardened nginx front door for the reference system."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess  # nosec B404 -- runs only `nginx -v`, to pick the http2 syntax
from pathlib import Path
from typing import Annotated

import typer

from ..errors import BarbacanaError
from ..transport import Pki, TransportSettings, render_nginx_config
from ._common import DataDirOption, err_console, fail, load_settings

app = typer.Typer(
    help="Configuration for a reverse proxy in front of the services.", no_args_is_help=True
)

#: The certificate nginx presents to clients and, as its identity, to the services.
PROXY_CERTIFICATE = "proxy"


@app.callback()
def proxy_config() -> None:
    """Configuration for a reverse proxy in front of the services."""


def _nginx_version() -> tuple[int, int, int] | None:
    binary = shutil.which("nginx")
    if binary is None:
        return None
    try:
        result = subprocess.run(  # noqa: S603  # nosec B603 -- fixed argv, binary from PATH
            [binary, "-v"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", result.stderr + result.stdout)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@app.command("nginx")
def nginx(
    auth: Annotated[str | None, typer.Option("--auth", metavar="HOST:PORT")] = None,
    orders: Annotated[str | None, typer.Option("--orders", metavar="HOST:PORT")] = None,
    chat: Annotated[str | None, typer.Option("--chat", metavar="HOST:PORT")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here (default: standard output)")
    ] = None,
    listen_https: Annotated[int, typer.Option("--listen-https", min=1, max=65535)] = 8443,
    listen_http: Annotated[
        int, typer.Option("--listen-http", min=0, max=65535, help="0: no HTTP redirect")
    ] = 8080,
    listen_address: Annotated[str, typer.Option("--listen-address")] = "127.0.0.1",
    server_name: Annotated[str, typer.Option("--server-name")] = "localhost",
    max_body: Annotated[str, typer.Option("--max-body", help="client_max_body_size")] = "1m",
    login_rate: Annotated[
        str, typer.Option("--login-rate", help="POST /token per client address")
    ] = "10r/m",
    data_dir: DataDirOption = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option("--passphrase-file", exists=True, dir_okay=False, help="CA key passphrase"),
    ] = None,
) -> None:
    """Write nginx.conf: TLS termination, HTTP→HTTPS, HTTP/2, login rate limit, mTLS upstreams.

    Issues (or renews) nginx's own certificate, named "proxy", in the data
    directory's PKI. Run the result with:
    nginx -p DIR -c nginx.conf -e stderr -g 'daemon off;'
    """
    upstreams = {
        name: address
        for name, address in (("auth", auth), ("orders", orders), ("chat", chat))
        if address is not None
    }
    if not upstreams:
        fail("give at least one of --auth, --orders, --chat (HOST:PORT of the service)")
    settings = load_settings(data_dir)
    transport = getattr(settings, "transport", None)
    if not isinstance(transport, TransportSettings):
        transport = TransportSettings()
    passphrase = passphrase_file.read_text().rstrip("\r\n") if passphrase_file else None
    pki = Pki(settings.data_dir / "pki", settings=transport, passphrase=passphrase)
    ips = ["127.0.0.1"]
    try:
        address = ipaddress.ip_address(listen_address)
    except ValueError:
        pass
    else:
        if not address.is_unspecified and str(address) not in ips:
            ips.append(str(address))
    try:
        creds = pki.ensure_service(
            PROXY_CERTIFICATE, dns=list(dict.fromkeys([server_name, "localhost"])), ips=ips
        )
        text = render_nginx_config(
            upstreams=upstreams,
            ca_file=creds.ca_file,
            server_cert=creds.cert_file,
            server_key=creds.key_file,
            client_cert=creds.cert_file,
            client_key=creds.key_file,
            listen_https=listen_https,
            listen_http=listen_http or None,
            listen_address=listen_address,
            server_name=server_name,
            client_max_body_size=max_body,
            login_rate=login_rate,
            nginx_version=_nginx_version(),
        )
    except BarbacanaError as exc:
        fail(exc.detail)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    err_console.print(
        f"wrote {out}; run: nginx -p {out.parent.resolve()} -c {out.name} -e stderr "
        "-g 'daemon off;'"
    )
