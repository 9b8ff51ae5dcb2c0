"""httpx clients for service-to-service calls over mTLS."""

from __future__ import annotations

import os
import ssl
import time
from typing import Any

import httpx

from ..errors import ConfigurationError
from ._pki import Pki, ServiceCredentials
from ._reload import CertificateReloader
from ._settings import TransportSettings
from ._tls import client_context

__all__ = ["mtls_client", "mtls_sync_client"]

_FORBIDDEN = frozenset({"verify", "cert"})


def _credentials(
    source: Pki | ServiceCredentials | str | os.PathLike[str],
    service: str | None,
    settings: TransportSettings | None,
) -> ServiceCredentials:
    if isinstance(source, ServiceCredentials):
        return source
    if service is None:
        raise ConfigurationError("name the calling service whose certificate to present")
    pki = source if isinstance(source, Pki) else Pki(source, settings=settings)
    return pki.credentials(service)


def _context(
    creds: ServiceCredentials, settings: TransportSettings, options: dict[str, Any]
) -> ssl.SSLContext:
    clashing = sorted(_FORBIDDEN & options.keys())
    if clashing:
        raise ConfigurationError(f"mtls_client sets up TLS itself; do not pass {clashing[0]}")
    context = client_context(
        ca_file=creds.ca_file, cert_file=creds.cert_file, key_file=creds.key_file, settings=settings
    )
    context.set_alpn_protocols(["h2", "http/1.1"] if options.get("http2") else ["http/1.1"])
    # Proxies and SSL_CERT_FILE from the environment have no say over internal calls.
    options.setdefault("trust_env", False)
    return context


def mtls_client(
    source: Pki | ServiceCredentials | str | os.PathLike[str],
    service: str | None = None,
    *,
    settings: TransportSettings | None = None,
    **httpx_options: Any,
) -> httpx.AsyncClient:
    """An :class:`httpx.AsyncClient` that presents ``service``'s certificate.

    It trusts only the internal CA and checks the server's host name, so call
    services by a name their certificate carries (``https://auth:8443`` or
    ``https://127.0.0.1:8443``). ``source`` is a :class:`Pki`, its directory, or
    explicit :class:`ServiceCredentials`. Renewed certificate files are loaded
    before a request once per ``settings.reload_interval``, so a long-lived
    client never presents an expired certificate.

    Raises:
        CertificateNotFoundError: ``service`` has no certificate yet.
        ConfigurationError: ``verify`` or ``cert`` passed (they would replace mTLS).
    """
    settings = settings or TransportSettings()
    creds = _credentials(source, service, settings)
    context = _context(creds, settings, httpx_options)
    reloader = CertificateReloader(context, creds.cert_file, creds.key_file)
    interval = settings.reload_interval.total_seconds()
    next_check = time.monotonic() + interval

    async def reload_if_renewed(_request: httpx.Request) -> None:
        # Runs on the event-loop thread, where this client's handshakes run too.
        nonlocal next_check
        now = time.monotonic()
        if now >= next_check:
            next_check = now + interval
            reloader.check()

    hooks = dict(httpx_options.pop("event_hooks", None) or {})
    hooks["request"] = [reload_if_renewed, *hooks.get("request", [])]
    return httpx.AsyncClient(verify=context, event_hooks=hooks, **httpx_options)


def mtls_sync_client(
    source: Pki | ServiceCredentials | str | os.PathLike[str],
    service: str | None = None,
    *,
    settings: TransportSettings | None = None,
    **httpx_options: Any,
) -> httpx.Client:
    """A blocking :class:`httpx.Client` that presents ``service``'s certificate.

    Same trust as :func:`mtls_client`, but it does not reload renewed files
    (a sync client may be shared across threads, where a reload could race a
    handshake): build a new client after a renewal, or use it for short jobs.
    """
    settings = settings or TransportSettings()
    creds = _credentials(source, service, settings)
    context = _context(creds, settings, httpx_options)
    return httpx.Client(verify=context, **httpx_options)
