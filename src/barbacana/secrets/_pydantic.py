"""A pydantic-settings source: fields of your own Settings whose values live in a secret store.

Mark a field with :class:`FromSecret` and add :class:`SecretsSettingsSource`
to the sources of your settings class::

    from typing import Annotated

    from pydantic import SecretStr
    from pydantic_settings import BaseSettings

    from barbacana.secrets import FromSecret, SecretsSettingsSource


    class AppSettings(BaseSettings):
        db_password: Annotated[SecretStr, FromSecret("vault://secret/data/app#db_password")]
        api_key: Annotated[SecretStr, FromSecret("file://api_key")]

        @classmethod
        def settings_customise_sources(
            cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
        ):
            # Keyword arguments and the environment still win (handy in tests).
            return (init_settings, env_settings, SecretsSettingsSource(settings_cls))


    settings = AppSettings()  # sources from BARBACANA_SECRETS_* (e.g. VAULT_ADDR, VAULT_TOKEN)

Without arguments the source builds its sources from the ``BARBACANA_SECRETS_*``
environment (:meth:`SecretsSettings.from_env`), fetches each marked field once,
and closes them. Give it a started :class:`SecretResolver` instead
(``SecretsSettingsSource(settings_cls, resolver)``) to reuse its cache and
sources. Settings are frozen: a value rotated later reaches the code that
asked :meth:`SecretResolver.on_change`, not an already-built settings object.

A marked field must be typed ``SecretStr`` or ``SecretBytes`` (optionally
``| None``): pydantic quotes the input of a field that fails validation, and a
secret must never appear in such a message.
"""

from __future__ import annotations

import asyncio
import types
import typing
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from ..errors import SecretsError
from ._base import SecretSource, sources_from_settings
from ._value import SecretRef
from .errors import SecretsConfigurationError, SecretsStartupError, _SecretFailure

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from ._resolver import SecretResolver
    from ._settings import SecretsSettings

__all__ = ["FromSecret", "SecretsSettingsSource", "secret_fields"]

_SECRET_TYPES = (SecretStr, SecretBytes)


@dataclass(frozen=True)
class FromSecret:
    """Field marker: ``Annotated[SecretStr, FromSecret("vault://secret/data/app#db_password")]``."""

    ref: str

    def __post_init__(self) -> None:
        SecretRef.parse(self.ref)


def _is_secret_type(annotation: Any) -> bool:
    if annotation in _SECRET_TYPES:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return bool(members) and all(member in _SECRET_TYPES for member in members)
    return False


def secret_fields(model: type[BaseModel]) -> dict[str, tuple[str, str]]:
    """Field name → (input key, reference) for every field marked with :class:`FromSecret`.

    Raises:
        SecretsConfigurationError: a marked field is not typed ``SecretStr``/``SecretBytes``,
            or carries two markers.
    """
    found: dict[str, tuple[str, str]] = {}
    for name, field in model.model_fields.items():
        markers = [m for m in field.metadata if isinstance(m, FromSecret)]
        if not markers:
            continue
        if len(markers) > 1:
            raise SecretsConfigurationError(
                f"{model.__name__}.{name} has more than one FromSecret marker"
            )
        if not _is_secret_type(field.annotation):
            raise SecretsConfigurationError(
                f"{model.__name__}.{name} comes from a secret store and must be typed SecretStr "
                "or SecretBytes, so its value never appears in repr() or validation errors"
            )
        key = field.alias if isinstance(field.alias, str) and field.alias else name
        found[name] = (key, str(SecretRef.parse(markers[0].ref)))
    return found


