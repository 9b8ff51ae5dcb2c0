"""Redaction: what is a secret never reaches the audit trail or the logs.

One :class:`Redactor` serves both the audit processor chain and the structlog
processor in :mod:`barbacana.logs`. It turns any value into a JSON-safe copy in
which

- a value under a secret-sounding key (``password``, ``client_secret``,
  ``refreshToken``, ``X-API-Key``, ``Authorization``, ``Cookie``, ``*_key``...)
  is replaced by ``"[REDACTED]"``, and so is the value of a ``(name, value)``
  header pair whose name is one;
- :class:`pydantic.SecretStr` / :class:`~pydantic.SecretBytes` (anything with
  ``get_secret_value``) and raw ``bytes`` never show their content;
- inside any string, JWS/JWE compact serialisations (RFC 7515 §7.1, RFC 7516
  §7.1), PEM blocks (RFC 7468), ``Bearer``/``Basic`` credentials (RFC 6750,
  RFC 7617), passwords in URLs (RFC 3986 §3.2.1) and secret query parameters
  are cut out;
- depth, container sizes and string lengths are capped, so one event stays small;
- characters no store can hold -- NUL (PostgreSQL refuses it in ``text`` and
  ``jsonb``) and lone UTF-16 surrogates (not encodable as UTF-8) -- become
  U+FFFD REPLACEMENT CHARACTER, in keys and values alike.

Unknown objects become ``<TypeName>``: their ``str()`` might hold a secret.

Why replace rather than refuse: the events that carry such characters are
mostly records of hostile input (a path with ``%00``, a forged header), the
very events an investigator needs; refusing them would let a client keep its
own requests out of the trail, or turn them into errors. U+FFFD is what every
UTF-8 decoder writes for what it cannot represent, so the stored event says
"a character was here that could not be kept", and it is the same event,
hashed the same way, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import PurePath
from typing import Any

__all__ = ["REDACTED", "REPLACEMENT", "Redactor", "storable"]

#: What replaces a secret.
REDACTED = "[REDACTED]"
#: What replaces a character no store can hold (NUL, a lone surrogate).
REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD (see the module docstring)."""
    if text.isascii():
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
    return _UNSTORABLE.sub(REPLACEMENT, text)


