"""Secrets from the environment, ``.env``, mounted files, Vault and AWS Secrets Manager.

Values are cached, refreshed in the background, and never shown.

A *source* is configured by URL (``env://``, ``file:///run/secrets``,
``vault://vault.internal:8200``, ``aws://``); a *secret reference* names a
secret in a source (``file://db_password``, ``vault://secret/data/app#db_password``,
``aws://prod/db#password``). :class:`SecretResolver` loads the secrets a
service needs at start-up, refreshes them in the background, keeps the last
good value when a source is down, and tells listeners when a value rotates::

    from barbacana.secrets import SecretResolver, SecretsSettings

    resolver = SecretResolver.from_settings(SecretsSettings(sources=["vault://vault:8200"]))
    resolver.register("vault://secret/data/orders#db_password")
    async with resolver:                        # start-up fails if a secret is missing
        password = resolver.current("vault://secret/data/orders#db_password")
        resolver.on_change("vault://secret/data/orders#db_password", pool.reconnect)

Values are pydantic :class:`~pydantic.SecretStr`; no object here shows a
secret in ``repr()``, ``str()``, logs, health reports or error messages. Your
own pydantic-settings class can take fields from these sources with
:class:`FromSecret` and :class:`SecretsSettingsSource` (see that module).
"""

from ._base import SCHEMES, SecretSource, SourceURL, source_from_url, sources_from_settings
from ._pydantic import FromSecret, SecretsSettingsSource, secret_fields
from ._resolver import ChangeListener, SecretResolver
from ._settings import SecretsSettings
from ._value import SecretHealth, SecretRef, SecretValue, SourceHealth
from .env import EnvSource
from .errors import (
    SecretAccessDeniedError,
    SecretMalformedError,
    SecretNotFoundError,
    SecretNotLoadedError,
    SecretsConfigurationError,
    SecretSourceUnavailableError,
    SecretsStartupError,
)
from .files import FilesSource, provision_file_secret

__all__ = [
    "SCHEMES",
    "ChangeListener",
    "EnvSource",
    "FilesSource",
    "FromSecret",
    "SecretAccessDeniedError",
    "SecretHealth",
    "SecretMalformedError",
    "SecretNotFoundError",
    "SecretNotLoadedError",
    "SecretRef",
    "SecretResolver",
    "SecretSource",
    "SecretSourceUnavailableError",
    "SecretValue",
    "SecretsConfigurationError",
    "SecretsSettings",
    "SecretsSettingsSource",
    "SecretsStartupError",
    "SourceHealth",
    "SourceURL",
    "provision_file_secret",
    "secret_fields",
    "source_from_url",
    "sources_from_settings",
]
