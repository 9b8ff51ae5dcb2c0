"""Errors of the SSRF-safe outbound client.

Every leaf derives from :class:`barbacana.errors.OutboundError` and answers
``422 Unprocessable Content``: the request that carried the URL was well
formed, but the URL it names cannot be fetched, and asking again will not
change that. A refusal is raised before any packet leaves for the refused
address, so a service answers problem+json at once::

    OutboundError
     ├── BadURLError               not an absolute http(s) URL, or credentials in it
     ├── DisallowedSchemeError     scheme not allowed (ftp:, file:, http: when https only)
     ├── DisallowedHostError       host not on the allow-list
     ├── DisallowedPortError       port not allowed
     ├── DisallowedAddressError    the host is, or resolves to, a non-public address
     ├── UnresolvableHostError     the name does not resolve
     ├── TooManyRedirectsError     more redirects than the policy allows
     ├── ResponseTooLargeError     the body (after decoding) is over the cap
     ├── OutboundTimeoutError      the whole fetch took longer than the policy allows
     ├── OutboundConnectionError   connection or TLS failed
     └── BadResponseError          the server's answer could not be read
"""

from __future__ import annotations

from ..errors import OutboundError

__all__ = [
    "BadResponseError",
    "BadURLError",
    "DisallowedAddressError",
    "DisallowedHostError",
    "DisallowedPortError",
    "DisallowedSchemeError",
    "OutboundConnectionError",
    "OutboundError",
    "OutboundTimeoutError",
    "ResponseTooLargeError",
    "TooManyRedirectsError",
    "UnresolvableHostError",
]


class BadURLError(OutboundError):
    """The URL is not an absolute http(s) URL this client accepts."""

    code = "outbound_bad_url"
    status = 422
    title = "Invalid URL"


class DisallowedSchemeError(OutboundError):
    """The URL's scheme is not allowed by the outbound policy."""

    code = "outbound_scheme_not_allowed"
    status = 422
    title = "URL scheme not allowed"


class DisallowedHostError(OutboundError):
    """The URL's host is not on the outbound allow-list."""

    code = "outbound_host_not_allowed"
    status = 422
    title = "URL host not allowed"


class DisallowedPortError(OutboundError):
    """The URL's port is not allowed by the outbound policy."""

    code = "outbound_port_not_allowed"
    status = 422
    title = "URL port not allowed"


class DisallowedAddressError(OutboundError):
    """The host is, or resolves to, an address that is not public (``extra["category"]``)."""

    code = "outbound_address_not_allowed"
    status = 422
    title = "URL address not allowed"


class UnresolvableHostError(OutboundError):
    """The URL's host name does not resolve to any address."""

    code = "outbound_unresolvable_host"
    status = 422
    title = "URL host does not resolve"


class TooManyRedirectsError(OutboundError):
    """The server redirected more times than the policy allows."""

    code = "outbound_too_many_redirects"
    status = 422
    title = "Too many redirects"


class ResponseTooLargeError(OutboundError):
    """The response body is larger than the cap."""

    code = "outbound_response_too_large"
    status = 422
    title = "Response too large"


class OutboundTimeoutError(OutboundError):
    """The fetch did not complete within the policy's total time."""

    code = "outbound_timeout"
    status = 422
    title = "URL fetch timed out"


class OutboundConnectionError(OutboundError):
    """The server could not be reached, or its TLS certificate did not verify."""

    code = "outbound_unreachable"
    status = 422
    title = "URL unreachable"


class BadResponseError(OutboundError):
    """The server answered with something that is not a readable HTTP response."""

    code = "outbound_bad_response"
    status = 422
    title = "Unreadable response"
