"""Transport settings: the internal CA, certificate lifetimes, TLS policy, mesh trust."""

from __future__ import annotations

import ipaddress
import re
import ssl
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["DEFAULT_CIPHERS", "DEFAULT_TRUST_DOMAIN", "TransportSettings"]

#: The SPIFFE trust domain of certificates issued by the internal CA.
DEFAULT_TRUST_DOMAIN = "barbacana.internal"

#: TLS 1.2 suites: ECDHE key exchange (forward secrecy) and AEAD only, so no CBC
#: suite is ever offered (Mozilla "intermediate" profile, minus the DHE suites).
#: TLS 1.3 suites are all AEAD and are not affected by this string.
DEFAULT_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"

# SPIFFE ID spec §2.1: a trust domain is lowercase letters, digits, dots, dashes, underscores.
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]{1,255}$")
# RFC 9110 §5.1: a field name is a token.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")


class TransportSettings(BaseModel):
    """How certificates are issued and how TLS is spoken.

    ``mesh_identity_header`` is off by default: when a service mesh (Istio, Linkerd)
    terminates mTLS in a sidecar, the peer identity arrives in a header the sidecar
    sets, and that header is believed only from ``mesh_trusted_sidecars``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: SPIFFE trust domain; peer certificates must carry ``spiffe://<this>/svc/<name>``.
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    #: Lifetime of service and client certificates: short, so a stolen key expires soon.
    cert_lifetime: timedelta = timedelta(days=7)
    #: A certificate is renewed when it expires within this window.
    renew_before: timedelta = timedelta(days=2)
    #: Lifetime of the internal CA certificate.
    ca_lifetime: timedelta = timedelta(days=3650)
    #: Passphrase encrypting the CA private key at rest (``None``: the file's 0600 mode only).
    ca_passphrase: SecretStr | None = None
    #: Lowest TLS version accepted; TLS 1.3 is always preferred when both sides have it.
    minimum_tls_version: Literal["1.2", "1.3"] = "1.2"
    #: OpenSSL cipher string for TLS 1.2; every suite it selects must be ECDHE and AEAD.
    ciphers: str = DEFAULT_CIPHERS
    #: How often a running server checks its certificate files for a renewal.
    reload_interval: timedelta = timedelta(seconds=1)
    #: Header carrying the peer identity set by a mesh sidecar (e.g. ``x-forwarded-client-cert``).
    mesh_identity_header: str | None = None
    #: ``xfcc``: Envoy's ``x-forwarded-client-cert`` (its ``URI=`` element);
    #: ``uri``: the header holds the SPIFFE ID itself.
    mesh_header_format: Literal["xfcc", "uri"] = "xfcc"
    #: Addresses (CIDRs) of the sidecars whose identity header is believed.
    mesh_trusted_sidecars: list[str] = Field(default_factory=list)

    @field_validator("trust_domain")
    @classmethod
    def _check_trust_domain(cls, value: str) -> str:
        if not _TRUST_DOMAIN.fullmatch(value) or value.startswith(".") or ".." in value:
            raise ValueError(
                "trust_domain must be lowercase letters, digits, '.', '-' or '_' "
                "(SPIFFE ID spec §2.1), for example 'barbacana.internal'"
            )
        return value

    @field_validator("cert_lifetime", "ca_lifetime")
    @classmethod
    def _check_lifetime(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=5):
            raise ValueError("a certificate lifetime must be at least 5 minutes")
        return value

    @field_validator("reload_interval")
    @classmethod
    def _check_interval(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("reload_interval must be positive")
        return value

    @field_validator("ciphers")
    @classmethod
    def _check_ciphers(cls, value: str) -> str:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.set_ciphers(value)
        except ssl.SSLError:
            raise ValueError(f"OpenSSL selects no cipher from {value!r}") from None
        for cipher in context.get_ciphers():
            if cipher["protocol"] == "TLSv1.3":
                continue
            if not cipher["aead"] or cipher["kea"] != "kx-ecdhe":
                raise ValueError(
                    f"cipher {cipher['name']} is not ECDHE with AEAD; "
                    f"use a string such as {DEFAULT_CIPHERS!r}"
                )
        return value

    @field_validator("mesh_identity_header")
    @classmethod
    def _check_header(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _HEADER_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not an HTTP header name")
        return value.lower()

    @field_validator("mesh_trusted_sidecars")
    @classmethod
    def _check_cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP address or CIDR") from None
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> TransportSettings:
        if self.renew_before >= self.cert_lifetime:
            raise ValueError(
                "renew_before must be shorter than cert_lifetime, "
                "or every certificate would be renewed as soon as it is issued"
            )
        if self.mesh_identity_header is not None and not self.mesh_trusted_sidecars:
            raise ValueError(
                "mesh_identity_header needs mesh_trusted_sidecars: without them the header "
                "could never be believed (and must never be believed from anyone)"
            )
        return self

    @property
    def minimum_version(self) -> ssl.TLSVersion:
        """The :class:`ssl.TLSVersion` matching :attr:`minimum_tls_version`."""
        if self.minimum_tls_version == "1.3":
            return ssl.TLSVersion.TLSv1_3
        return ssl.TLSVersion.TLSv1_2
