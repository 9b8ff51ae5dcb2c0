"""The secret-source contract, and the scheme table that builds sources from URLs.

A source resolves a *name* (what follows ``<source>://`` in a reference) to a
:class:`~barbacana.secrets.SecretValue`. Backends with optional dependencies
(hvac, boto3) import them only when built, and say which extra to install.
"""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from .._clock import Clock, system_clock
from ._value import SecretValue, SourceHealth
from .errors import SecretsConfigurationError

if TYPE_CHECKING:
    from ._settings import SecretsSettings

_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

__all__ = [
    "SCHEMES",
    "SecretSource",
    "SourceURL",
    "source_from_url",
    "sources_from_settings",
]


def redact_url(url: str) -> str:
    """``url`` without user info, query values or fragment: safe to put in a message.

    A mistyped setting may hold a credential, so errors never echo a URL whole.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        scheme = url.partition("://")[0] if "://" in url else ""
        return f"{scheme[:16]}://<unparsable>" if scheme.isalnum() else "<unparsable>"
    if not parts.scheme:
        return "<not a URL>"
    keys = sorted(parse_qs(parts.query, keep_blank_values=True))
    query = ("?" + "&".join(f"{k}=..." for k in keys)) if keys else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"


class SourceURL:
    """A parsed source URL: scheme, location, and its query options (each given once)."""

    def __init__(self, url: str) -> None:
        shown = redact_url(url)
        try:
            parts: SplitResult = urlsplit(url)
            _ = parts.port  # validates the port
        except ValueError:
            raise SecretsConfigurationError(f"{shown} is not a valid secret source URL") from None
        if not parts.scheme or "://" not in url:
            raise SecretsConfigurationError(
                f"{shown} is not a secret source URL; write e.g. env://, file:///run/secrets, "
                "vault://vault.internal:8200 or aws://"
            )
        if parts.fragment:
            raise SecretsConfigurationError(
                f"secret source URL {shown} has a #fragment; a #field belongs in a secret "
                "reference, not in the source URL"
            )
        if parts.username or parts.password:
            raise SecretsConfigurationError(
                "a secret source URL must not carry credentials; use the BARBACANA_SECRETS_* "
                "settings (vault_token, vault_secret_id) or the provider's own credential chain"
            )
        self.scheme = parts.scheme.lower()
        self.parts = parts
        options: dict[str, str] = {}
        for key, values in parse_qs(parts.query, keep_blank_values=True).items():
            if len(values) != 1:
                raise SecretsConfigurationError(
                    f"option {key!r} is given more than once in secret source URL {shown}"
                )
            options[key] = values[0]
        self.options = options

    @property
    def location(self) -> str:
        """``netloc`` and ``path`` joined: ``file:///run/x`` gives ``/run/x``."""
        return unquote(self.parts.netloc + self.parts.path)

    def pop(self, key: str, default: str | None = None) -> str | None:
        """Take an option out (so unknown leftovers can be reported)."""
        return self.options.pop(key, default)

    def finish(self) -> None:
        """Refuse options nobody took.

        Raises:
            SecretsConfigurationError: an unknown option remains.
        """
        if self.options:
            unknown = ", ".join(sorted(self.options))
            raise SecretsConfigurationError(
                f"unknown option(s) {unknown} in {self.scheme}:// secret source URL"
            )


