"""Secret-handling checks for the production profile.

Environment variables are readable through ``/proc/<pid>/environ`` by the
same user, are inherited by every child process, and end up in crash reports
and ``docker inspect``; in production a secret should come from a mounted
file, Vault or AWS Secrets Manager (:mod:`barbacana.secrets`). Only variable
names are reported, never values.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from ..errors import BarbacanaError
from ..secrets import SecretRef
from ._catalogue import KEK_IN_DATA_DIR, PLAIN_ENV_SECRET
from ._context import CheckContext
from ._messages import Message
from ._registry import Registry

__all__ = [
    "SECRET_URL_VARIABLES",
    "SECRET_VARIABLES",
    "check_env_secrets",
    "check_kek_location",
    "register",
]

#: Variables whose whole value is a secret.
SECRET_VARIABLES = (
    "BARBACANA_KEK",
    "BARBACANA_CLIENT_SECRET",
    "BARBACANA_TRANSPORT_CA_PASSPHRASE",
    "BARBACANA_AUDIT_KEY_PASSPHRASE",
    "BARBACANA_SECRETS_VAULT_TOKEN",
    "BARBACANA_SECRETS_VAULT_SECRET_ID",
    "VAULT_TOKEN",
)
#: Variables holding a URL that is a secret when it carries a password.
SECRET_URL_VARIABLES = (
    "BARBACANA_DATABASE_URL",
    "BARBACANA_REDIS_URL",
    "BARBACANA_RATELIMIT_STORE_URL",
)


def _has_password(url: str) -> bool:
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return False


def check_env_secrets(context: CheckContext) -> Iterator[Message]:
    """Secrets in plain environment variables in production (W060)."""
    if not context.production:
        return
    for name in SECRET_VARIABLES:
        if context.environ.get(name):
            yield PLAIN_ENV_SECRET(f"{name} is set", target=name)
    for name in SECRET_URL_VARIABLES:
        value = context.environ.get(name)
        if value and _has_password(value):
            hint = (
                "; keep the password in a secret named by BARBACANA_DATABASE_CREDENTIALS_REF, "
                "which also follows its rotations"
                if name == "BARBACANA_DATABASE_URL"
                else ""
            )
            yield PLAIN_ENV_SECRET(f"{name} carries a password{hint}", target=name)
    if context.settings.secrets.kek_ref.startswith("env://"):
        yield PLAIN_ENV_SECRET(
            "secrets.kek_ref reads the key-encryption key from the environment",
            target="secrets.kek_ref",
        )


def check_kek_location(context: CheckContext) -> Iterator[Message]:
    """The key-encryption key lives in the data directory, in production (W061)."""
    if not context.production:
        return
    secrets = context.settings.secrets
    try:
        ref = SecretRef.parse(secrets.kek_ref)
    except BarbacanaError:
        return  # the service refuses it at start-up, with its own message
    own_file_source = secrets.dir is not None or any(
        url.lower().startswith("file:") for url in secrets.sources
    )
    if ref.source == "file" and not own_file_source:
        path = context.settings.data_dir / "secrets" / ref.name
        yield KEK_IN_DATA_DIR(
            f"secrets.kek_ref is {secrets.kek_ref} ({path})", target="secrets.kek_ref"
        )


def register(registry: Registry) -> None:
    """Add the secret checks to ``registry``."""
    registry.register(check_env_secrets, "secrets")
    registry.register(check_kek_location, "secrets")
