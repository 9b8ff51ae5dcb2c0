"""``barbacana check``: is this deployment ready for production?

Like Django's ``manage.py check --deploy``: it reads the effective
configuration (the ``BARBACANA_*`` environment, ``.env`` and the data
directory), optionally asks a running service at ``--url``, and prints one
line per finding with its stable id and how to fix it. The exit code is 1
when a finding reaches ``--fail-level`` (``error`` by default), so it can gate
a release in CI; 2 means the command itself was misused.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from .._clock import system_clock
from ..checks import (
    CheckContext,
    Message,
    Registry,
    Severity,
    default_registry,
    deployment_warnings,
    gather,
    settings_error,
    verify_context,
)
from ..errors import BarbacanaError
from ..settings import Settings
from ._common import DataDirOption, JsonOption, console, fail

__all__ = ["Outcome", "check", "collect", "deployment_warnings", "print_messages"]

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


class FailLevel(StrEnum):
    """The least severe finding that makes ``barbacana check`` exit 1."""

    error = "error"
    warning = "warning"
    info = "info"


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Also probe a running service: HTTPS, HSTS, security headers, docs, Server header",
    ),
]
CaOption = Annotated[
    Path | None,
    typer.Option(
        "--ca",
        exists=True,
        dir_okay=False,
        help="CA certificate (PEM) for --url (default: system roots plus <data-dir>/pki/ca.pem)",
    ),
]
PlainHttpOption = Annotated[
    bool,
    typer.Option("--plain-http", help="The services serve plain HTTP (barbacana up --plain-http)"),
]
FailLevelOption = Annotated[
    FailLevel, typer.Option("--fail-level", help="Exit 1 when a finding is at least this severe")
]


def _environment() -> dict[str, str]:
    """The variables the services see: ``.env`` (as ``Settings`` reads it), then the process."""
    from dotenv import dotenv_values

    env_file = Settings.model_config.get("env_file")
    merged: dict[str, str] = {}
    if isinstance(env_file, str) and Path(env_file).is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        fail("--url must be an absolute http:// or https:// URL, such as https://127.0.0.1:8000", 2)
    if parts.username or parts.password:
        fail("--url must not carry credentials", 2)


def _environment_only(
    registry: Registry,
    exc: ValidationError | BarbacanaError,
    environ: Mapping[str, str],
    now: float,
) -> list[Message]:
    # The settings do not load: report why, plus what the environment alone reveals.
    context = CheckContext(settings=Settings.model_construct(), now=now, environ=environ)
    return [settings_error(exc), *registry.run(context, tags={"environment"})]


@dataclass(frozen=True)
class Outcome:
    """What one ``barbacana check`` run found."""

    messages: list[Message]
    #: The active profile (``None`` when the settings could not be loaded).
    profile: str | None


def collect(
    *,
    data_dir: Path | None,
    url: str | None,
    ca: Path | None,
    plain_http: bool,
    registry: Registry | None = None,
) -> Outcome:
    """Every finding of one ``barbacana check`` run (the command without its output)."""
    checks = registry or default_registry()
    environ = _environment()
    overrides = {} if data_dir is None else {"data_dir": data_dir}
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except (ValidationError, BarbacanaError) as exc:
        return Outcome(_environment_only(checks, exc, environ, system_clock()), None)
    if url is not None:
        _check_url(url)
        if url.lower().startswith("https://"):
            try:
                verify_context(settings, ca)
            except BarbacanaError as exc:
                fail(exc.detail, 2)
    context = asyncio.run(
        gather(settings, environ=environ, plain_http=plain_http, url=url, ca_file=ca)
    )
    return Outcome(checks.run(context), settings.profile)


def print_messages(messages: Iterable[Message], *, out: Console | None = None) -> None:
    """Print findings as a table (what ``barbacana up`` shows at start)."""
    out = out or console
    table = Table(show_lines=True)
    for column in ("id", "finding", "target", "fix"):
        table.add_column(column, overflow="fold")
    for message in messages:
        what = f"{message.title}: {message.detail}" if message.detail else message.title
        table.add_row(
            f"[{_STYLE[message.severity]}]{message.id}[/]", what, message.target or "", message.hint
        )
    out.print(table)


def _summary(messages: list[Message]) -> dict[str, int]:
    return {
        severity.name.lower(): sum(1 for m in messages if m.severity == severity)
        for severity in sorted(Severity, reverse=True)
    }


def check(
    data_dir: DataDirOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
    ca: CaOption = None,
    plain_http: PlainHttpOption = False,
    fail_level: FailLevelOption = FailLevel.error,
) -> None:
    """Check the deployment's configuration (and a running service with --url).

    Exit 0 when no finding reaches --fail-level, 1 when one does, 2 on misuse.
    """
    outcome = collect(data_dir=data_dir, url=url, ca=ca, plain_http=plain_http)
    messages = outcome.messages
    threshold = Severity.parse(fail_level.value)
    failed = any(message.severity >= threshold for message in messages)
    summary = _summary(messages)
    if as_json:
        document = {
            "ok": not failed,
            "profile": outcome.profile,
            "summary": summary,
            "findings": [message.to_dict() for message in messages],
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        if messages:
            print_messages(messages)
        counts = ", ".join(f"{count} {name}" for name, count in summary.items())
        verdict = "[bold red]not ready[/]" if failed else "[green]no blocking finding[/]"
        console.print(f"{verdict} ({counts})")
        if outcome.profile == "development":
            console.print(
                "profile: development, so production-only checks were skipped "
                "(check a deployment with BARBACANA_PROFILE=production)"
            )
    if failed:
        raise typer.Exit(1)
