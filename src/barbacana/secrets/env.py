"""Secrets from environment variables, and a ``.env`` file for development.

``env://DB_PASSWORD`` reads the variable ``DB_PASSWORD`` (with the source's
prefix, if any). The process environment wins over the file, as in
pydantic-settings. The file is read again whenever it changes, so editing it
in development is picked up by the background refresh. ``#field`` selects a
member when the value is a JSON object. Environment variables are visible to
every process that can read ``/proc/<pid>/environ`` and often end up in crash
reports: prefer mounted files or a secrets manager in production.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Self

from .._clock import Clock, system_clock
from ._base import SecretSource, SourceURL
from ._value import SecretValue, SourceHealth, json_field, split_field
from .errors import (
    SecretMalformedError,
    SecretNotFoundError,
    SecretsConfigurationError,
    SecretSourceUnavailableError,
)

if TYPE_CHECKING:
    from ._settings import SecretsSettings

__all__ = ["EnvSource"]

_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_ENV_FILE_BYTES = 1 << 20


class EnvSource(SecretSource):
    """Environment variables, then an optional ``.env`` file.

    Args:
        env_file: A ``.env`` file consulted for variables the environment lacks.
        environ: The environment to read (the process environment by default).
        prefix: Prepended to every name (``APP_`` makes ``env://DB`` read ``APP_DB``).
        name: The source name references use (``env`` by default).
    """

    scheme = "env"

    def __init__(
        self,
        env_file: Path | str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        prefix: str = "",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if prefix and not _VARIABLE.match(prefix):
            raise SecretsConfigurationError(f"environment prefix {prefix!r} is not a valid name")
        self.env_file = Path(env_file) if env_file is not None else None
        self.prefix = prefix
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._file_stamp: tuple[int, int, int] | None = None
        self._file_values: dict[str, str] = {}

    @classmethod
    def from_url(
        cls, url: SourceURL, settings: SecretsSettings, *, clock: Clock = system_clock
    ) -> Self:
        """``env://`` or ``env://path/to/.env``, with ``?prefix=APP_``."""
        location = url.location
        prefix = url.pop("prefix", "") or ""
        url.finish()
        return cls(location or None, prefix=prefix)

    @property
    def location(self) -> str:
        where = "environment"
        if self.prefix:
            where += f" (prefix {self.prefix})"
        if self.env_file is not None:
            where += f" + {self.env_file}"
        return where

    def validate_name(self, name: str) -> None:
        variable, _ = split_field(name)
        if not _VARIABLE.match(variable):
            raise SecretsConfigurationError(
                f"{self.name}://{name} does not name an environment variable "
                "(letters, digits and '_', not starting with a digit)"
            )

    def _read_file(self, path: Path) -> dict[str, str]:
        """The ``.env`` file's variables, parsed again only when the file changed."""
        from dotenv import dotenv_values

        try:
            st = path.stat()
        except FileNotFoundError:
            self._file_stamp, self._file_values = None, {}
            return {}
        except OSError as exc:
            raise SecretSourceUnavailableError(
                f"cannot read {path}: {exc.strerror}", source=self.description
            ) from exc
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp == self._file_stamp:
                return self._file_values
            if st.st_size > _MAX_ENV_FILE_BYTES:
                raise SecretMalformedError(
                    f"{path} is larger than {_MAX_ENV_FILE_BYTES} bytes",
                    source=self.description,
                )
            # interpolate=False: a '$' in a password is a character, not a variable.
            raw = dotenv_values(path, interpolate=False, encoding="utf-8")
            self._file_values = {k: v for k, v in raw.items() if v is not None}
            self._file_stamp = stamp
            return self._file_values

    def _lookup(self, name: str) -> SecretValue:
        variable, fieldname = split_field(name)
        ref = f"{self.name}://{name}"
        key = self.prefix + variable
        value = self._environ.get(key)
        if value is None and self.env_file is not None:
            value = self._read_file(self.env_file).get(key)
        if value is None:
            where = "the environment" + (f" or {self.env_file}" if self.env_file else "")
            raise SecretNotFoundError(
                f"variable {key} is not set in {where}", secret=ref, source=self.description
            )
        if fieldname is not None:
            value = json_field(value, fieldname, secret=ref, source=self.description)
        if not value:
            raise SecretMalformedError(
                f"variable {key} is empty", secret=ref, source=self.description
            )
        return SecretValue(value)

    async def get(self, name: str) -> SecretValue:
        self.validate_name(name)
        if self.env_file is None:
            return self._lookup(name)
        return await asyncio.to_thread(self._lookup, name)

    async def check(self) -> SourceHealth:
        warnings: list[str] = []
        if self.env_file is not None:
            try:
                mode = self.env_file.stat().st_mode
            except FileNotFoundError:
                warnings.append(f"{self.env_file} does not exist; only the environment is read")
            except OSError as exc:
                return SourceHealth(
                    self.description, False, f"cannot read {self.env_file}: {exc.strerror}"
                )
            else:
                if stat.S_IMODE(mode) & 0o077:
                    warnings.append(
                        f"{self.env_file} has mode {stat.S_IMODE(mode):04o}: readable by group "
                        f"or others; chmod 600 {self.env_file}"
                    )
        return SourceHealth(self.description, True, "ok", tuple(warnings))
