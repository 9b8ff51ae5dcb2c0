"""Secret values, references, and the health records that describe them without them."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from .errors import SecretMalformedError, SecretNotFoundError, SecretsConfigurationError

__all__ = [
    "SecretHealth",
    "SecretRef",
    "SecretValue",
    "SourceHealth",
    "json_field",
    "pick_field",
    "split_field",
]

_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class SecretValue:
    """A secret as a source returned it: the value (masked) and the source's version.

    ``repr()`` and ``str()`` never show the value; call :meth:`get_secret_value`
    at the one place that needs it.
    """

    __slots__ = ("_secret", "version")

    def __init__(self, value: str | SecretStr, *, version: str | None = None) -> None:
        self._secret = value if isinstance(value, SecretStr) else SecretStr(value)
        #: The source's version label (Vault KV version, AWS VersionId, file mtime), if any.
        self.version = version

    @property
    def secret(self) -> SecretStr:
        """The value as a pydantic :class:`~pydantic.SecretStr`."""
        return self._secret

    def get_secret_value(self) -> str:
        """The plain value. Do not log it."""
        return self._secret.get_secret_value()

    def same_as(self, other: SecretValue | None) -> bool:
        """Whether ``other`` holds the same value (compared in constant time)."""
        if other is None:
            return False
        return hmac.compare_digest(
            self.get_secret_value().encode(), other.get_secret_value().encode()
        )

    def __repr__(self) -> str:
        return f"SecretValue(version={self.version!r}, value='**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        return self.version == other.version and self.same_as(other)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value: not a key


@dataclass(frozen=True)
class SecretRef:
    """A reference to a secret: ``<source>://<name>``, as in ``vault://secret/data/app#db_password``.

    ``source`` names a configured source (``env``, ``file``, ``vault``, ``aws``, or
    the name given to it); ``name`` is what that source understands, including an
    optional ``#field`` that picks one member of a JSON object or Vault KV secret.
    """

    source: str
    name: str

    @classmethod
    def parse(cls, ref: str) -> SecretRef:
        """Split ``ref`` at ``://``.

        Raises:
            SecretsConfigurationError: ``ref`` is not ``<source>://<name>``.
        """
        source, sep, name = ref.partition("://")
        if not sep or not _SOURCE_NAME.match(source) or not name:
            # The text is not echoed: a secret pasted where its reference belongs must not leak.
            raise SecretsConfigurationError(
                "a secret reference is not of the form <source>://<name> (the value is not "
                "shown); write e.g. file://db_password or vault://secret/data/app#db_password"
            )
        return cls(source=source, name=name)

    def __str__(self) -> str:
        return f"{self.source}://{self.name}"


@dataclass(frozen=True)
class SourceHealth:
    """What a source's ``check()`` found: reachable and authenticated, plus warnings.

    Never holds a secret value or credential.
    """

    source: str
    ok: bool
    detail: str
    warnings: tuple[str, ...] = ()
    #: Safe numbers and labels (token time to live, renewals, logins).
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SecretHealth:
    """The cached state of one secret: where it comes from and how fresh it is.

    Never holds the value; ``last_error`` is a stable error code.
    """

    secret: str
    source: str
    loaded: bool
    version: str | None
    last_success: float | None
    last_attempt: float | None
    last_error: str | None
    consecutive_failures: int
    changes: int

    @property
    def ok(self) -> bool:
        """Loaded, and the latest attempt succeeded."""
        return self.loaded and self.last_error is None


def split_field(name: str) -> tuple[str, str | None]:
    """Split ``path#field`` into the path and the optional field."""
    path, sep, fieldname = name.rpartition("#")
    if not sep:
        return name, None
    return path, fieldname


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def pick_field(data: Mapping[str, Any], fieldname: str | None, *, secret: str, source: str) -> str:
    """Select ``fieldname`` from a secret holding several values.

    Without a field the secret must hold exactly one key, whose value is used.
    Non-string members are returned as JSON text. Key names (never values)
    appear in the error so the reference can be corrected.

    Raises:
        SecretNotFoundError: ``fieldname`` is not a key of ``data``.
        SecretMalformedError: no field given and ``data`` holds more or less than one key.
    """
    if fieldname is None:
        if len(data) != 1:
            keys = ", ".join(sorted(map(str, data))) or "none"
            raise SecretMalformedError(
                f"the secret holds several fields; name one with #field (fields: {keys})",
                secret=secret,
                source=source,
            )
        (value,) = data.values()
    else:
        if fieldname not in data:
            keys = ", ".join(sorted(map(str, data))) or "none"
            raise SecretNotFoundError(
                f"field {fieldname!r} is not in the secret (fields: {keys})",
                secret=secret,
                source=source,
            )
        value = data[fieldname]
    return _as_text(value)


def json_field(text: str, fieldname: str, *, secret: str, source: str) -> str:
    """Select ``fieldname`` from ``text``, a JSON object.

    Raises:
        SecretMalformedError: ``text`` is not a JSON object (the parser's message,
            which may quote the text, is not kept).
        SecretNotFoundError: the object has no such key.
    """
    try:
        data = json.loads(text)
    except ValueError:
        raise SecretMalformedError(
            "the secret is not a JSON object, so #field cannot select from it",
            secret=secret,
            source=source,
        ) from None
    if not isinstance(data, dict):
        raise SecretMalformedError(
            "the secret is JSON but not an object, so #field cannot select from it",
            secret=secret,
            source=source,
        )
    return pick_field(data, fieldname, secret=secret, source=source)
