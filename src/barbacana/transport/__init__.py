"""Transport security (seed §5.3): internal CA, TLS and mTLS, peer identity, nginx.

* :class:`Pki` keeps an internal CA (ECDSA P-256) and short-lived service
  certificates whose SAN carries ``spiffe://<trust-domain>/svc/<name>``;
* :func:`server_context` / :func:`client_context` build TLS contexts with one
  policy (TLS 1.2+, ECDHE + AEAD, no compression, no renegotiation);
* :func:`serve_config` serves an app with uvicorn over TLS or mTLS, puts the
  verified client certificate in the ASGI scope, and reloads renewals live;
* :func:`peer_identity` and :class:`RequirePeer` tell which service called;
* :func:`mtls_client` calls another service over mTLS with httpx;
* :func:`render_nginx_config` writes a hardened front door.
"""

from ._builder import CertificateBuilder, CertificateKind, spiffe_id
from ._client import mtls_client, mtls_sync_client
from ._nginx import ROUTES, NginxRoute, render_nginx_config
from ._peer import PeerIdentity, RequirePeer, parse_spiffe_id, peer_identity
from ._pki import CertificateInfo, Pki, ServiceCredentials, keep_renewed
from ._reload import CertificateReloader
from ._settings import DEFAULT_CIPHERS, DEFAULT_TRUST_DOMAIN, TransportSettings
from ._tls import ClientAuth, client_context, server_context
from ._uvicorn import (
    TLSConfig,
    TLSH11Protocol,
    TLSHttpToolsProtocol,
    TLSWebSocketsProtocol,
    serve_config,
    tls_extension,
)
from .errors import (
    CertificateBuilderError,
    CertificateError,
    CertificateExistsError,
    CertificateNotFoundError,
    KeyPassphraseError,
    PeerCertificateRequiredError,
    PeerNotAllowedError,
    TLSContextError,
    TransportError,
)

__all__ = [
    "DEFAULT_CIPHERS",
    "DEFAULT_TRUST_DOMAIN",
    "ROUTES",
    "CertificateBuilder",
    "CertificateBuilderError",
    "CertificateError",
    "CertificateExistsError",
    "CertificateInfo",
    "CertificateKind",
    "CertificateNotFoundError",
    "CertificateReloader",
    "ClientAuth",
    "KeyPassphraseError",
    "NginxRoute",
    "PeerCertificateRequiredError",
    "PeerIdentity",
    "PeerNotAllowedError",
    "Pki",
    "RequirePeer",
    "ServiceCredentials",
    "TLSConfig",
    "TLSContextError",
    "TLSH11Protocol",
    "TLSHttpToolsProtocol",
    "TLSWebSocketsProtocol",
    "TransportError",
    "TransportSettings",
    "client_context",
    "keep_renewed",
    "mtls_client",
    "mtls_sync_client",
    "parse_spiffe_id",
    "peer_identity",
    "render_nginx_config",
    "serve_config",
    "server_context",
    "spiffe_id",
    "tls_extension",
]