class SecretSource(ABC):
    """A place secrets are read from: environment, files, Vault, AWS Secrets Manager.

    Implementations are safe to call from any event loop: blocking clients run
    in a worker thread (:func:`asyncio.to_thread`) and internal state is guarded
    by thread locks, never loop-bound primitives. ``repr()`` names the source and
    its location, never a credential or a value.
    """

    #: The URL scheme family (``env``, ``file``, ``vault``, ``aws``); also the default name.
    scheme: ClassVar[str]

    def __init__(self, *, name: str | None = None) -> None:
        #: The name references use: ``<name>://<secret>``.
        self.name = name or self.scheme

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the source is (directory, server address, region): safe to log."""

    @property
    def description(self) -> str:
        """``name at location``: how errors and health reports name the source."""
        return f"{self.name} at {self.location}"

    def validate_name(self, name: str) -> None:
        """Refuse a secret name this source can never resolve (checked at registration).

        Raises:
            SecretsConfigurationError: the name is not valid for this source.
        """
        if not name or len(name) > 1024:
            raise SecretsConfigurationError(
                f"secret name for source {self.name!r} must be 1 to 1024 characters"
            )

    @abstractmethod
    async def get(self, name: str) -> SecretValue:
        """Fetch the current value of ``name``.

        Raises:
            SecretNotFoundError: no such secret or field.
            SecretSourceUnavailableError: the source cannot be reached or failed.
            SecretAccessDeniedError: the source refused this service.
            SecretMalformedError: the secret exists but is unusable.
        """

    @abstractmethod
    async def check(self) -> SourceHealth:
        """Probe the source (reachable, authenticated); never raises for a failing source."""

    async def maintain(self) -> None:  # noqa: B027 -- optional hook, a no-op by default
        """Periodic upkeep between fetches (Vault token renewal), called every refresh tick."""

    def close(self) -> None:  # noqa: B027 -- optional hook, a no-op by default
        """Release connections. The source must not be used afterwards."""

    @classmethod
    @abstractmethod
    def from_url(
        cls, url: SourceURL, settings: SecretsSettings, *, clock: Clock = system_clock
    ) -> Self:
        """Build the source from its URL and the concern's settings.

        Raises:
            SecretsConfigurationError: the URL or settings are unusable for this source.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, location={self.location!r})"


#: Scheme → (module, class). Modules are imported only when their scheme is used.
SCHEMES: Mapping[str, tuple[str, str]] = {
    "env": ("barbacana.secrets.env", "EnvSource"),
    "file": ("barbacana.secrets.files", "FilesSource"),
    "vault": ("barbacana.secrets.vault", "VaultSource"),
    "vault+https": ("barbacana.secrets.vault", "VaultSource"),
    "vault+http": ("barbacana.secrets.vault", "VaultSource"),
    "aws": ("barbacana.secrets.aws", "AwsSecretsManagerSource"),
}


def source_from_url(
    url: str, settings: SecretsSettings | None = None, *, clock: Clock = system_clock
) -> SecretSource:
    """Build the source a URL names (``env://``, ``file://``, ``vault://``, ``aws://``).

    A ``?name=`` option renames the source, so two sources of one kind can
    coexist (``file:///run/app?name=app``).

    Raises:
        SecretsConfigurationError: unknown scheme, bad URL, unknown option, or a
            missing optional dependency (the message says which extra to install).
    """
    from ._settings import SecretsSettings

    parsed = SourceURL(url)
    target = SCHEMES.get(parsed.scheme)
    if target is None:
        known = ", ".join(f"{scheme}://" for scheme in sorted(SCHEMES))
        raise SecretsConfigurationError(
            f"unknown secret source scheme {parsed.scheme!r}; use one of {known}"
        )
    name = parsed.pop("name")
    if name is not None and not _SOURCE_NAME.match(name):
        raise SecretsConfigurationError(
            f"source name {name!r} must be lower-case letters, digits, '-' or '_' (up to 32)"
        )
    module_name, class_name = target
    cls: type[SecretSource] = getattr(importlib.import_module(module_name), class_name)
    source = cls.from_url(parsed, settings or SecretsSettings(), clock=clock)
    if name is not None:
        source.name = name
    return source


def sources_from_settings(
    settings: SecretsSettings,
    *,
    default_dir: Path | None = None,
    clock: Clock = system_clock,
) -> dict[str, SecretSource]:
    """Build every source the settings name, keyed by source name.

    ``settings.dir`` adds a ``file`` source; otherwise ``default_dir`` (for
    example ``<data_dir>/secrets`` of ``barbacana up``) does, unless a ``file``
    source is already listed.

    Raises:
        SecretsConfigurationError: a bad URL, or two sources with the same name.
    """
    urls = list(settings.sources)
    directory = settings.dir or default_dir
    if directory is not None and not any(SourceURL(u).scheme == "file" for u in urls):
        urls.append(Path(directory).absolute().as_uri())
    sources: dict[str, SecretSource] = {}
    try:
        for url in urls:
            source = source_from_url(url, settings, clock=clock)
            if source.name in sources:
                source.close()
                raise SecretsConfigurationError(
                    f"two secret sources are named {source.name!r}; add ?name=<other> to one URL"
                )
            sources[source.name] = source
    except BaseException:
        for built in sources.values():
            built.close()
        raise
    return sources
