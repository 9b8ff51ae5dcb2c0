"""Strict CORS: an exact allow-list of origins, validated before the app starts.

CORS (the Fetch Standard, https://fetch.spec.whatwg.org/#http-cors-protocol)
is the browser relaxing its same-origin policy because a server said so. The
dangerous configurations are the permissive ones, so :class:`CorsPolicy`
refuses them at start-up with a :class:`~barbacana.errors.ConfigurationError`
that says how to fix them:

- a wildcard origin together with credentials (any site could read a signed-in
  user's data; invariant 7),
- the ``null`` origin (sent by sandboxed iframes, ``file:`` and ``data:``
  pages, which any attacker can produce),
- anything that is not exactly ``scheme://host[:port]`` (paths, wildcards in
  host names, userinfo), and ``*`` for methods or headers.

:class:`StrictCORSMiddleware` answers preflights itself and decorates other
responses. An origin matches only if it is byte-for-byte one of the listed
ones (after start-up normalisation: lowercase host, IDNA, default port
dropped). A refused preflight gets ``403`` problem+json without any
``Access-Control-Allow-*`` header, so the browser blocks the real request;
an actual request from an unlisted origin still reaches the app (CORS
controls what a page may *read*, not what it may send) but its response
carries no allow headers, so the page cannot read it.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

import idna
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import AccessError, ConfigurationError
from ..settings import CorsSettings
from ._problem import PROBLEM_CONTENT_TYPE, problem_body

__all__ = ["CorsPolicy", "CorsPreflightRefusedError", "StrictCORSMiddleware", "normalize_origin"]

# RFC 9110 §5.6.2 token.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_ORIGIN = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<authority>[^/?#]*)(?P<rest>.*)$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Fetch Standard: methods a page can never use, so listing them is a mistake.
_FORBIDDEN_METHODS = frozenset({"CONNECT", "TRACE", "TRACK"})
# Fetch Standard CORS-safelisted request headers that a browser may still name in a
# preflight (when their value is unusual); harmless to accept. Content-Type is not
# here: a JSON body needs it listed explicitly.
_ALWAYS_ALLOWED_HEADERS = frozenset({"accept", "accept-language", "content-language"})
# Response headers this middleware owns; an app's own values are removed.
_OWNED = (
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
)


class CorsPreflightRefusedError(AccessError):
    """A CORS preflight asked for an origin, method or header that is not allowed."""

    code = "cors_preflight_refused"
    status = 403
    title = "CORS preflight refused"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """A validated CORS policy; build it with :meth:`from_settings`.

    Attributes:
        origins: Allowed origins, normalised (``https://app.example.com``).
        any_origin: ``*`` was configured (only possible without credentials).
        allow_credentials: Send ``Access-Control-Allow-Credentials: true``.
        methods: Methods a preflight may ask for.
        headers: Request headers a preflight may ask for (as configured).
        expose_headers: Response headers pages may read.
        max_age: Seconds a browser may cache a preflight answer.
    """

    origins: frozenset[str]
    any_origin: bool
    allow_credentials: bool
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    max_age: int

    @classmethod
    def from_settings(cls, settings: CorsSettings) -> CorsPolicy:
        """Validate ``settings.cors`` and build the policy.

        Raises:
            ConfigurationError: The configuration is unsafe or malformed; the
                message says how to fix it.
        """
        any_origin = "*" in settings.origins
        if any_origin and settings.allow_credentials:
            raise ConfigurationError(
                "cors.origins contains '*' while cors.allow_credentials is true: any site "
                "could read your users' data. List each origin exactly "
                "(BARBACANA_CORS_ORIGINS='[\"https://app.example.com\"]') or turn credentials off"
            )
        if any_origin and len(settings.origins) > 1:
            raise ConfigurationError(
                "cors.origins mixes '*' with specific origins: use either '*' alone or a list"
            )
        origins = frozenset() if any_origin else frozenset(map(normalize_origin, settings.origins))
        if not 0 <= settings.max_age <= 86400:
            raise ConfigurationError("cors.max_age must be between 0 and 86400 seconds")
        return cls(
            origins=origins,
            any_origin=any_origin,
            allow_credentials=settings.allow_credentials,
            methods=tuple(dict.fromkeys(_method(m) for m in settings.methods)),
            headers=tuple(dict.fromkeys(_header(h, "headers") for h in settings.headers)),
            expose_headers=tuple(
                dict.fromkeys(_header(h, "expose_headers") for h in settings.expose_headers)
            ),
            max_age=settings.max_age,
        )

    def is_allowed_origin(self, origin: str | None) -> bool:
        """``origin`` (an ``Origin`` header value) may use this service.

        Exact comparison with the normalised list: browsers send origins
        already serialised that way. ``null`` and a missing origin never
        match. WebSocket handshakes use the same check (invariant 7).
        """
        if not origin or origin == "null":
            return False
        return self.any_origin or origin in self.origins


def normalize_origin(value: str) -> str:
    """The browser serialisation of a configured origin (RFC 6454 §6.1).

    Raises:
        ConfigurationError: ``value`` is not ``scheme://host[:port]``.
    """
    hint = "write it as scheme://host[:port], for example https://app.example.com"
    if not isinstance(value, str) or value != value.strip() or any(c.isspace() for c in value):
        raise ConfigurationError(f"cors.origins entry {value!r} contains spaces: {hint}")
    if value.lower() == "null":
        raise ConfigurationError(
            "cors.origins must not contain 'null': sandboxed iframes and file: or data: "
            "pages send it, so any attacker can. List the real origins instead"
        )
    match = _ORIGIN.match(value)
    if match is None:
        raise ConfigurationError(f"cors.origins entry {value!r} is not an origin: {hint}")
    scheme, authority, rest = match["scheme"].lower(), match["authority"], match["rest"]
    if scheme not in _DEFAULT_PORTS:
        raise ConfigurationError(f"cors.origins entry {value!r}: the scheme must be http or https")
    if rest == "/":
        raise ConfigurationError(
            f"cors.origins entry {value!r} ends with '/': browsers send origins without it; "
            f"remove the trailing slash"
        )
    if rest:
        raise ConfigurationError(
            f"cors.origins entry {value!r} has a path, query or fragment, which an origin "
            f"never has: {hint}"
        )
    if "@" in authority:
        raise ConfigurationError(f"cors.origins entry {value!r} contains userinfo: {hint}")
    host, port = _split_host_port(value, authority)
    if "*" in host:
        raise ConfigurationError(
            f"cors.origins entry {value!r} uses a wildcard; Barbacana matches origins "
            "exactly: list each one"
        )
    host = _normalize_host(value, host)
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _split_host_port(value: str, authority: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        host, bracket, after = authority.partition("]")
        if not bracket:
            raise ConfigurationError(f"cors.origins entry {value!r} has a malformed IPv6 host")
        host += "]"
        port_text = after[1:] if after.startswith(":") else None
        if after and port_text is None:
            raise ConfigurationError(f"cors.origins entry {value!r} has a malformed IPv6 host")
    else:
        host, sep, port_text_or_empty = authority.partition(":")
        port_text = port_text_or_empty if sep else None
    if port_text is None:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"cors.origins entry {value!r} has an invalid port")
    return host, int(port_text)


def _normalize_host(value: str, host: str) -> str:
    if not host:
        raise ConfigurationError(f"cors.origins entry {value!r} has no host")
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            raise ConfigurationError(
                f"cors.origins entry {value!r} has a malformed IPv6 host"
            ) from None
    try:
        ascii_host = host.lower() if host.isascii() else idna.encode(host, uts46=True).decode()
    except idna.IDNAError:
        raise ConfigurationError(f"cors.origins entry {value!r} has an invalid host name") from None
    if re.fullmatch(r"[0-9.]+", ascii_host):
        try:
            return str(ipaddress.IPv4Address(ascii_host))
        except ValueError:
            raise ConfigurationError(
                f"cors.origins entry {value!r}: write an IPv4 address as four decimal numbers"
            ) from None
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ConfigurationError(f"cors.origins entry {value!r} has an invalid host name")
    return ascii_host


def _method(value: str) -> str:
    if value.strip() == "*":
        raise ConfigurationError(
            "cors.methods must list methods, not '*' (list only what browsers need, "
            'for example ["GET", "POST"])'
        )
    method = value.strip().upper()
    if not _TOKEN.match(method):
        raise ConfigurationError(f"cors.methods entry {value!r} is not an HTTP method name")
    if method in _FORBIDDEN_METHODS:
        raise ConfigurationError(f"cors.methods entry {value!r}: browsers never send it; remove it")
    return method


def _header(value: str, field: str) -> str:
    name = value.strip()
    if name == "*":
        raise ConfigurationError(
            f"cors.{field} must list header names, not '*' (list only what pages need)"
        )
    if not _TOKEN.match(name):
        raise ConfigurationError(f"cors.{field} entry {value!r} is not a header name")
    return name


def _append_vary(headers: MutableHeaders, names: Iterable[str]) -> None:
    present = {v.strip().lower() for value in headers.getlist("vary") for v in value.split(",")}
    if "*" in present:
        return
    missing = [n for n in names if n.lower() not in present]
    if missing:
        headers.append("Vary", ", ".join(missing))


class StrictCORSMiddleware:
    """Plain ASGI CORS with an exact allow-list (model: Starlette's ``CORSMiddleware``).

    Args:
        app: The wrapped ASGI app.
        policy: The validated policy (:meth:`CorsPolicy.from_settings`).

    Install it inside the layer that sets request ids and security headers, so
    a refused preflight carries them too.
    """

    def __init__(self, app: ASGIApp, policy: CorsPolicy) -> None:
        if not isinstance(policy, CorsPolicy):
            raise ConfigurationError("StrictCORSMiddleware needs a CorsPolicy (from_settings)")
        self.app = app
        self.policy = policy
        self._allowed_headers = (
            frozenset(h.lower() for h in policy.headers) | _ALWAYS_ALLOWED_HEADERS
        )
        # Headers of every allowed response, precomputed.
        self._simple: list[tuple[str, str]] = []
        if policy.allow_credentials:
            # Fetch §3.2.3: without it the browser hides credentialed responses.
            self._simple.append(("Access-Control-Allow-Credentials", "true"))
        if policy.expose_headers:
            # Fetch §3.2.3: only safelisted response headers are readable otherwise.
            self._simple.append(("Access-Control-Expose-Headers", ", ".join(policy.expose_headers)))
        self._preflight = list(self._simple)
        if policy.methods:
            self._preflight.append(("Access-Control-Allow-Methods", ", ".join(policy.methods)))
        if policy.headers:
            self._preflight.append(("Access-Control-Allow-Headers", ", ".join(policy.headers)))
        # Fetch §3.2.3: how long the browser may cache this answer.
        self._preflight.append(("Access-Control-Max-Age", str(policy.max_age)))
        # With a list, the answer depends on Origin: caches must key on it (RFC 9110 §12.5.5).
        self._vary = () if policy.any_origin else ("Origin",)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # WebSockets check Origin themselves with policy.is_allowed_origin().
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origins = headers.getlist("origin")
        # Two Origin headers are not something a browser sends: treat as unlisted.
        origin = origins[0] if len(origins) == 1 else ("" if origins else None)
        if (
            scope["method"] == "OPTIONS"
            and origin is not None
            and "access-control-request-method" in headers
        ):
            await self._answer_preflight(origin, headers, send)
            return
        await self.app(scope, receive, functools.partial(self._send, send=send, origin=origin))

    def _allow_origin_value(self, origin: str) -> str:
        # With credentials the browser requires the exact origin, never "*" (Fetch §3.2.5).
        return "*" if self.policy.any_origin and not self.policy.allow_credentials else origin

    async def _send(self, message: Message, send: Send, origin: str | None) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name in _OWNED:
                del headers[name]
            if origin is not None and self.policy.is_allowed_origin(origin):
                headers["Access-Control-Allow-Origin"] = self._allow_origin_value(origin)
                for name, value in self._simple:
                    headers[name] = value
            _append_vary(headers, self._vary)
        await send(message)

    async def _answer_preflight(self, origin: str, request: Headers, send: Send) -> None:
        refused = self._preflight_refusal(origin, request)
        # The answer depends on what was asked, not only on the origin.
        vary = (*self._vary, "Access-Control-Request-Method", "Access-Control-Request-Headers")
        response = MutableHeaders()
        if refused is None:
            status, body = 204, b""
            response["Access-Control-Allow-Origin"] = self._allow_origin_value(origin)
            for name, value in self._preflight:
                response[name] = value
        else:
            error = CorsPreflightRefusedError(refused)
            status = error.status
            body = json.dumps(
                problem_body(error.status, code=error.code, title=error.title, detail=error.detail),
                separators=(",", ":"),
            ).encode()
            response["Content-Type"] = PROBLEM_CONTENT_TYPE
        response["Content-Length"] = str(len(body))
        _append_vary(response, vary)
        await send({"type": "http.response.start", "status": status, "headers": response.raw})
        await send({"type": "http.response.body", "body": body})

    def _preflight_refusal(self, origin: str, request: Headers) -> str | None:
        """Why the preflight is refused, or ``None`` when it is allowed."""
        if not self.policy.is_allowed_origin(origin):
            return "CORS preflight refused: the origin is not allowed"
        method = request["access-control-request-method"].strip()
        if method not in self.policy.methods:
            return f"CORS preflight refused: method {method[:32]!r} is not allowed"
        asked = request.get("access-control-request-headers", "")
        for name in (h.strip().lower() for h in asked.split(",")):
            if name and name not in self._allowed_headers:
                return f"CORS preflight refused: header {name[:64]!r} is not allowed"
        return None
