"""What the checks read: settings, environment, and facts gathered beforehand.

Checks are plain functions of a :class:`CheckContext`. Everything that needs
I/O (the signing keys in the database, the answers of a running service) is
gathered first (:mod:`barbacana.checks._gather`) and handed in, so every check
is a pure function that a test can feed any configuration it likes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from ..errors import BarbacanaError
from ..settings import Settings
from ._catalogue import SETTINGS_INVALID
from ._messages import Message

__all__ = ["CheckContext", "Probe", "SigningKeyRecord", "describe_error", "settings_error"]


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    """Public metadata of one signing key, as stored in ``signing_keys``."""

    kid: str
    alg: str
    state: str
    created_at: float
    activated_at: float | None


@dataclass(frozen=True, slots=True)
class Probe:
    """What a running service answered (``barbacana check --url``).

    Attributes:
        url: The URL asked.
        status: Its status code (``None`` when nothing answered).
        headers: Response headers, names lower-case, repeated fields joined with ``", "``.
        exposed_docs: Documentation paths that answered 200.
        error: Why nothing answered (connection refused, TLS failure...).
        untrusted_certificate: The TLS certificate did not verify.
    """

    url: str
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    exposed_docs: tuple[str, ...] = ()
    error: str | None = None
    untrusted_certificate: bool = False

    @property
    def is_https(self) -> bool:
        return self.url.lower().startswith("https://")


@dataclass(frozen=True, slots=True)
class CheckContext:
    """Everything a check may look at.

    Build it directly, or with :func:`~barbacana.checks.gather`, which also
    reads the database and probes a URL.

    Attributes:
        settings: The effective settings.
        environ: The environment the services get (``.env`` values included);
            only variable names and the shape of values are ever reported.
        now: UNIX seconds, for ages and expiry.
        plain_http: The listeners serve plain HTTP (``barbacana up --plain-http``).
        url: The URL clients use, when one was given to check.
        signing_keys: The keys in the database (``None``: not read).
        unread: What could not be inspected, and why (``{"signing_keys": "..."}``).
        probe: What the service at ``url`` answered (``None``: not probed).
    """

    settings: Settings
    now: float
    environ: Mapping[str, str] = field(default_factory=dict)
    plain_http: bool = False
    url: str | None = None
    signing_keys: tuple[SigningKeyRecord, ...] | None = None
    unread: Mapping[str, str] = field(default_factory=dict)
    probe: Probe | None = None

    @property
    def production(self) -> bool:
        """Whether the production profile is active."""
        return self.settings.profile == "production"


def describe_error(exc: ValidationError | BarbacanaError) -> str:
    """A one-line account of invalid settings, naming fields but never their values."""
    if isinstance(exc, BarbacanaError):
        return exc.detail
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        location = ".".join(str(part) for part in error["loc"])
        parts.append(f"{location or 'settings'}: {error['msg']}")
    return "; ".join(parts)


def settings_error(exc: ValidationError | BarbacanaError) -> Message:
    """The ``BRB-E000`` message for settings that cannot be loaded."""
    return SETTINGS_INVALID(describe_error(exc), target="settings")
