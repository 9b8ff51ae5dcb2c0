"""Shared CLI plumbing: settings from options, async runner, JSON or table output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ..errors import BarbacanaError
from ..settings import Settings

T = TypeVar("T")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: BARBACANA_DATA_DIR or ./.barbacana)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output")]


def load_settings(data_dir: Path | None, **overrides: Any) -> Settings:
    """Settings from the environment, with the command line's data directory on top."""
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        return Settings(**overrides)
    except BarbacanaError as exc:
        fail(exc.detail)
    except ValueError as exc:
        fail(f"invalid settings: {exc}")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine``; a Barbacana error becomes a message and exit code 1."""
    try:
        return asyncio.run(coroutine)
    except BarbacanaError as exc:
        fail(exc.detail)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` on stderr and exit."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def emit(
    rows: Sequence[dict[str, Any]], columns: Iterable[str], *, as_json: bool, title: str
) -> None:
    """Print ``rows`` as a rich table, or as JSON."""
    if as_json:
        typer.echo(json.dumps(list(rows), indent=2, default=str))
        return
    table = Table(title=title)
    cols = list(columns)
    for column in cols:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in cols))
    console.print(table)


AsyncFn = Callable[..., Awaitable[Any]]
