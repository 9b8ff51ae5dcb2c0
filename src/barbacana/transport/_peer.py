"""Which internal service is calling: from the verified client certificate, never a header.

The identity is the certificate's SPIFFE ID, ``spiffe://<trust-domain>/svc/<name>``
(SPIFFE X509-SVID §2: exactly one URI SAN), read from the ASGI TLS extension
that :mod:`barbacana.transport._uvicorn` fills after the handshake verified the
certificate against the internal CA. Headers such as ``X-Service-Name`` or
``X-Forwarded-Client-Cert`` are ignored, with one opt-in exception: behind a
service mesh, the sidecar's identity header is believed when, and only when,
the connection comes straight from a configured sidecar address.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography import x509
from starlette.requests import HTTPConnection

from .._clock import Clock, system_clock
from ..errors import AccessError, ConfigurationError
from ._settings import TransportSettings
from .errors import PeerCertificateRequiredError, PeerNotAllowedError

__all__ = ["PeerIdentity", "RequirePeer", "parse_spiffe_id", "peer_identity"]

_SPIFFE = re.compile(r"^spiffe://([a-z0-9._-]{1,255})/svc/([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$")
_MAX_HEADER = 16_384


@dataclasses.dataclass(frozen=True)
class PeerIdentity:
    """A calling service, as proven by its certificate (or vouched for by a sidecar)."""

    service: str
    spiffe_id: str
    trust_domain: str
    #: ``certificate``: our own TLS handshake verified it; ``mesh``: a trusted sidecar said so.
    source: Literal["certificate", "mesh"]
    serial_number: int | None = None
    not_after: datetime | None = None


def parse_spiffe_id(uri: str, trust_domain: str) -> str | None:
    """The service in ``uri`` if it is ``spiffe://<trust_domain>/svc/<name>``, else ``None``."""
    match = _SPIFFE.fullmatch(uri)
    if match is None or match.group(1) != trust_domain:
        return None
    return match.group(2)


@dataclasses.dataclass(frozen=True)
class _Leaf:
    uris: tuple[str, ...]
    serial_number: int
    not_before: datetime
    not_after: datetime


