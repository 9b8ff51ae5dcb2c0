"""Structured logs: one JSON object per line, correlated, with secrets redacted.

:func:`configure_logging` sets up structlog and routes the standard library's
``logging`` (uvicorn, SQLAlchemy, httpx...) through the same processors, so
every line -- ours or a library's -- has the same shape::

    {"event":"login refused","level":"warning","logger":"barbacana.identity",
     "request_id":"9f1c…","service":"auth","timestamp":"2025-01-31T12:00:00.123456Z",
     "traceparent":"00-…-01"}

``request_id`` and ``traceparent`` come from :mod:`barbacana._context`, set by
the web layer for each request. The last step before rendering is the same
:class:`~barbacana.audit.Redactor` the audit trail uses: a field named like a
secret, a JWT, a PEM key or a ``Bearer`` credential never reaches a log line.

Run uvicorn with ``log_config=None`` so it keeps this configuration.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from . import _context
from .audit._redact import Redactor

__all__ = ["RedactProcessor", "add_correlation", "configure_logging", "get_logger"]

# Keys structlog and our processors own: never redacted or renamed.
_RESERVED = frozenset(
    {"event", "level", "logger", "timestamp", "service", "request_id", "traceparent"}
)
_MAX_TRACEBACK = 32_768
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def add_correlation(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Add ``request_id`` and ``traceparent`` of the current request, if any."""
    request_id = _context.request_id.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    traceparent = _context.traceparent.get()
    if traceparent is not None:
        event_dict.setdefault("traceparent", traceparent)
    return event_dict


class RedactProcessor:
    """A structlog processor applying the audit trail's redaction to a log event.

    Fields named like secrets are replaced; every other value is made safe
    (strings scanned for JWTs, PEM blocks, credentials; objects reduced).
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        self._redactor = redactor or Redactor()

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        out: MutableMapping[str, Any] = {}
        for key, value in event_dict.items():
            if key in _RESERVED:
                out[key] = self._redactor(value) if key == "event" else value
            elif key == "exception" and isinstance(value, str):
                out[key] = self._redactor.redact_text(value, limit=_MAX_TRACEBACK)
            elif self._redactor.is_secret_name(key):
                out[key] = "[REDACTED]"
            else:
                out[key] = self._redactor(value)
        return dict(out)


class _AddService:
    def __init__(self, service: str) -> None:
        self._service = service

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", self._service)
        return event_dict


def configure_logging(
    service_name: str,
    level: str | int = "INFO",
    json: bool = True,
    *,
    stream: TextIO | None = None,
    redactor: Redactor | None = None,
) -> None:
    """Configure structlog and the standard library's logging for a service.

    Idempotent: calling it again replaces the previous configuration.

    Args:
        service_name: Added to every line as ``service``.
        level: Minimum level, by name or number.
        json: JSON lines (production); ``False`` for coloured console output.
        stream: Where lines go (default ``sys.stdout``).
        redactor: Redaction rules (default: the audit trail's built-in rules).
    """
    redact = RedactProcessor(redactor)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="%Y-%m-%dT%H:%M:%S.%fZ", utc=True),
        add_correlation,
        _AddService(service_name),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
        redact,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    handler.set_name("barbacana")
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == "barbacana":
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    # uvicorn installs its own handlers unless started with log_config=None;
    # either way, send its records to the root handler.
    for name in _UVICORN:
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    # Alembic (1.20) announces each of its plugins at INFO on every migration run.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    """A structlog logger named ``name`` (``logger`` in each line)."""
    return structlog.stdlib.get_logger(name)
