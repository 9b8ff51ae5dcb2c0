"""What every reference service needs at start: settings, data directory, KEK.

The data directory (default ``./.barbacana``) holds the SQLite database, the
key-encryption key, the service clients' secrets, the dev CA and the audit
key. It and every secret file in it are private to the user (0700 / 0600).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..errors import ConfigurationError
from ..identity import KeySealer
from ..settings import Settings

__all__ = ["DataDir", "load_sealer"]


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
        if not self.kek.exists():
            self.create()
            self.write_secret(self.kek, secrets.token_urlsafe(32))


def load_sealer(settings: Settings) -> KeySealer:
    """The sealer for signing keys, from ``BARBACANA_KEK`` or the data directory's file.

    Raises:
        ConfigurationError: No key-encryption key is available.
    """
    value = os.environ.get("BARBACANA_KEK")
    if value is None:
        path = DataDir(settings.data_dir).kek
        try:
            value = path.read_text().strip()
        except OSError:
            raise ConfigurationError(
                "no key-encryption key: set BARBACANA_KEK, or run 'barbacana up' or "
                "'barbacana db upgrade' once to create one in the data directory"
            ) from None
    from ..crypto import KeyEncryptionKey, Sealer

    return Sealer(KeyEncryptionKey.from_text(value))