@functools.lru_cache(maxsize=512)
def _parse_leaf(pem: str) -> _Leaf | None:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, UnicodeEncodeError, x509.ExtensionNotFound):
        return None
    return _Leaf(
        uris=tuple(san.get_values_for_type(x509.UniformResourceIdentifier)),
        serial_number=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def _from_certificate(
    tls: Mapping[str, Any], settings: TransportSettings, now: datetime
) -> PeerIdentity | None:
    if tls.get("client_cert_error") is not None:
        return None
    chain = tls.get("client_cert_chain") or []
    if not chain or not isinstance(chain[0], str):
        return None
    leaf = _parse_leaf(chain[0])
    # X509-SVID §2: exactly one URI SAN. A long-lived connection may outlive its certificate.
    if leaf is None or len(leaf.uris) != 1 or not leaf.not_before <= now <= leaf.not_after:
        return None
    service = parse_spiffe_id(leaf.uris[0], settings.trust_domain)
    if service is None:
        return None
    return PeerIdentity(
        service=service,
        spiffe_id=leaf.uris[0],
        trust_domain=settings.trust_domain,
        source="certificate",
        serial_number=leaf.serial_number,
        not_after=leaf.not_after,
    )


def _xfcc_uri(value: str) -> str | None:
    """The ``URI`` of the last element of an Envoy ``x-forwarded-client-cert`` value.

    Elements are separated by ``,`` and each hop appends one, so the last is the
    one the immediate sidecar added; pairs are ``key=value`` separated by ``;``,
    and a value may be double-quoted to hold those separators.
    """
    elements: list[list[tuple[str, str]]] = [[]]
    key, buffer, quoted, in_value = "", "", False, False
    for char in value + ";":
        if quoted:
            if char == '"':
                quoted = False
            else:
                buffer += char
        elif char == '"' and in_value:
            quoted = True
        elif char == "=" and not in_value:
            key, buffer, in_value = buffer.strip(), "", True
        elif char in ";,":
            if in_value:
                elements[-1].append((key.lower(), buffer.strip()))
            elif buffer.strip():
                return None  # a bare word is not well-formed
            key, buffer, in_value = "", "", False
            if char == ",":
                elements.append([])
        else:
            buffer += char
    if quoted:
        return None
    uris = [v for k, v in elements[-1] if k == "uri"]
    return uris[0] if len(uris) == 1 else None


def _from_mesh(scope: Mapping[str, Any], settings: TransportSettings) -> PeerIdentity | None:
    header = settings.mesh_identity_header
    if header is None:
        return None
    client = scope.get("client")
    if not client:
        return None
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return None
    if not any(
        address in ipaddress.ip_network(cidr, strict=False)
        for cidr in settings.mesh_trusted_sidecars
    ):
        return None
    wanted = header.encode("latin-1")
    values = [v for k, v in scope.get("headers", ()) if k.lower() == wanted]
    if len(values) != 1 or len(values[0]) > _MAX_HEADER:
        return None  # absent, ambiguous, or oversized: believe nothing
    text = values[0].decode("latin-1")
    uri = _xfcc_uri(text) if settings.mesh_header_format == "xfcc" else text.strip()
    if uri is None:
        return None
    service = parse_spiffe_id(uri, settings.trust_domain)
    if service is None:
        return None
    return PeerIdentity(
        service=service, spiffe_id=uri, trust_domain=settings.trust_domain, source="mesh"
    )


def peer_identity(
    scope: Mapping[str, Any],
    settings: TransportSettings | None = None,
    *,
    clock: Clock = system_clock,
) -> PeerIdentity | None:
    """The internal service behind this request or WebSocket, or ``None``.

    ``None`` unless the connection presented a client certificate that the TLS
    handshake verified against the internal CA, that is valid now, and whose
    SPIFFE ID is in ``settings.trust_domain``; or, only when
    ``settings.mesh_identity_header`` is set, the immediate peer is one of
    ``settings.mesh_trusted_sidecars`` and that header names such an ID.
    """
    settings = settings or TransportSettings()
    tls = (scope.get("extensions") or {}).get("tls")
    if tls:
        peer = _from_certificate(tls, settings, datetime.fromtimestamp(clock(), UTC))
        if peer is not None:
            return peer
    return _from_mesh(scope, settings)


class RequirePeer:
    """FastAPI dependency: only the named internal services may call.

    Example::

        @app.post("/internal/reindex")
        async def reindex(peer: PeerIdentity = Depends(RequirePeer("orders", "chat"))): ...

    Raises:
        PeerCertificateRequiredError: no verified internal peer (401).
        PeerNotAllowedError: a verified peer that is not one of ``services`` (403).
    """

    def __init__(
        self,
        *services: str,
        settings: TransportSettings | None = None,
        clock: Clock = system_clock,
    ) -> None:
        if not services:
            raise ConfigurationError("RequirePeer needs at least one service name")
        self.services = frozenset(services)
        self.settings = settings or TransportSettings()
        self.clock = clock

    async def __call__(self, connection: HTTPConnection) -> PeerIdentity:
        peer = peer_identity(connection.scope, self.settings, clock=self.clock)
        if peer is None or peer.service not in self.services:
            raise self.refuse(peer)
        return peer

    def refuse(self, peer: PeerIdentity | None) -> AccessError:
        """The error for a refused caller; override to change status or wording."""
        if peer is None:
            return PeerCertificateRequiredError(
                "This endpoint is for internal services: present a client certificate "
                "issued by the internal CA."
            )
        return PeerNotAllowedError(
            f"The service {peer.service!r} may not call this endpoint.", peer=peer.service
        )
