"""SSRF-safe outbound HTTP for URLs that come from outside (OWASP A10:2021).

Only public addresses are reached: the client parses the URL as a browser
would, resolves the host itself, checks every address (loopback, private,
link-local, cloud metadata, and their IPv6 disguises are refused), connects to
the checked address with the original name kept for ``Host`` and TLS, and
checks every redirect again. Bodies, redirects and time are capped, and the
caller's credentials are never sent::

    policy = OutboundPolicy.from_settings(settings.outbound, profile=settings.profile)
    async with SafeClient(policy) as client:
        result = await client.fetch(url_from_user, max_bytes=5_000_000)
"""

from ._addresses import METADATA_ADDRESSES, address_category
from ._client import FetchResult, SafeClient
from ._policy import OutboundPolicy
from ._resolver import Resolver, SystemResolver
from ._settings import OutboundSettings
from ._transport import STRIPPED_HEADERS, CheckedTarget, SafeTransport, safe_transport
from ._url import ParsedURL, parse_url
from .errors import (
    BadResponseError,
    BadURLError,
    DisallowedAddressError,
    DisallowedHostError,
    DisallowedPortError,
    DisallowedSchemeError,
    OutboundConnectionError,
    OutboundError,
    OutboundTimeoutError,
    ResponseTooLargeError,
    TooManyRedirectsError,
    UnresolvableHostError,
)

__all__ = [
    "METADATA_ADDRESSES",
    "STRIPPED_HEADERS",
    "BadResponseError",
    "BadURLError",
    "CheckedTarget",
    "DisallowedAddressError",
    "DisallowedHostError",
    "DisallowedPortError",
    "DisallowedSchemeError",
    "FetchResult",
    "OutboundConnectionError",
    "OutboundError",
    "OutboundPolicy",
    "OutboundSettings",
    "OutboundTimeoutError",
    "ParsedURL",
    "Resolver",
    "ResponseTooLargeError",
    "SafeClient",
    "SafeTransport",
    "SystemResolver",
    "TooManyRedirectsError",
    "UnresolvableHostError",
    "address_category",
    "parse_url",
    "safe_transport",
]
