"""Errors of the ``secrets`` concern.

A secret that cannot be resolved is a :class:`~barbacana.errors.SecretsError`
(503: the service cannot do its work without it). The subclass and its stable
``code`` say why. Messages name the secret reference and the source, never the
secret's value; the ``secret`` and ``source`` attributes carry the same names
for logs and health reports::

    SecretsError (barbacana.errors)
     ├── SecretNotFoundError            the source has no such secret, version or field
     ├── SecretSourceUnavailableError   the source cannot be reached, timed out or failed
     ├── SecretAccessDeniedError        authentication failed, policy refused, path escapes
     ├── SecretMalformedError           empty, not UTF-8, too large, not the JSON a field needs
     ├── SecretNotLoadedError           read from the cache before it was loaded
     └── SecretsStartupError            one or more secrets could not be loaded at start-up

    ConfigurationError (barbacana.errors)
     └── SecretsConfigurationError      a bad source URL, unknown scheme or bad reference
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError, SecretsError

__all__ = [
    "SecretAccessDeniedError",
    "SecretMalformedError",
    "SecretNotFoundError",
    "SecretNotLoadedError",
    "SecretSourceUnavailableError",
    "SecretsConfigurationError",
    "SecretsStartupError",
]


class _SecretFailure(SecretsError):
    """A failure about one secret in one source (names both, never the value)."""

    def __init__(
        self,
        detail: str | None = None,
        *,
        secret: str | None = None,
        source: str | None = None,
        **extra: Any,
    ) -> None:
        #: The secret reference (``vault://secret/data/app#db_password``), not its value.
        self.secret = secret
        #: The source's safe description (``vault at https://vault:8200``).
        self.source = source
        super().__init__(detail, **extra)


class SecretNotFoundError(_SecretFailure):
    """The source has no secret, version or field by that name."""

    code = "secret_not_found"
    title = "Secret not found"


class SecretSourceUnavailableError(_SecretFailure):
    """The source could not be reached, timed out, or answered with a server error."""

    code = "secret_source_unavailable"
    title = "Secret source unavailable"


class SecretAccessDeniedError(_SecretFailure):
    """The source refused: bad credentials, expired token, policy, or a path escaping its root."""

    code = "secret_access_denied"
    title = "Secret access denied"


class SecretMalformedError(_SecretFailure):
    """The secret exists but is unusable: empty, not UTF-8, too large, or not the expected JSON."""

    code = "secret_malformed"
    title = "Secret malformed"


class SecretNotLoadedError(_SecretFailure):
    """The secret was read from the cache before it was registered and loaded."""

    code = "secret_not_loaded"
    title = "Secret not loaded"


class SecretsStartupError(SecretsError):
    """One or more secrets could not be loaded at start-up; ``failures`` lists each."""

    code = "secrets_startup_failed"
    title = "Secrets unavailable at start-up"

    def __init__(self, failures: list[SecretsError]) -> None:
        #: The error of each secret that failed, in registration order.
        self.failures = failures
        lines = []
        for failure in failures:
            secret = getattr(failure, "secret", None) or "?"
            source = getattr(failure, "source", None) or "?"
            lines.append(f"{secret} from {source}: {failure.detail} [{failure.code}]")
        count = len(failures)
        noun = "secret" if count == 1 else "secrets"
        super().__init__(f"{count} {noun} could not be loaded at start-up: " + "; ".join(lines))


class SecretsConfigurationError(ConfigurationError):
    """A secret source URL, scheme, option or reference is invalid."""

    code = "secrets_configuration"
    title = "Secrets configuration error"
