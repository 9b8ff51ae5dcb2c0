"""``barbacana audit``: verify, tail, export, prove, and check proofs.

Which trail: ``--data-dir DIR`` reads that directory's own SQLite database and
audit keys (so a copied data directory verifies on its own);
``--database-url URL`` reads a PostgreSQL (or other) trail, with the public key
from ``--public-key`` or the data directory; neither uses the environment's
settings (``BARBACANA_DATA_DIR``, ``BARBACANA_DATABASE_URL``).

The audit key files are sealed under the key-encryption key
(``secrets.kek_ref``, by default ``secrets/kek`` of the data directory). The
public key beside them is plain, so ``verify`` needs no KEK: without one it
checks every hash and signature, and says that the event MACs (which need the
HMAC key) were not checked.

Exit codes: 0 the trail verifies, 1 it does not (the message names the first
bad sequence number), 2 there is nothing to verify (no database, no audit
tables, no key) or the input is unusable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from cryptography.hazmat.primitives import serialization
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ..audit import (
    Actor,
    AuditEvent,
    AuditKey,
    AuditKeyLockedError,
    AuditSettings,
    AuditStore,
    AuditTrail,
    Checkpoint,
    SqlAuditStore,
    VerifyReport,
    build_proof,
    load_public_key,
    public_key_file,
    read_checkpoints,
    verify_proof,
    verify_trail,
)
from ..audit._keys import load_mac_key
from ..audit._proofs import load_proof
from ..crypto import Sealer
from ..errors import BarbacanaError
from ..settings import Settings
from ..storage import Database

__all__ = ["app"]

T = TypeVar("T")

app = typer.Typer(
    name="audit",
    help="Audit trail: verify, tail, export, prove.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

EXIT_TAMPERED = 1
EXIT_ERROR = 2
#: Show a progress bar from this many events on.
_PROGRESS_FROM = 20_000

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory: its own database and audit keys."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Database URL of the trail (postgresql://...)."),
]
PublicKey = Annotated[
    Path | None,
    typer.Option("--public-key", help="Audit public key (PEM), e.g. from `audit public-key`."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except BarbacanaError as exc:
        raise _fail(exc.detail) from None


@dataclass(frozen=True)
class _Target:
    url: str
    data_dir: Path | None
    settings: AuditSettings

    def key_path(self) -> Path | None:
        if self.settings.key_path is not None:
            return self.settings.key_path
        return None if self.data_dir is None else self.settings.key_file(self.data_dir)

    def hmac_path(self) -> Path | None:
        if self.settings.hmac_key_path is not None:
            return self.settings.hmac_key_path
        return None if self.data_dir is None else self.settings.hmac_key_file(self.data_dir)


def _target(data_dir: Path | None, database_url: str | None) -> _Target:
    if data_dir is not None and not data_dir.is_dir():
        raise _fail(f"{data_dir} is not a directory")
    if database_url is not None:
        return _Target(database_url, data_dir, AuditSettings())
    if data_dir is not None:
        url = f"sqlite+aiosqlite:///{data_dir.resolve() / 'barbacana.db'}"
        return _Target(url, data_dir, AuditSettings())
    try:
        settings = Settings()
    except (BarbacanaError, ValueError) as exc:
        raise _fail(f"invalid settings: {exc}") from None
    audit = getattr(settings, "audit", None)
    return _Target(
        settings.database_url,
        settings.data_dir,
        audit if isinstance(audit, AuditSettings) else AuditSettings(),
    )


def _check_sqlite_file(url: str) -> None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise _fail("--database-url is not a database URL") from None
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if not path or path == ":memory:" or not Path(path).is_file():
            raise _fail(f"no database at {path or '(none)'}: nothing to verify")


@asynccontextmanager
async def _store(target: _Target) -> AsyncIterator[SqlAuditStore]:
    _check_sqlite_file(target.url)
    db = Database(target.url)
    try:
        store = SqlAuditStore(db)
        if not await store.exists():
            raise _fail("the database holds no audit trail (no audit tables): nothing to verify")
        yield store
    finally:
        await db.dispose()


@dataclass(frozen=True)
class _Kek:
    """The key-encryption key of a target's sealed audit key files, or why it is missing."""

    sealer: Sealer | None
    problem: str | None = None

    def locked(self, path: Path) -> str:
        return f"{path} is sealed and the key-encryption key is unavailable: {self.problem}"


