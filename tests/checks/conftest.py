"""Fixtures: the data directory ``barbacana up`` prepares, built once, copied when changed."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from barbacana.cli._admin import bootstrap
from barbacana.services._runtime import DataDir
from barbacana.settings import Settings
from barbacana.transport import Pki

#: A CA passphrase for the hardened production reference.
CA_PASSPHRASE = "correct horse battery staple, for tests only"

#: Environment of every check in these tests: nothing but the cheap password profile.
BASE_ENV = {"BARBACANA_IDENTITY_PASSWORD_PROFILE": "test_only_cheap"}

#: Variables that would make these tests depend on the developer's shell.
_FOREIGN = ("JWT_SECRET", "JWT_ALGORITHM", "SECRET_KEY", "ALGORITHM", "VAULT_TOKEN")


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BARBACANA_") or name in _FOREIGN:
            monkeypatch.delenv(name)
    for name, value in BASE_ENV.items():
        monkeypatch.setenv(name, value)


def reference_settings(root: Path, **overrides: Any) -> Settings:
    """The settings ``barbacana up`` starts with for ``root`` (plus ``overrides``)."""
    return Settings(data_dir=root, **overrides)


def settings_from_env(root: Path, env: dict[str, str] | None = None) -> Settings:
    """``Settings(data_dir=root)`` read from exactly :data:`BASE_ENV` plus ``env``."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("BARBACANA_") or name in _FOREIGN:
                patch.delenv(name)
        for name, value in {**BASE_ENV, **(env or {})}.items():
            patch.setenv(name, value)
        return Settings(data_dir=root)


def _issue_service_certificates(root: Path, **pki_options: Any) -> None:
    pki = Pki(DataDir(root).pki, **pki_options)
    for name in ("auth", "orders"):
        pki.ensure_service(name, dns=["localhost"], ips=["127.0.0.1"])


@dataclass(frozen=True)
class References:
    """Data directories prepared once per session (never modified by a test)."""

    #: What ``barbacana up`` builds: bootstrap (KEK, database, clients, admin) plus certificates.
    development: Path
    #: The same, hardened for production: CA key encrypted, KEK outside the data directory.
    production: Path
    #: The mounted secrets directory of the production reference.
    mounted_secrets: Path


@pytest.fixture(scope="session")
def references(tmp_path_factory: pytest.TempPathFactory) -> Iterator[References]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("BARBACANA_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(BASE_ENV)
    try:
        base = tmp_path_factory.mktemp("references")
        development = base / "development"
        settings = Settings(data_dir=development)
        asyncio.run(bootstrap(settings))
        _issue_service_certificates(development, settings=settings.transport)

        production = base / "production"
        shutil.copytree(development, production, symlinks=True)
        shutil.rmtree(production / "pki")
        (production / "secrets" / "kek").unlink()
        _issue_service_certificates(production, passphrase=CA_PASSPHRASE)
        mounted = base / "mounted-secrets"
        mounted.mkdir(mode=0o700)
        shutil.copy2(development / "secrets" / "kek", mounted / "kek")
        yield References(development, production, mounted)
    finally:
        for name in list(os.environ):
            if name.startswith("BARBACANA_"):
                del os.environ[name]
        os.environ.update(saved)


@pytest.fixture
def copy_of(tmp_path: Path) -> Any:
    """Copy a reference data directory (modes kept) so a test may damage it."""

    def copy(source: Path) -> Path:
        target = tmp_path / f"copy-{source.name}"
        shutil.copytree(source, target, symlinks=True)
        target.chmod(source.stat().st_mode & 0o777)
        return target

    return copy


def subprocess_env(**extra: str) -> dict[str, str]:
    """An environment for a ``barbacana check`` subprocess: no BARBACANA_* of the caller."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("BARBACANA_") and k not in _FOREIGN
    }
    env.update(BASE_ENV)
    env.update(extra)
    return env


__all__ = [
    "BASE_ENV",
    "CA_PASSPHRASE",
    "References",
    "reference_settings",
    "settings_from_env",
    "subprocess_env",
]
