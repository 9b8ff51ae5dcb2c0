"""Settings of the SSRF-safe outbound client (``Settings.outbound``).

Read from ``BARBACANA_OUTBOUND_<FIELD>``; validated and turned into an
:class:`~barbacana.outbound.OutboundPolicy` by
:meth:`~barbacana.outbound.OutboundPolicy.from_settings`, which refuses bad
values with a :class:`~barbacana.errors.ConfigurationError` saying how to fix them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OutboundSettings"]


class OutboundSettings(BaseModel):
    """Which URLs from outside a service may fetch, and how much it reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Allow plain ``http://`` (off: only ``https://``).
    allow_http: bool = False
    #: Host names that may be fetched (``files.example.com``, or ``*.example.com``
    #: for its subdomains); empty means any public host. Allowed hosts are
    #: still refused when they resolve to a non-public address.
    allowed_hosts: list[str] = Field(default_factory=list)
    #: Ports that may be fetched.
    allowed_ports: list[int] = Field(default_factory=lambda: [80, 443])
    #: Redirects followed per fetch; each one is checked like the first URL.
    max_redirects: int = Field(5, ge=0, le=20)
    #: Largest body read, after decoding (a larger one is refused, not truncated).
    max_bytes: int = Field(10 * 1024 * 1024, ge=1)
    #: Total seconds of one fetch: resolution, every redirect and the whole body.
    timeout: float = Field(10.0, gt=0, le=600)
    #: Extra networks to refuse (CIDR), for example your own public ranges.
    blocked_cidrs: list[str] = Field(default_factory=list)
    #: TEST ONLY. Networks (CIDR) otherwise refused that may be fetched, on
    #: ``test_only_allowed_ports`` only; refused in the ``production`` profile.
    #: Cloud metadata addresses stay refused whatever this says.
    test_only_allowed_cidrs: list[str] = Field(default_factory=list)
    #: TEST ONLY. The ports on which ``test_only_allowed_cidrs`` apply (required with them).
    test_only_allowed_ports: list[int] = Field(default_factory=list)
    #: ``User-Agent`` sent with every outbound request.
    user_agent: str = "barbacana-outbound"