async def _kek(target: _Target, *paths: Path | None) -> _Kek:
    """Open the KEK, only if one of ``paths`` is a sealed key file.

    Files of an earlier version (plain) are read without it, and left as they are.
    """
    if not any(path is not None and AuditKey.is_sealed(path) for path in paths):
        return _Kek(None)
    from ..services._runtime import open_sealer

    try:
        settings = Settings() if target.data_dir is None else Settings(data_dir=target.data_dir)
    except (BarbacanaError, ValueError):
        return _Kek(None, "the settings are invalid (run `barbacana check`)")
    ref = settings.secrets.kek_ref
    try:
        return _Kek(await open_sealer(settings))
    except BarbacanaError as exc:
        return _Kek(None, f"{exc.detail} (secrets.kek_ref = {ref}; set BARBACANA_SECRETS_KEK_REF)")


def _key_error(exc: BarbacanaError) -> typer.Exit:
    if isinstance(exc, AuditKeyLockedError):
        return _fail(
            f"{exc.detail}; check BARBACANA_SECRETS_KEK_REF: it must name the key-encryption "
            "key the audit keys were sealed with"
        )
    return _fail(exc.detail)


def _load_key(target: _Target, kek: _Kek) -> AuditKey:
    key_path, hmac_path = target.key_path(), target.hmac_path()
    if key_path is None or hmac_path is None:
        raise _fail("pass --data-dir DIR")
    for path in (key_path, hmac_path):
        if kek.sealer is None and AuditKey.is_sealed(path):
            raise _fail(kek.locked(path))
    passphrase = target.settings.key_passphrase
    try:
        return AuditKey.load(
            key_path,
            hmac_path,
            sealer=kek.sealer,
            passphrase=passphrase.get_secret_value().encode() if passphrase else None,
        )
    except BarbacanaError as exc:
        raise _key_error(exc) from None


def _public_key(target: _Target, explicit: Path | None, kek: _Kek) -> Any:
    candidates = [explicit] if explicit is not None else []
    key_path = target.key_path()
    if explicit is None and key_path is not None:
        candidates.append(public_key_file(key_path))
    for path in candidates:
        if path.is_file():
            return load_public_key(path.read_bytes())
        if path is explicit:
            raise _fail(f"public key file {path} does not exist")
    if key_path is not None and key_path.is_file() and target.hmac_path() is not None:
        return _load_key(target, kek).public_key
    raise _fail("no audit public key: pass --public-key FILE or --data-dir DIR")


def _mac_key(path: Path | None, explicit: bool, kek: _Kek) -> tuple[bytes | None, str | None]:
    """The event-MAC key from the HMAC key file, or why verify goes on without it.

    A sealed file whose KEK is missing or wrong is a note (hashes and signatures
    are still checked), unless the file was asked for with ``--hmac-key``.
    """
    if path is None or not (explicit or path.is_file()):
        return None, None
    if kek.sealer is None and AuditKey.is_sealed(path):
        if explicit:
            raise _fail(kek.locked(path))
        return None, f"event MACs not checked: {kek.locked(path)}"
    try:
        return load_mac_key(path, sealer=kek.sealer), None
    except AuditKeyLockedError as exc:
        if explicit:
            raise _key_error(exc) from None
        return None, f"event MACs not checked: {exc.detail}"
    except BarbacanaError as exc:
        raise _key_error(exc) from None


def _load_checkpoints(paths: list[Path]) -> list[Checkpoint]:
    loaded: list[Checkpoint] = []
    for path in paths:
        try:
            loaded.extend(read_checkpoints(path.read_text(encoding="utf-8").splitlines()))
        except OSError as exc:
            raise _fail(f"cannot read {path}: {exc.strerror}") from None
    return loaded