# Parts of a field name that make its value a secret.
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "tokens",
        "jwt",
        "jws",
        "jwe",
        "authorization",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "apikey",
        "otp",
        "totp",
        "hotp",
        "pin",
        "signature",
        "key",
        "keys",
        "privatekey",
        "salt",
        "session",
        "sessionid",
        "assertion",
        "bearer",
    }
)
# Substrings of a joined name ("xapikey", "setcookie") that make it a secret.
_SECRET_SUBSTRINGS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "apikey",
    "privatekey",
    "accesskey",
    "authorization",
    "cookie",
    "credential",
    "token",
)
# Names that look secret but are not.
_SAFE_NAMES = frozenset(
    {"kid", "keyid", "apikeyid", "tokentype", "tokentypehint", "publickey", "keytype"}
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")

_B64URL = r"[A-Za-z0-9_-]"
_CRED = r"(?=[A-Za-z0-9._~+/=-]*[A-Z0-9._~+/=-])[A-Za-z0-9._~+/=-]{6,}"
_STRONG = r"password|passwd|passphrase|secret|api[_-]?key|private[_-]?key|credential"
_TEXT_PATTERNS: tuple[tuple[str, str], ...] = (
    # JWS (3 parts) or JWE (5 parts) compact serialisation: the header is a
    # base64url JSON object, so it starts with "eyJ" ('{"').
    ("jwt", rf"eyJ{_B64URL}+(?:\.{_B64URL}*){{2,4}}"),
    # PEM blocks (RFC 7468), complete or cut short.
    ("pem", r"-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(?:-----END [A-Z0-9 ]+-----|\Z)"),
    # HTTP authentication schemes followed by something that looks like a credential.
    ("scheme", rf"(?P<scheme>(?i:\b(?:bearer|basic|digest|negotiate|dpop))\s+){_CRED}"),
    # Barbacana API keys (brb_<id>_<secret>): the public id stays, the secret goes.
    ("apikey", r"(?P<apikey>\bbrb_[0-9a-f]{12}_)[A-Za-z0-9_-]{8,}"),
    # user:password@ in URLs.
    ("userinfo", r"(?P<userinfo>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"),
    # Secret query or form parameters.
    (
        "query",
        r"(?P<query>[?&;](?i:[\w-]{0,40}(?:password|passwd|secret|token|api[_-]?key|private[_-]?key)"
        r"|code|key|pwd|assertion|signature|sig)=)[^&\s#]+",
    ),
    # name=value and "name": "value" pairs in free text.
    ("pair", rf"(?P<pair>(?i:\b[\w-]{{0,40}}(?:{_STRONG}))[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;]+"),
    (
        "tokpair",
        r"(?P<tokpair>(?i:\b[\w-]{0,40}token)[\"']?(?:\s*=\s*|[\"']\s*:\s*|:(?=\S))[\"']?)"
        r"[^\s&\"',;]+",
    ),
)


_SCHEME_WORDS = ("bearer", "basic", "digest", "negotiate", "dpop")
_PARAM_WORDS = (
    "pass",
    "secret",
    "token",
    "key",
    "credential",
    "pwd",
    "code",
    "assertion",
    "sig",
)


def _may_hold_secret(text: str) -> bool:
    """A cheap over-approximation of "one of the patterns could match here"."""
    if "eyJ" in text or "-----" in text or "://" in text or "brb_" in text:
        return True
    lower = text.lower()
    if ("=" in text or ":" in text) and any(word in lower for word in _PARAM_WORDS):
        return True
    return any(word in lower for word in _SCHEME_WORDS)


def _name_parts(name: str) -> list[str]:
    return [p for p in _NON_ALNUM.split(_CAMEL.sub("_", name).lower()) if p]


class Redactor:
    """Make a value safe to store and log; see the module docstring for the rules.

    Args:
        secret_fields: Extra field names whose values are always redacted.
        patterns: Extra regular expressions whose matches are cut out of strings.
        max_depth: Nesting kept; deeper values become ``"[...]"``.
        max_items: Items kept per list or mapping.
        max_string: Characters kept per string (after redaction).
    """

    def __init__(
        self,
        *,
        secret_fields: Iterable[str] = (),
        patterns: Iterable[str | re.Pattern[str]] = (),
        max_depth: int = 12,
        max_items: int = 200,
        max_string: int = 2048,
    ) -> None:
        self._extra_names = frozenset("".join(_name_parts(n)) for n in secret_fields)
        extra = [
            (f"extra{i}", p if isinstance(p, str) else p.pattern) for i, p in enumerate(patterns)
        ]
        alternatives = "|".join(
            f"(?P<k_{name}>{regex})" for name, regex in (*_TEXT_PATTERNS, *extra)
        )
        self._text = re.compile(alternatives)
        self._extra = bool(extra)
        self._max_depth = max_depth
        self._max_items = max_items
        self._max_string = max_string
        self._name_cache: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"Redactor(extra_fields={len(self._extra_names)})"

    # -- names ---------------------------------------------------------------------------

    def is_secret_name(self, name: str) -> bool:
        """Whether a field or header called ``name`` holds a secret."""
        cached = self._name_cache.get(name)
        if cached is not None:
            return cached
        parts = _name_parts(name)
        joined = "".join(parts)
        if joined in _SAFE_NAMES:
            secret = False
        else:
            secret = (
                joined in self._extra_names
                or any(p in _SECRET_WORDS for p in parts)
                or any(s in joined for s in _SECRET_SUBSTRINGS)
            )
        if len(self._name_cache) < 4096:
            self._name_cache[name] = secret
        return secret

    # -- strings -------------------------------------------------------------------------

    def _replace(self, match: re.Match[str]) -> str:
        kind = (match.lastgroup or "")[2:]
        if kind == "userinfo":
            return f"{match.group('userinfo')}{REDACTED}@"
        if kind in ("scheme", "query", "pair", "tokpair", "apikey"):
            return f"{match.group(kind)}{REDACTED}"
        return REDACTED

    def redact_text(self, text: str, *, limit: int | None = None) -> str:
        """Cut secrets out of a string capped at ``limit`` characters (default ``max_string``).

        NUL and lone surrogates become U+FFFD first.
        """
        cap = self._max_string if limit is None else limit
        text = storable(text)
        if len(text) > cap:
            text = text[:cap] + "…"
        if not self._extra and not _may_hold_secret(text):
            return text  # fast path: no built-in pattern can match
        return self._text.sub(self._replace, text)

    # -- values --------------------------------------------------------------------------

    def __call__(self, value: Any) -> Any:
        """A JSON-safe, redacted copy of ``value``."""
        return self._value(value, 0)

    def mapping(self, value: Mapping[Any, Any]) -> dict[str, Any]:
        """A redacted copy of a mapping (the top level of details or a log line)."""
        return self._mapping(value, 0)

    def _mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for count, (key, item) in enumerate(value.items()):
            if count >= self._max_items:
                out["…"] = f"{len(value) - count} more"
                break
            name = self.redact_text(str(key)) if not isinstance(key, str) else storable(key)
            if self.is_secret_name(name):
                out[name] = REDACTED
            else:
                out[self.redact_text(name)] = self._value(item, depth + 1)
        return out

    def _sequence(self, value: Iterable[Any], depth: int) -> list[Any]:
        items = list(value) if not isinstance(value, list | tuple) else value
        out: list[Any] = []
        for count, item in enumerate(items):
            if count >= self._max_items:
                out.append(f"[… {len(items) - count} more]")
                break
            out.append(self._pair(item, depth) if _is_pair(item) else self._value(item, depth + 1))
        return out

    def _pair(self, item: Any, depth: int) -> list[Any]:
        # A (name, value) pair such as an ASGI header: the name decides.
        raw_name, raw_value = item
        name = storable(raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name)
        if self.is_secret_name(name):
            return [name, REDACTED]
        if isinstance(raw_value, bytes):
            return [name, self.redact_text(raw_value.decode("latin-1"))]
        return [name, self._value(raw_value, depth + 1)]

    def _value(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if depth >= self._max_depth:
            return "[...]"
        if hasattr(value, "get_secret_value"):
            return REDACTED
        if isinstance(value, Mapping):
            return self._mapping(value, depth)
        if isinstance(value, list | tuple | set | frozenset):
            return self._sequence(
                sorted(value, key=repr) if isinstance(value, set | frozenset) else value, depth
            )
        if isinstance(value, bytes | bytearray | memoryview):
            return f"[{len(value)} bytes]"
        converted = _convert(value)
        if converted is not _UNKNOWN:
            return self._value(converted, depth + 1)
        return f"<{type(value).__name__}>"


def _is_pair(item: Any) -> bool:
    return (
        isinstance(item, list | tuple)
        and len(item) == 2
        and isinstance(item[0], str | bytes)
        and isinstance(item[1], str | bytes)
    )


_UNKNOWN = object()


def _model_dump(value: Any) -> Any:
    dump: Callable[[], Any] = value.model_dump
    return dump()


def _convert(value: Any) -> Any:
    """A plainer form of well-known types, or ``_UNKNOWN``."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(
        value,
        uuid.UUID
        | Decimal
        | PurePath
        | ipaddress.IPv4Address
        | ipaddress.IPv6Address
        | ipaddress.IPv4Network
        | ipaddress.IPv6Network,
    ):
        return str(value)
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return _model_dump(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return _UNKNOWN
