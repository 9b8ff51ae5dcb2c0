"""What every reference service needs at start: settings, data directory, KEK.

The data directory (default ``./.barbacana``) holds the SQLite database, the
key-encryption key, the service clients' secrets, the dev CA and the audit
key. It and every secret file in it are private to the user (0700 / 0600).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..audit import AuditKey
from ..crypto import KeyEncryptionKey, Sealer
from ..errors import ConfigurationError
from ..settings import Settings

__all__ = ["DataDir", "audit_sealer", "open_sealer"]


class DataDir:
    """The layout of a data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def kek(self) -> Path:
        return self.secrets / "kek"

    def client_secret(self, client_id: str) -> Path:
        return self.secrets / f"{client_id}.client-secret"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    def create(self) -> None:
        """Create the directory tree with private permissions."""
        for path in (self.root, self.secrets):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)

    def write_secret(self, path: Path, value: str) -> None:
        """Write a secret file readable by the owner only."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        path.chmod(0o600)

    def ensure_kek(self) -> None:
        """Create the key-encryption key on first run (never stored in the database)."""
        from ..crypto import KeyEncryptionKey
        from ..secrets import provision_file_secret

        self.create()
        provision_file_secret(
            self.secrets, "kek", lambda: KeyEncryptionKey.generate().export().get_secret_value()
        )


async def open_sealer(settings: Settings) -> Sealer:
    """The sealer for signing keys, its key-encryption key read from ``secrets.kek_ref``.

    ``file://kek`` (the default) is the file ``barbacana up`` creates in the
    data directory's ``secrets/`` folder; production points the reference at
    Vault or AWS Secrets Manager (``vault://secret/data/barbacana#kek``). The
    KEK never comes from the database.

    Raises:
        ConfigurationError: The KEK is missing or malformed (the message says how to make one).
        SecretsError: Its source cannot be reached.
    """
    from ..secrets import SecretResolver

    data = DataDir(settings.data_dir)
    resolver = SecretResolver.from_settings(settings.secrets, default_dir=data.secrets)
    ref = resolver.register(settings.secrets.kek_ref)
    try:
        await resolver.start()
        value = resolver.current(ref)
    finally:
        await resolver.stop()
    return Sealer(KeyEncryptionKey.from_secret(value))


async def audit_sealer(settings: Settings) -> Sealer | None:
    """The sealer of the audit key files (``None`` when the audit trail is off).

    The audit keys are sealed under the same key-encryption key as the signing
    keys (``secrets.kek_ref``). With the default ``file://kek`` on a first run
    -- no KEK file and no sealed audit key yet -- the KEK file is created, as
    ``barbacana up`` does; a missing KEK file next to sealed audit keys is an
    error instead, since a new KEK could never open them.

    Raises:
        ConfigurationError: The KEK is missing or malformed (the message names the
            reference to check).
        SecretsError: Its source cannot be reached.
    """
    audit = settings.audit
    if not audit.enabled:
        return None
    data = DataDir(settings.data_dir)
    if settings.secrets.kek_ref == "file://kek" and not data.kek.exists():
        sealed = [
            path
            for path in (audit.key_file(settings.data_dir), audit.hmac_key_file(settings.data_dir))
            if AuditKey.is_sealed(path)
        ]
        if sealed:
            raise ConfigurationError(
                f"the audit key {sealed[0]} is sealed, but the key-encryption key file "
                f"{data.kek} (secrets.kek_ref = file://kek) is missing: restore it from "
                "backup, or set BARBACANA_SECRETS_KEK_REF to where the KEK is kept"
            )
        data.ensure_kek()
    return await open_sealer(settings)