def _report_json(report: VerifyReport) -> dict[str, Any]:
    latest = report.latest_checkpoint
    return {
        "ok": report.ok,
        "events": report.size,
        "checkpoints_checked": report.checkpoints_checked,
        "latest_checkpoint": None if latest is None else latest.to_json(),
        "uncovered_events": report.uncovered,
        "macs_checked": report.macs_checked,
        "problem": None
        if report.problem is None
        else {
            "seq": report.problem.seq,
            "kind": report.problem.kind,
            "message": report.problem.message,
        },
        "notes": list(report.notes),
    }


@app.command("verify")
def verify(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint", help="Exported checkpoints (JSON lines) kept elsewhere; repeatable."
        ),
    ] = None,
    public_key: PublicKey = None,
    hmac_key: Annotated[
        Path | None, typer.Option("--hmac-key", help="Audit HMAC key file (exact positions).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Recompute the tree, check every checkpoint and event; name the first bad seq."""
    target = _target(data_dir, database_url)
    exported = _load_checkpoints(checkpoint or [])

    async def go() -> VerifyReport:
        async with _store(target) as store:
            mac_path = hmac_key or target.hmac_path()
            kek = await _kek(target, target.key_path(), mac_path)
            key = _public_key(target, public_key, kek)
            mac_key, skipped = _mac_key(mac_path, hmac_key is not None, kek)
            report = await _verify(store, key, mac_key, exported)
            if skipped is not None:
                report = dataclasses.replace(report, notes=(*report.notes, skipped))
            return report

    async def _verify(
        store: SqlAuditStore, key: Any, mac_key: bytes | None, exported: list[Checkpoint]
    ) -> VerifyReport:
        head = await store.head()
        if head.size < _PROGRESS_FROM or as_json:
            return await verify_trail(store, key, mac_key=mac_key, exported=exported)
        columns = (
            TextColumn("verifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("verify", total=head.size)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return await verify_trail(
                store, key, mac_key=mac_key, exported=exported, progress=advance
            )

    report = _run(go())
    if as_json:
        typer.echo(json.dumps(_report_json(report), indent=2))
    elif report.problem is None:
        latest = report.latest_checkpoint
        where = (
            f"latest at size {latest.tree_size}, {latest.timestamp}"
            if latest is not None
            else "none yet"
        )
        out.print(
            f"[green]OK[/]: audit trail verified: {report.size} events, "
            f"{report.checkpoints_checked} checkpoints ({where})."
        )
        if report.uncovered:
            out.print(
                f"{report.uncovered} event(s) after the latest checkpoint are not signed yet."
            )
        for note in report.notes:
            out.print(f"note: {note}")
    else:
        problem = report.problem
        out.print(f"[bold red]FAILED[/] at seq {problem.seq}: {problem.kind}: {problem.message}")
    if report.problem is not None:
        raise typer.Exit(EXIT_TAMPERED)


def _printable(text: str) -> str:
    """Escape control characters: event fields must not drive the operator's terminal."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _line(event: AuditEvent) -> str:
    actor = event.actor.type if event.actor.id is None else f"{event.actor.type}:{event.actor.id}"
    if event.actor.name:
        actor += f"({event.actor.name})"
    parts = [
        event.timestamp or "",
        f"#{event.seq}",
        event.action,
        event.outcome,
        f"actor={actor}",
    ]
    if event.actor.address:
        parts.append(f"from={event.actor.address}")
    if event.resource:
        parts.append(f"resource={event.resource}")
    if event.reason:
        parts.append(f"reason={event.reason}")
    if event.request_id:
        parts.append(f"request_id={event.request_id}")
    return _printable(" ".join(parts))


@app.command("tail")
def tail(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Recent events first.")] = 10,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", help="Keep printing new events.")
    ] = True,
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between polls.")] = 1.0,
    max_events: Annotated[
        int | None, typer.Option("--max-events", min=1, help="Stop after printing this many.")
    ] = None,
    after: Annotated[
        int | None,
        typer.Option("--after", min=-1, help="Follow from the event after this seq (not the end)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Print recent events, then follow new ones (polling)."""
    target = _target(data_dir, database_url)

    async def go() -> None:
        printed = 0

        def show(events: list[AuditEvent]) -> bool:
            nonlocal printed
            for event in events:
                if as_json:
                    typer.echo(event.canonical().decode("utf-8"))
                else:
                    out.print(_line(event), markup=False)
                printed += 1
                if max_events is not None and printed >= max_events:
                    return False
            sys.stdout.flush()
            return True

        async with _store(target) as store:
            last = (await store.head()).size - 1 if after is None else after
            if lines and after is None:
                recent, _ = await store.query(limit=min(lines, 1000), newest_first=True)
                recent.reverse()
                if not show(recent):
                    return
                last = max([last, *(e.seq or 0 for e in recent)])
            while follow:
                await asyncio.sleep(interval)
                while True:
                    page, more = await store.query(after_seq=last, limit=500)
                    if page:
                        last = page[-1].seq or last
                        if not show(page):
                            return
                    if more is None:
                        break

    try:
        _run(go())
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@app.command("export")
def export(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    checkpoints: Annotated[
        bool, typer.Option("--checkpoints", help="Export signed checkpoints (JSON lines).")
    ] = False,
    events: Annotated[
        bool, typer.Option("--events", help="Export events, exactly as hashed (JSON lines).")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file instead of stdout.")
    ] = None,
) -> None:
    """Export checkpoints (to keep elsewhere) or events, one JSON object per line."""
    if checkpoints == events:
        raise _fail("choose one of --checkpoints or --events")
    target = _target(data_dir, database_url)

    async def go() -> list[str]:
        async with _store(target) as store:
            if checkpoints:
                return [c.to_line() for c in await store.checkpoints()]
            lines: list[str] = []
            after = -1
            while True:
                rows = await store.rows(after_seq=after, limit=5000)
                if not rows:
                    return lines
                lines.extend(r.body.decode("utf-8") for r in rows)
                after = rows[-1].seq

    lines = _run(go())
    text = "".join(f"{line}\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {len(lines)} line(s) to {output}")


@app.command("prove")
def prove(
    seq: Annotated[int, typer.Argument(min=0, help="Sequence number of the event.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="An older exported checkpoint (its last line is used): add a consistency proof.",
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
) -> None:
    """Inclusion proof of one event against the latest checkpoint (RFC 9162 §2.1.3)."""
    target = _target(data_dir, database_url)
    older = None
    if checkpoint is not None:
        loaded = _load_checkpoints([checkpoint])
        if not loaded:
            raise _fail(f"{checkpoint} holds no checkpoint")
        older = loaded[-1]

    async def go() -> dict[str, Any]:
        async with _store(target) as store:
            stored = await store.checkpoints()
            if not stored:
                raise _fail("the trail has no checkpoint yet; run `barbacana audit checkpoint`")
            latest = stored[-1]
            if seq >= latest.tree_size:
                raise _fail(
                    f"event {seq} is not covered by the latest checkpoint (size "
                    f"{latest.tree_size}); run `barbacana audit checkpoint`"
                )
            found = await store.event(seq)
            if found is None:
                raise _fail(f"event {seq} is not in the trail", EXIT_TAMPERED)
            leaves = await store.leaf_hashes(latest.tree_size)
            return build_proof(seq, found[1], leaves, latest, older)

    document = json.dumps(_run(go()), indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(document)
    else:
        output.write_text(document, encoding="utf-8")
        err.print(f"wrote the proof of event {seq} to {output}")


@app.command("verify-proof")
def verify_proof_command(
    proof: Annotated[Path, typer.Argument(help="A document written by `barbacana audit prove`.")],
    public_key: Annotated[Path, typer.Option("--public-key", help="The audit public key (PEM).")],
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="A checkpoint you kept: the proof must extend it."),
    ] = None,
) -> None:
    """Check a proof with only the public key: no database, no service."""
    try:
        document = load_proof(proof.read_text(encoding="utf-8"))
        key = load_public_key(public_key.read_bytes())
    except OSError as exc:
        raise _fail(f"cannot read {exc.filename}: {exc.strerror}") from None
    except BarbacanaError as exc:
        raise _fail(exc.detail) from None
    trusted = None
    if checkpoint is not None:
        kept = _load_checkpoints([checkpoint])
        if not kept:
            raise _fail(f"{checkpoint} holds no checkpoint")
        trusted = kept[-1]
    try:
        result = verify_proof(document, key, trusted=trusted)
    except BarbacanaError as exc:
        out.print(f"[bold red]FAILED[/]: {exc.detail}")
        raise typer.Exit(EXIT_TAMPERED) from None
    message = (
        f"[green]OK[/]: event {result.event.seq} ({result.event.action}) is in the trail "
        f"signed at size {result.checkpoint.tree_size}"
    )
    if result.consistent_with is not None:
        message += f", which extends the checkpoint at size {result.consistent_with.tree_size}"
    out.print(message + ".")


@app.command("public-key")
def public_key_command(data_dir: DataDir = None) -> None:
    """Print the audit public key (PEM), to keep with exported checkpoints."""
    target = _target(data_dir, None)
    key_path = target.key_path()
    # The public key file is plain: the KEK is needed only to rebuild it from the private key.
    kek = _Kek(None)
    if key_path is not None and not public_key_file(key_path).is_file():
        kek = _run(_kek(target, key_path, target.hmac_path()))
    key = _public_key(target, None, kek)
    sys.stdout.write(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
    )


def _open_trail(target: _Target, service: str) -> Callable[[], Coroutine[Any, Any, AuditTrail]]:
    async def opener() -> AuditTrail:
        if target.data_dir is None:
            raise _fail("the audit key is needed: pass --data-dir DIR")
        _check_sqlite_file(target.url)
        db = Database(target.url)
        store = SqlAuditStore(db)
        if not await store.exists():
            await db.dispose()
            raise _fail("the database holds no audit trail (no audit tables)")
        settings = target.settings.model_copy(update={"log_events": False})
        kek = await _kek(target, target.key_path(), target.hmac_path())
        for path in (target.key_path(), target.hmac_path()):
            if path is not None and kek.sealer is None and AuditKey.is_sealed(path):
                await db.dispose()
                raise _fail(kek.locked(path))
        try:
            return await AuditTrail.open(
                db,
                target.data_dir,
                settings,
                service=service,
                run_migrations=False,
                sealer=kek.sealer,
            )
        except BarbacanaError as exc:
            await db.dispose()
            raise _key_error(exc) from None

    return opener


@app.command("checkpoint")
def checkpoint_command(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Sign a checkpoint now, covering every event so far (before an export)."""
    target = _target(data_dir, database_url)
    opener = _open_trail(target, "cli")

    async def go() -> Checkpoint | None:
        trail = await opener()
        store: AuditStore | None = trail.store
        try:
            await trail.record("audit.checkpoint.forced", actor=Actor.operator(), outcome="success")
            return await trail.checkpoint()
        finally:
            await trail.close()
            if isinstance(store, SqlAuditStore):
                await store.database.dispose()

    signed = _run(go())
    if signed is None:
        out.print("every event is already covered by a checkpoint.")
    else:
        out.print(f"signed checkpoint at size {signed.tree_size} ({signed.timestamp}).")


@app.command("hmac")
def hmac_command(
    value: Annotated[str, typer.Argument(help="The value to look for, e.g. an e-mail address.")],
    data_dir: DataDir = None,
) -> None:
    """Print the blind-index form of a value, to search exported events for it."""
    target = _target(data_dir, None)
    kek = _run(_kek(target, target.key_path(), target.hmac_path()))
    typer.echo(_load_key(target, kek).blind_index(value))


if __name__ == "__main__":
    app()
