"""Secrets from a mounted directory, one file per secret (Docker and Kubernetes secrets).

``file://db_password`` reads ``<directory>/db_password``. One trailing newline
is stripped (``echo`` and most editors add one); ``#field`` selects a member of
a JSON file. Names are confined to the directory: ``..`` segments are refused,
and a symbolic link is followed only when its target stays inside the
directory, as the ``..data`` links of a Kubernetes secret volume do. A file
readable by group or others is reported as a warning by :meth:`FilesSource.check`
(Kubernetes mounts with ``defaultMode: 0644`` unless told otherwise).

:func:`provision_file_secret` creates such a file safely (mode 0600, never
overwriting), which is how ``barbacana up`` can create its key-encryption key
on first run.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Self

from .._clock import Clock, system_clock
from ._base import SecretSource, SourceURL
from ._value import SecretValue, SourceHealth, json_field, split_field
from .errors import (
    SecretAccessDeniedError,
    SecretMalformedError,
    SecretNotFoundError,
    SecretsConfigurationError,
    SecretSourceUnavailableError,
)

if TYPE_CHECKING:
    from ._settings import SecretsSettings

__all__ = ["FilesSource", "provision_file_secret"]

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_MAX_FILES_CHECKED = 1000


def _check_name(name: str) -> str | None:
    """Why ``name`` is not a safe relative file name, or ``None`` if it is."""
    if not name or len(name) > 1024:
        return "must be 1 to 1024 characters"
    for segment in name.split("/"):
        if not _SEGMENT.match(segment):
            return (
                "each path segment must be letters, digits, '_', '.' or '-', "
                "not starting with '.' or '-' (no '..', no absolute paths)"
            )
    return None


def _strip_newline(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


class FilesSource(SecretSource):
    """A directory of secret files.

    Args:
        directory: The mounted directory (``/run/secrets``, a Kubernetes volume).
        max_bytes: Files larger than this are refused before they are read.
        name: The source name references use (``file`` by default).
    """

    scheme = "file"

    def __init__(
        self, directory: Path | str, *, max_bytes: int = 65536, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    @classmethod
    def from_url(
        cls, url: SourceURL, settings: SecretsSettings, *, clock: Clock = system_clock
    ) -> Self:
        """``file:///run/secrets``, or ``file://secrets`` relative to the working directory."""
        location = url.location
        if not location:
            raise SecretsConfigurationError("file:// needs a directory, e.g. file:///run/secrets")
        max_bytes = url.pop("max_bytes")
        url.finish()
        if max_bytes is None:
            return cls(location)
        if not max_bytes.isdigit() or int(max_bytes) < 1:
            raise SecretsConfigurationError("file:// option max_bytes must be a positive integer")
        return cls(location, max_bytes=int(max_bytes))

    @property
    def location(self) -> str:
        return str(self.directory)

    def validate_name(self, name: str) -> None:
        path, _ = split_field(name)
        problem = _check_name(path)
        if problem is not None:
            raise SecretsConfigurationError(f"{self.name}://{name}: the file name {problem}")

    def _root(self) -> str:
        try:
            root = os.path.realpath(self.directory, strict=True)
        except OSError as exc:
            raise SecretSourceUnavailableError(
                f"secrets directory {self.directory} is not available: {exc.strerror}",
                source=self.description,
            ) from exc
        if not os.path.isdir(root):
            raise SecretSourceUnavailableError(
                f"{self.directory} is not a directory", source=self.description
            )
        return root

    def _read(self, name: str) -> SecretValue:
        path, fieldname = split_field(name)
        ref = f"{self.name}://{name}"
        problem = _check_name(path)
        if problem is not None:
            raise SecretsConfigurationError(f"{ref}: the file name {problem}")
        root = self._root()
        candidate = os.path.join(root, *path.split("/"))
        real = os.path.realpath(candidate)
        if os.path.commonpath([root, real]) != root:
            raise SecretAccessDeniedError(
                f"{path} is a link that leads outside {self.directory}; refused",
                secret=ref,
                source=self.description,
            )
        try:
            # O_NOFOLLOW: the resolved path must not have become a link since it was checked.
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise SecretNotFoundError(
                f"no file {path} in {self.directory}", secret=ref, source=self.description
            ) from None
        except OSError as exc:
            raise SecretAccessDeniedError(
                f"cannot open {path} in {self.directory}: {exc.strerror}",
                secret=ref,
                source=self.description,
            ) from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SecretMalformedError(
                    f"{path} is not a regular file", secret=ref, source=self.description
                )
            if st.st_size > self.max_bytes:
                raise SecretMalformedError(
                    f"{path} is larger than {self.max_bytes} bytes",
                    secret=ref,
                    source=self.description,
                )
            data = os.read(fd, self.max_bytes + 1)
        finally:
            os.close(fd)
        if len(data) > self.max_bytes:
            raise SecretMalformedError(
                f"{path} is larger than {self.max_bytes} bytes", secret=ref, source=self.description
            )
        try:
            text = _strip_newline(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise SecretMalformedError(
                f"{path} is not UTF-8 text", secret=ref, source=self.description
            ) from None
        if fieldname is not None:
            text = json_field(text, fieldname, secret=ref, source=self.description)
        if not text:
            raise SecretMalformedError(f"{path} is empty", secret=ref, source=self.description)
        return SecretValue(text, version=f"{st.st_mtime_ns}:{st.st_ino}")

    async def get(self, name: str) -> SecretValue:
        return await asyncio.to_thread(self._read, name)

    def _scan(self) -> SourceHealth:
        try:
            root = self._root()
        except SecretSourceUnavailableError as exc:
            return SourceHealth(self.description, False, exc.detail)
        warnings: list[str] = []
        dir_mode = stat.S_IMODE(os.stat(root).st_mode)
        if dir_mode & 0o002:
            warnings.append(
                f"{self.directory} has mode {dir_mode:04o}: others can write to it; chmod o-w"
            )
        seen = 0
        for current, dirs, files in os.walk(root, followlinks=False):
            # Kubernetes keeps its atomic-update machinery in '..data' and '..<timestamp>'.
            dirs[:] = [d for d in dirs if not d.startswith("..")]
            for filename in sorted(files):
                if filename.startswith(".."):
                    continue
                seen += 1
                if seen > _MAX_FILES_CHECKED:
                    warnings.append(f"more than {_MAX_FILES_CHECKED} files; the rest not checked")
                    return SourceHealth(self.description, True, "ok", tuple(warnings))
                full = os.path.join(current, filename)
                relative = os.path.relpath(full, root)
                real = os.path.realpath(full)
                if os.path.commonpath([root, real]) != root:
                    warnings.append(f"{relative} links outside the directory and will be refused")
                    continue
                try:
                    mode = stat.S_IMODE(os.stat(real).st_mode)
                except OSError:
                    continue
                if mode & 0o077:
                    warnings.append(
                        f"{relative} has mode {mode:04o}: readable by group or others; "
                        "use 0600 (or defaultMode: 0400 in a Kubernetes secret volume)"
                    )
        return SourceHealth(self.description, True, "ok", tuple(warnings), {"files": seen})

    async def check(self) -> SourceHealth:
        return await asyncio.to_thread(self._scan)


def provision_file_secret(directory: Path | str, name: str, generate: Callable[[], str]) -> bool:
    """Create ``<directory>/<name>`` holding ``generate()`` unless it already exists.

    The directory is created with mode 0700 and the file with mode 0600. The
    value is written to a temporary file, flushed to disk, and then linked into
    place, so a crash never leaves a half-written secret and a concurrent first
    run never overwrites one.

    Returns:
        ``True`` if the file was created, ``False`` if it was already there.

    Raises:
        SecretsConfigurationError: ``name`` is not a safe file name.
        SecretMalformedError: ``generate()`` returned an empty value or one with a newline.
    """
    problem = _check_name(name)
    if problem is not None or "/" in name:
        raise SecretsConfigurationError(
            f"secret file name {name!r} must be one path segment: {problem or 'no /'}"
        )
    root = Path(directory)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = root / name
    if target.exists() or target.is_symlink():
        return False
    value = generate()
    if not value or "\n" in value or "\r" in value:
        raise SecretMalformedError(f"the generated value for {name} is empty or has a newline")
    temporary = root / f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, (value + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, target)
    except FileExistsError:
        return False
    finally:
        temporary.unlink()
    dir_fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True
