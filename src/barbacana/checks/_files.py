"""File-permission checks on the data directory.

Barbacana writes every private key and secret file 0600 and their
directories 0700 (``barbacana up``, ``barbacana pki``, the audit trail); a
copy, a restore from backup or a hand-made directory often loses that. Only
the owner should read them: ``mode & 0o077`` must be zero.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

from ._catalogue import DIRECTORY_OPEN, FILE_READABLE
from ._context import CheckContext
from ._messages import Message
from ._registry import Registry

__all__ = ["check_directories", "check_private_files", "private_files", "register"]


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


def private_files(context: CheckContext) -> list[Path]:
    """Every file that must be readable by its owner only, among those that exist.

    The secrets folder (key-encryption key, service clients' secrets), every
    private key of the internal CA (``pki/*-key.pem``), the audit signing and
    HMAC keys, and this service's client-secret file.
    """
    root = context.settings.data_dir
    found: list[Path] = []
    secrets_dir = root / "secrets"
    if secrets_dir.is_dir():
        found.extend(sorted(p for p in secrets_dir.iterdir() if p.is_file()))
    pki_dir = root / "pki"
    if pki_dir.is_dir():
        found.extend(sorted(pki_dir.glob("*-key.pem")))
    candidates = [
        context.settings.audit.key_file(root),
        context.settings.audit.hmac_key_file(root),
        context.settings.client.secret_file,
    ]
    found.extend(p for p in candidates if p is not None and p.is_file() and p not in found)
    return found


def check_private_files(context: CheckContext) -> Iterator[Message]:
    """A key or secret file that group or others may read or write (E070)."""
    for path in private_files(context):
        mode = _mode(path)
        if mode is not None and mode & 0o077:
            yield FILE_READABLE(
                f"{path.name} has mode {mode:04o}",
                target=str(path),
                hint=f"run `chmod 600 {path}` (Barbacana writes these files 0600)",
            )


def check_directories(context: CheckContext) -> Iterator[Message]:
    """The data directory, or its secrets, pki or audit folder, open to group or others (W071).

    A folder elsewhere that holds an audit key (``/etc/...``) may be listable:
    the key file's own mode (E070) is what protects it there.
    """
    root = context.settings.data_dir
    folders = [root, root / "secrets", root / "pki", root / "audit"]
    for folder in folders:
        mode = _mode(folder) if folder.is_dir() else None
        if mode is not None and mode & 0o077:
            yield DIRECTORY_OPEN(
                f"{folder.name or folder} has mode {mode:04o}",
                target=str(folder),
                hint=f"run `chmod 700 {folder}`: it holds the database, keys and secrets",
            )


def register(registry: Registry) -> None:
    """Add the file checks to ``registry``."""
    registry.register(check_private_files, "files")
    registry.register(check_directories, "files")
