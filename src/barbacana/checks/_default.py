"""Barbacana's own checks, and the two ways to run them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from ..settings import Settings
from . import (
    _audit,
    _cors,
    _files,
    _live,
    _outbound,
    _ratelimit,
    _secrets,
    _tokens,
    _transport,
    _web,
)
from ._gather import gather
from ._messages import Message, Severity
from ._registry import Registry

__all__ = ["default_registry", "deployment_warnings"]

_AREAS = (_tokens, _transport, _web, _cors, _ratelimit, _audit, _secrets, _files, _outbound, _live)


def default_registry() -> Registry:
    """A new registry holding every Barbacana check (tags: one per area, plus
    ``environment``, ``database``, ``files`` and ``live``)."""
    registry = Registry()
    for area in _AREAS:
        area.register(registry)
    return registry


def deployment_warnings(
    settings: Settings,
    *,
    plain_http: bool = False,
    environ: Mapping[str, str] | None = None,
    registry: Registry | None = None,
) -> list[Message]:
    """The warnings and errors about ``settings``, for a service to print as it starts.

    No service is probed; the signing keys are read from the database. Call it
    from synchronous code (``barbacana up``); inside an event loop, await
    :func:`~barbacana.checks.gather` and run the registry instead.

    Args:
        settings: The settings the services start with.
        plain_http: The listeners serve plain HTTP (``barbacana up --plain-http``).
        environ: The services' environment (default: this process's).
        registry: The checks to run (default: :func:`default_registry`).

    Raises:
        ConfigurationError: a concern's variables are invalid.
    """
    context = asyncio.run(gather(settings, environ=environ, plain_http=plain_http))
    found = (registry or default_registry()).run(context)
    return [message for message in found if message.severity >= Severity.WARNING]
