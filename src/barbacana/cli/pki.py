"""``barbacana pki``: the internal CA — init, issue, list, rotate."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import BarbacanaError
from ..transport import CertificateInfo, Pki, TransportSettings
from ._common import DataDirOption, JsonOption, emit, fail, load_settings

app = typer.Typer(help="Internal CA and service certificates.", no_args_is_help=True)

COLUMNS = ["name", "kind", "not_after", "days_left", "spiffe_id"]

PassphraseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="File holding the CA key passphrase (default: BARBACANA_TRANSPORT_CA_PASSPHRASE)",
        exists=True,
        dir_okay=False,
    ),
]


def _pki(data_dir: Path | None, passphrase_file: Path | None) -> Pki:
    settings = load_settings(data_dir)
    # ``Settings.transport`` holds the TransportSettings (trust domain, lifetimes,
    # CA passphrase from BARBACANA_TRANSPORT_CA_PASSPHRASE).
    transport = getattr(settings, "transport", None)
    if not isinstance(transport, TransportSettings):
        transport = TransportSettings()
    passphrase = None
    if passphrase_file is not None:
        passphrase = passphrase_file.read_text().rstrip("\r\n")
        if not passphrase:
            fail(f"{passphrase_file} is empty")
    return Pki(settings.data_dir / "pki", settings=transport, passphrase=passphrase)


def _row(info: CertificateInfo, now: datetime) -> dict[str, Any]:
    return {
        "name": info.name,
        "kind": info.kind,
        "serial": format(info.serial_number, "x"),
        "not_after": info.not_after.isoformat(timespec="seconds"),
        "days_left": round((info.not_after - now).total_seconds() / 86400, 1),
        "spiffe_id": info.spiffe_id,
        "dns": ",".join(info.dns_names),
        "ip": ",".join(info.ip_addresses),
        "path": str(info.path),
    }


def _show(infos: list[CertificateInfo], *, as_json: bool, title: str) -> None:
    now = datetime.now(UTC)
    emit([_row(info, now) for info in infos], COLUMNS, as_json=as_json, title=title)


@app.command("init")
def init(
    data_dir: DataDirOption = None,
    passphrase_file: PassphraseFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create the internal CA (ECDSA P-256; key file 0600, encrypted with a passphrase if given)."""
    pki = _pki(data_dir, passphrase_file)
    try:
        info = pki.init()
    except BarbacanaError as exc:
        fail(exc.detail)
    _show([info], as_json=as_json, title=f"CA created in {pki.directory}")
    if not as_json:
        typer.echo(f"Clients trust: {pki.ca_file}")


@app.command("issue")
def issue(
    name: Annotated[str, typer.Argument(help="Service (or client) name, e.g. orders")],
    dns: Annotated[list[str] | None, typer.Option("--dns", help="A DNS name (repeatable)")] = None,
    ip: Annotated[list[str] | None, typer.Option("--ip", help="An IP address (repeatable)")] = None,
    days: Annotated[
        float | None, typer.Option("--days", min=0.01, help="Lifetime (default: 7 days)")
    ] = None,
    client: Annotated[
        bool, typer.Option("--client", help="A client-only certificate (for programs, tests)")
    ] = False,
    data_dir: DataDirOption = None,
    passphrase_file: PassphraseFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a certificate whose SAN carries spiffe://<trust-domain>/svc/NAME."""
    pki = _pki(data_dir, passphrase_file)
    try:
        info = pki.issue(
            name, dns=dns or [], ips=ip or [], days=days, kind="client" if client else "service"
        )
    except BarbacanaError as exc:
        fail(exc.detail)
    _show([info], as_json=as_json, title="Certificate issued")


@app.command("list")
def list_certificates(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Every certificate with its expiry."""
    pki = _pki(data_dir, None)
    try:
        infos = pki.list()
    except BarbacanaError as exc:
        fail(exc.detail)
    _show(infos, as_json=as_json, title=f"Certificates in {pki.directory}")


@app.command("rotate")
def rotate(
    name: Annotated[str, typer.Argument(help="The certificate to re-issue")],
    days: Annotated[
        float | None, typer.Option("--days", min=0.01, help="Lifetime (default: 7 days)")
    ] = None,
    data_dir: DataDirOption = None,
    passphrase_file: PassphraseFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-issue NAME with a new key and the same names; running servers reload it."""
    pki = _pki(data_dir, passphrase_file)
    try:
        info = pki.rotate(name, days=days)
    except BarbacanaError as exc:
        fail(exc.detail)
    _show([info], as_json=as_json, title="Certificate rotated")