async def _fetch_all(
    sources: Mapping[str, SecretSource], refs: list[str], seconds: float
) -> dict[str, str]:
    """Fetch each reference once; raise one error naming every failure."""

    async def one(ref: str) -> str | SecretsError:
        parsed = SecretRef.parse(ref)
        source = sources.get(parsed.source)
        if source is None:
            known = ", ".join(sorted(sources)) or "none"
            raise SecretsConfigurationError(
                f"secret {ref} names source {parsed.source!r}, which is not configured "
                f"(configured: {known}); add its URL to BARBACANA_SECRETS_SOURCES"
            )
        try:
            value = await asyncio.wait_for(source.get(parsed.name), seconds)
        except TimeoutError:
            from .errors import SecretSourceUnavailableError

            return SecretSourceUnavailableError(
                f"no answer within {seconds:g} s", secret=ref, source=source.description
            )
        except SecretsError as exc:
            if isinstance(exc, _SecretFailure):
                exc.secret = exc.secret or ref
                exc.source = exc.source or source.description
            return exc
        return value.get_secret_value()

    outcomes = await asyncio.gather(*(one(ref) for ref in refs))
    failures = [outcome for outcome in outcomes if isinstance(outcome, SecretsError)]
    if failures:
        raise SecretsStartupError(failures)
    pairs = zip(refs, outcomes, strict=True)
    return {ref: outcome for ref, outcome in pairs if isinstance(outcome, str)}


class SecretsSettingsSource(PydanticBaseSettingsSource):
    """Values for fields marked :class:`FromSecret`, read from Barbacana's secret sources.

    Args:
        settings_cls: The settings class being built.
        resolver: A resolver whose cached values (and sources) to use.
        settings: Where the sources are, when no resolver is given (default:
            :meth:`SecretsSettings.from_env`).
        timeout: Bound, in seconds, on each fetch.

    Raises:
        SecretsConfigurationError: a marked field has a non-secret type, or a
            reference names an unconfigured source.
        SecretsStartupError: a secret could not be fetched (each failure named).
    """

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        resolver: SecretResolver | None = None,
        *,
        settings: SecretsSettings | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(settings_cls)
        self._fields = secret_fields(settings_cls)
        self._resolver = resolver
        self._settings = settings
        self._timeout = timeout

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """One field's value (pydantic-settings' per-field hook); ``__call__`` batches instead."""
        if field_name not in self._fields:
            return None, field_name, False
        key, ref = self._fields[field_name]
        return self._resolve([ref]).get(ref), key, False

    def _resolve(self, refs: list[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        missing: list[str] = []
        for ref in refs:
            if self._resolver is not None:
                try:
                    values[ref] = self._resolver.current(ref).get_secret_value()
                    continue
                except SecretsError:
                    pass
            missing.append(ref)
        if missing:
            values.update(self._fetch_blocking(missing))
        return values

    def _fetch_blocking(self, refs: list[str]) -> dict[str, str]:
        """Fetch in an event loop of our own (in a helper thread if one already runs here)."""
        from ._settings import SecretsSettings

        owned = self._resolver is None
        if self._resolver is not None:
            sources: Mapping[str, SecretSource] = self._resolver.sources
            timeout = self._timeout or 10.0
        else:
            settings = self._settings or SecretsSettings.from_env()
            sources = sources_from_settings(settings)
            timeout = self._timeout or settings.timeout.total_seconds()
        try:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(_fetch_all(sources, refs, timeout))
            with ThreadPoolExecutor(1, thread_name_prefix="barbacana-secrets") as pool:
                return pool.submit(asyncio.run, _fetch_all(sources, refs, timeout)).result()
        finally:
            if owned:
                for source in sources.values():
                    source.close()

    def __call__(self) -> dict[str, Any]:
        # Fields an earlier (higher-priority) source already set are not fetched at all.
        state = self.current_state
        wanted = {
            name: (key, ref)
            for name, (key, ref) in self._fields.items()
            if key not in state and name not in state
        }
        if not wanted:
            return {}
        values = self._resolve(sorted({ref for _, ref in wanted.values()}))
        return {key: values[ref] for key, ref in wanted.values()}

    def __repr__(self) -> str:
        return f"SecretsSettingsSource(fields={sorted(self._fields)!r})"
