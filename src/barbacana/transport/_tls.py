"""TLS contexts for servers and clients: the policy in one place.

* TLS 1.2 at least, TLS 1.3 preferred (RFC 8996 deprecates TLS 1.0 and 1.1;
  RFC 9325 §3.1.1 recommends 1.3 and allows 1.2);
* TLS 1.2 suites: ECDHE with AEAD only (RFC 9325 §4.2), so no CBC suite;
* no TLS compression (CRIME, RFC 9325 §3.3) and no renegotiation (RFC 9325 §3.5:
  1.3 has none; in 1.2 it is a denial-of-service lever we do not need);
* no stateless session tickets: their key lives as long as the process, which
  would undo forward secrecy (RFC 9325 §3.4); the session cache still resumes;
* strict X.509 checks (``VERIFY_X509_STRICT``) on every chain we verify.
"""

from __future__ import annotations

import os
import ssl
from typing import Literal

from ._settings import TransportSettings
from .errors import TLSContextError

__all__ = ["ClientAuth", "client_context", "server_context"]

#: Whether a server asks for a client certificate: never, optionally, or always.
ClientAuth = Literal["none", "optional", "required"]

_VERIFY_MODES: dict[ClientAuth, ssl.VerifyMode] = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}

StrPath = str | os.PathLike[str]


def _harden(context: ssl.SSLContext, settings: TransportSettings) -> None:
    context.minimum_version = settings.minimum_version
    context.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    try:
        context.set_ciphers(settings.ciphers)
    except ssl.SSLError as exc:
        raise TLSContextError(f"no usable cipher in {settings.ciphers!r}") from exc
    context.options |= (
        ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET | ssl.OP_SINGLE_ECDH_USE
    )
    context.verify_flags |= ssl.VERIFY_X509_STRICT


def _load_chain(
    context: ssl.SSLContext, cert_file: StrPath, key_file: StrPath, password: str | None
) -> None:
    try:
        context.load_cert_chain(cert_file, key_file, password)
    except (OSError, ssl.SSLError) as exc:
        raise TLSContextError(
            f"cannot load the certificate {os.fspath(cert_file)!r} with its key"
        ) from exc


def _load_ca(context: ssl.SSLContext, ca_file: StrPath) -> None:
    try:
        context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TLSContextError(f"cannot load the CA file {os.fspath(ca_file)!r}") from exc


def server_context(
    cert_file: StrPath,
    key_file: StrPath,
    *,
    ca_file: StrPath | None = None,
    client_auth: ClientAuth = "none",
    settings: TransportSettings | None = None,
    key_password: str | None = None,
) -> ssl.SSLContext:
    """A server-side TLS context that presents ``cert_file``.

    With ``client_auth="optional"`` a client may present a certificate, and if it
    does the handshake fails unless it verifies against ``ca_file``;
    ``"required"`` refuses clients without one (mTLS).

    Raises:
        TLSContextError: unreadable files, a key that does not match, or a
            client-auth mode without a CA file.
    """
    settings = settings or TransportSettings()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context, settings)
    # HTTP/1.1 only: uvicorn's default protocols do not speak HTTP/2.
    context.set_alpn_protocols(["http/1.1"])
    _load_chain(context, cert_file, key_file, key_password)
    if client_auth != "none":
        if ca_file is None:
            raise TLSContextError(f"client_auth={client_auth!r} needs ca_file to verify against")
        _load_ca(context, ca_file)
    elif ca_file is not None:
        _load_ca(context, ca_file)
    context.verify_mode = _VERIFY_MODES[client_auth]
    return context


def client_context(
    *,
    ca_file: StrPath,
    cert_file: StrPath | None = None,
    key_file: StrPath | None = None,
    settings: TransportSettings | None = None,
    key_password: str | None = None,
) -> ssl.SSLContext:
    """A client-side TLS context that trusts only ``ca_file`` and checks the host name.

    With ``cert_file`` and ``key_file`` it also presents that certificate (mTLS).
    The system's public CAs are *not* trusted: an internal call must reach an
    internal service.

    Raises:
        TLSContextError: unreadable files or a key that does not match.
    """
    settings = settings or TransportSettings()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    _harden(context, settings)
    _load_ca(context, ca_file)
    if (cert_file is None) != (key_file is None):
        raise TLSContextError("give both cert_file and key_file, or neither")
    if cert_file is not None and key_file is not None:
        _load_chain(context, cert_file, key_file, key_password)
    return context
