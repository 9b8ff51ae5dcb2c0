"""Strict verification of RFC 9068 access tokens (DESIGN invariant 1).

The order of the checks is part of the defence (RFC 8725 §3):

1. the size is capped before anything is parsed;
2. the token must be exactly three canonical base64url segments;
3. the header must be a JSON object without key-carrying members (``jku``,
   ``x5u``, ``jwk``, ``x5c``), with an allowed ``alg``, no unknown ``crit``
   extension, ``typ`` ``at+jwt`` and a plausible ``kid``;
4. the key comes from the ring only, by ``kid``, and its own algorithm must be
   the token's ``alg``, so an attacker cannot choose how the key is used;
5. the signature is checked with ``cryptography`` directly;
6. only then is the payload parsed, and every claim checked;
7. revocation is checked last, and again on every cache hit.

Each rule is one ``validate_*`` method, so a subclass can tighten one rule
without copying the others.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import timedelta
from types import MappingProxyType
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature

from .._clock import Clock, system_clock
from ..errors import ConfigurationError
from ._b64 import TO_STANDARD, b64url_decode, decode_translated
from ._claims import AccessClaims
from ._keys import MAX_KID_LENGTH, SUPPORTED_ALGORITHMS, SigningKey
from ._revocation import RevocationState
from ._ring import RefreshableRingProvider, RingProvider
from .errors import (
    AlgorithmMismatchError,
    AlgorithmNotAllowedError,
    ForbiddenHeaderError,
    InvalidAudienceError,
    InvalidClaimError,
    InvalidIssuerError,
    InvalidSignatureError,
    InvalidTypeError,
    MalformedTokenError,
    MissingClaimError,
    TokenExpiredError,
    TokenNotYetValidError,
    TokenRevokedError,
    TokenTooLargeError,
    UnknownAlgorithmError,
    UnknownCriticalHeaderError,
    UnknownKeyError,
)

__all__ = ["REGISTERED_ALGORITHMS", "TokenVerifier"]

#: Every ``alg`` name in the IANA "JSON Web Signature and Encryption Algorithms"
#: registry usable with JWS. Names are case-sensitive (RFC 7515 §4.1.1), so
#: ``None`` or ``NONE`` are unknown, not a spelling of ``none``.
REGISTERED_ALGORITHMS: frozenset[str] = frozenset(
    {
        "HS256", "HS384", "HS512",
        "RS256", "RS384", "RS512",
        "ES256", "ES384", "ES512", "ES256K",
        "PS256", "PS384", "PS512",
        "EdDSA", "Ed25519", "Ed448",
        "none",
    }
)  # fmt: skip

# Header members that would let the token choose its own key (RFC 8725 §3.10).
_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c")
# Symmetric algorithms and ``none`` are refused even in the allow-list.
_NEVER_ALLOWED = frozenset({"none", "HS256", "HS384", "HS512"})
# Bound of the parsed-header cache; a few keys produce a handful of headers.
_HEADER_CACHE_SIZE = 64
# Bound of the scope-string cache.
_SCOPE_CACHE_SIZE = 256
_NO_SCOPE: frozenset[str] = frozenset()


class _Header(NamedTuple):
    alg: str
    kid: str


class _Entry(NamedTuple):
    claims: AccessClaims
    key: SigningKey


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 §4: a header with duplicate names must be rejected or use the
    # last one; different parsers picking different ones is a classic confusion.
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member")
    return members


_HEADER_JSON = json.JSONDecoder(
    object_pairs_hook=_unique_members, parse_constant=_reject_constant, parse_float=_finite_float
)
_PAYLOAD_JSON = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
# The C scanner behind ``decode``: parses one value at an index, no whitespace handling.
_scan_payload: Callable[[str, int], tuple[Any, int]] = _PAYLOAD_JSON.scan_once  # type: ignore[attr-defined]
_NUMBER = (int, float)


class TokenVerifier:
    """Verifies access tokens against a key ring; safe to share between requests.

    Args:
        ring_provider: where keys come from — a :class:`KeyRing` on the issuer, a
            :class:`JWKSCache` on a resource service, or anything with
            ``verification_key(kid) -> SigningKey | None``.
        issuer: the exact ``iss`` expected.
        audience: this service's audience identifier; ``aud`` must contain it.
        algorithms: the allow-list; a subset of ``Ed25519``, ``EdDSA``, ``ES256``
            and ``RS256``.
        leeway: seconds of clock skew tolerated for ``exp``, ``nbf`` and ``iat``.
        max_token_bytes: longer tokens are refused before being parsed.
        clock: the time source.
        revocation: revoked ``jti``, ``sid`` and subject cut-offs, if any.
        cache_size: verified tokens kept (LRU); ``0`` disables the cache.
        typ: the required ``typ`` (RFC 9068 §4), compared case-insensitively,
            with or without the ``application/`` prefix.

    Raises:
        ConfigurationError: an argument is invalid, an algorithm is unsupported,
            or the allow-list contains ``none`` or an HMAC algorithm.
    """

    def __init__(
        self,
        ring_provider: RingProvider,
        *,
        issuer: str,
        audience: str,
        algorithms: Iterable[str],
        leeway: float | timedelta = 0.0,
        max_token_bytes: int = 8192,
        clock: Clock = system_clock,
        revocation: RevocationState | None = None,
        cache_size: int = 4096,
        typ: str = "at+jwt",
    ) -> None:
        allowed = frozenset(algorithms)
        never = allowed & _NEVER_ALLOWED
        if never:
            raise ConfigurationError(
                f"{', '.join(sorted(never))} can never be accepted: tokens are signed "
                "with asymmetric keys only (RFC 8725 §3.1, §3.2)"
            )
        unsupported = allowed - SUPPORTED_ALGORITHMS
        if not allowed or unsupported:
            raise ConfigurationError(
                "algorithms must be a non-empty subset of "
                f"{', '.join(sorted(SUPPORTED_ALGORITHMS))}"
            )
        if not isinstance(issuer, str) or not issuer:
            raise ConfigurationError("issuer must be a non-empty string")
        if not isinstance(audience, str) or not audience:
            raise ConfigurationError("audience must be a non-empty string")
        seconds = _seconds(leeway)
        if not 0 <= seconds <= 300:
            raise ConfigurationError("leeway must be between 0 and 300 seconds")
        if max_token_bytes < 256:
            raise ConfigurationError("max_token_bytes must be at least 256")
        if cache_size < 0:
            raise ConfigurationError("cache_size must not be negative")
        media = typ.lower().removeprefix("application/") if isinstance(typ, str) else ""
        if not media:
            raise ConfigurationError("typ must be a media type such as 'at+jwt'")
        if not isinstance(ring_provider, RingProvider):
            raise ConfigurationError("ring_provider must have verification_key(kid)")

        self._provider = ring_provider
        self._refresher = (
            ring_provider if isinstance(ring_provider, RefreshableRingProvider) else None
        )
        self._issuer = issuer
        self._audience = audience
        self._algorithms = allowed
        self._leeway = seconds
        self._max_bytes = max_token_bytes
        self._clock = clock
        self._revocation = revocation
        self._typs = frozenset({media, "application/" + media})
        self._headers: dict[str, _Header] = {}
        self._scopes: dict[str, frozenset[str]] = {}
        self._cache_size = cache_size
        self._cache: OrderedDict[str, _Entry] | None = OrderedDict() if cache_size else None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"TokenVerifier(issuer={self._issuer!r}, audience={self._audience!r}, "
            f"algorithms={sorted(self._algorithms)!r}, cache_size={self._cache_size})"
        )

    @property
    def algorithms(self) -> frozenset[str]:
        """The allow-list."""
        return self._algorithms

    # -- entry points ---------------------------------------------------------

    def verify(self, token: str) -> AccessClaims:
        """Verify ``token`` and return its claims.

        Raises:
            TokenError: one of the subclasses in :mod:`barbacana.tokens.errors`,
                naming the first rule the token breaks.
        """
        if not isinstance(token, str):
            raise MalformedTokenError("the token must be a string")
        now = self._clock()
        cache = self._cache
        if cache is not None:
            entry = cache.get(token)
            if entry is not None and self._cache_usable(cache, token, entry, now):
                return entry.claims
        claims, key = self._verify_uncached(token, now)
        self.validate_revocation(claims)
        if cache is not None and now < claims.exp:
            self._cache_put(cache, token, _Entry(claims, key))
        return claims

    async def verify_async(self, token: str) -> AccessClaims:
        """Like :meth:`verify`, but an unknown ``kid`` may teach the provider a new key.

        When the provider can refresh (a :class:`JWKSCache`), an
        :class:`UnknownKeyError` for a plausible ``kid`` makes it refresh (at
        most once per interval, one fetch shared by all callers) and the token
        is verified once more.

        Raises:
            TokenError: as :meth:`verify`.
        """
        try:
            return self.verify(token)
        except UnknownKeyError as exc:
            if exc.kid is None or self._refresher is None:
                raise
            if not await self._refresher.refresh_for(exc.kid):
                raise
        return self.verify(token)

    def clear_cache(self) -> None:
        """Forget every verified token (for example after an emergency key removal)."""
        if self._cache is not None:
            with self._lock:
                self._cache.clear()

    # -- cache ----------------------------------------------------------------

    def _cache_usable(
        self, cache: OrderedDict[str, _Entry], token: str, entry: _Entry, now: float
    ) -> bool:
        claims = entry.claims
        # Never past exp, and never once the key left the ring (retired or removed).
        if now >= claims.exp or self._provider.verification_key(entry.key.kid) is not entry.key:
            with self._lock:
                cache.pop(token, None)
            return False
        revocation = self._revocation
        if revocation is not None and revocation.is_revoked(claims):
            with self._lock:
                cache.pop(token, None)
            raise TokenRevokedError("the token has been revoked")
        with self._lock:
            if token in cache:
                cache.move_to_end(token)
        return True

    def _cache_put(self, cache: OrderedDict[str, _Entry], token: str, entry: _Entry) -> None:
        with self._lock:
            cache[token] = entry
            if len(cache) > self._cache_size:
                cache.popitem(last=False)

    # -- the rules --------------------------------------------------------------

    def _verify_uncached(self, token: str, now: float) -> tuple[AccessClaims, SigningKey]:
        head, body, _ = self.validate_shape(token)
        header = self._headers.get(head)
        if header is None:
            header = self.validate_header(head)
            if len(self._headers) >= _HEADER_CACHE_SIZE:
                self._headers.clear()
            self._headers[head] = header
        key = self.validate_key(header)
        # One encode and one translation for the whole token; the segments are
        # sliced from it (validate_shape proved it is ASCII with two dots).
        raw = token.encode("ascii")
        cut = len(head) + len(body) + 1
        standard = raw.translate(TO_STANDARD)
        try:
            signature = decode_translated(standard[cut + 1 :])
        except ValueError:
            raise MalformedTokenError("the token signature is not base64url") from None
        self.validate_signature(key, raw[:cut], signature)
        try:
            payload = decode_translated(standard[len(head) + 1 : cut])
        except ValueError:
            raise MalformedTokenError("the token payload is not base64url") from None
        return self.validate_claims(self.decode_payload(payload), now), key

    def validate_shape(self, token: str) -> list[str]:
        """Size cap, ASCII, and exactly three non-empty segments (RFC 7515 §7.1).

        Raises:
            TokenTooLargeError: longer than ``max_token_bytes``.
            MalformedTokenError: not three dot-separated ASCII segments.
        """
        if len(token) > self._max_bytes:
            raise TokenTooLargeError(f"the token is longer than {self._max_bytes} bytes")
        if not token.isascii():
            raise MalformedTokenError("the token contains non-ASCII characters")
        segments = token.split(".")
        if len(segments) != 3:
            raise MalformedTokenError(
                "the token is not a compact JWS: it needs exactly three dot-separated segments"
            )
        if not segments[0] or not segments[1]:
            raise MalformedTokenError("the token's header or payload segment is empty")
        return segments

    def validate_header(self, segment: str) -> _Header:
        """Decode the protected header and apply every header rule.

        Raises:
            MalformedTokenError: not base64url, not UTF-8 JSON, not an object,
                duplicate member names, or no ``alg``.
            ForbiddenHeaderError, UnknownAlgorithmError, AlgorithmNotAllowedError,
            UnknownCriticalHeaderError, InvalidTypeError, UnknownKeyError.
        """
        try:
            header = _HEADER_JSON.decode(b64url_decode(segment).decode("utf-8"))
        except (ValueError, RecursionError):
            raise MalformedTokenError("the token header is not base64url-encoded JSON") from None
        if not isinstance(header, dict):
            raise MalformedTokenError("the token header is not a JSON object")
        self.validate_forbidden_headers(header)
        alg = self.validate_alg(header)
        self.validate_crit(header)
        self.validate_typ(header)
        return _Header(alg, self.validate_kid(header))

    def validate_forbidden_headers(self, header: dict[str, Any]) -> None:
        """Refuse ``jku``, ``x5u``, ``jwk`` and ``x5c``: keys come from the ring only.

        Raises:
            ForbiddenHeaderError: one of them is present.
        """
        for name in _FORBIDDEN_HEADERS:
            if name in header:
                raise ForbiddenHeaderError(
                    f"the token header carries '{name}'; keys are never taken from a token"
                )

    def validate_alg(self, header: dict[str, Any]) -> str:
        """``alg`` must be registered and on the allow-list (RFC 8725 §3.1).

        Raises:
            MalformedTokenError: no ``alg``.
            UnknownAlgorithmError: not a registered name (``NONE``, ``foo``, a number).
            AlgorithmNotAllowedError: registered but not allowed (``none``, ``HS256``).
        """
        if "alg" not in header:
            raise MalformedTokenError("the token header has no 'alg'")
        alg = header["alg"]
        if not isinstance(alg, str) or alg not in REGISTERED_ALGORITHMS:
            raise UnknownAlgorithmError("the token's algorithm is not a registered JWS algorithm")
        if alg not in self._algorithms:
            allowed = ", ".join(sorted(self._algorithms))
            raise AlgorithmNotAllowedError(
                f"the token's algorithm is not accepted; allowed: {allowed}"
            )
        return alg

    def validate_crit(self, header: dict[str, Any]) -> None:
        """No critical extension is implemented, so any ``crit`` is refused (RFC 7515 §4.1.11).

        Raises:
            UnknownCriticalHeaderError: ``crit`` is present.
        """
        if "crit" in header:
            raise UnknownCriticalHeaderError(
                "the token requires header extensions ('crit') this verifier does not implement"
            )

    def validate_typ(self, header: dict[str, Any]) -> None:
        """``typ`` must be ``at+jwt`` or ``application/at+jwt``, any case (RFC 9068 §4).

        This is what tells an access token from an ID token or another JWT
        signed by the same issuer (RFC 8725 §3.11).

        Raises:
            InvalidTypeError: ``typ`` is missing or different.
        """
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in self._typs:
            raise InvalidTypeError("the token is not an access token (typ must be 'at+jwt')")

    def validate_kid(self, header: dict[str, Any]) -> str:
        """``kid`` must be a plausible key id; whether it exists is :meth:`validate_key`'s job.

        Raises:
            UnknownKeyError: ``kid`` is missing, not a string, empty or too long
                (no refresh can help, so the error carries no ``kid``).
        """
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            raise UnknownKeyError("the token does not name a key with a valid 'kid'")
        return kid

    def validate_key(self, header: _Header) -> SigningKey:
        """The ring's key for ``kid``, whose algorithm must be the token's ``alg``.

        Raises:
            UnknownKeyError: no such key, or it is retired.
            AlgorithmMismatchError: the key was published for another algorithm.
        """
        key = self._provider.verification_key(header.kid)
        if key is None or key.state == "retired":
            raise UnknownKeyError("the token's key id names no key in the key set", kid=header.kid)
        if key.alg != header.alg:
            raise AlgorithmMismatchError(
                "the token's algorithm is not the algorithm its key was published for"
            )
        return key

    def validate_signature(self, key: SigningKey, signing_input: bytes, signature: bytes) -> None:
        """Verify the JWS signature over ``header.payload`` (RFC 7515 §5.2).

        Raises:
            InvalidSignatureError: missing or not valid for this key.
        """
        if not signature:
            raise InvalidSignatureError("the token has no signature")
        try:
            key._verify(signature, signing_input)  # the key's prebuilt cryptography call
        except (InvalidSignature, ValueError):
            raise InvalidSignatureError("the token signature is not valid") from None

    def decode_payload(self, data: bytes) -> dict[str, Any]:
        """The decoded payload bytes as a JSON object (only ever called on a verified token).

        Raises:
            MalformedTokenError: not UTF-8 JSON, or not an object.
        """
        try:
            text = data.decode("utf-8")
            try:
                # The C scanner alone: no whitespace-skipping regular expressions.
                payload, end = _scan_payload(text, 0)
            except StopIteration:
                end = -1
            if end != len(text):
                payload = _PAYLOAD_JSON.decode(text)  # surrounding whitespace, or an error
        except (ValueError, RecursionError):
            raise MalformedTokenError("the token payload is not JSON") from None
        if type(payload) is not dict:
            raise MalformedTokenError("the token payload is not a JSON object")
        return payload

    def validate_claims(self, payload: dict[str, Any], now: float) -> AccessClaims:
        """Apply every claim rule and build :class:`AccessClaims`.

        Raises:
            TokenError: the first failing claim rule's error.
        """
        exp = self.validate_exp(payload, now)
        self.validate_nbf(payload, now)
        iat = self.validate_iat(payload, now)
        iss = self.validate_iss(payload)
        aud = self.validate_aud(payload)
        return AccessClaims._trusted(
            {
                "sub": self.validate_string(payload, "sub"),
                "scope": self.validate_scope(payload),
                "roles": self.validate_roles(payload),
                "client_id": self.validate_string(payload, "client_id"),
                "jti": self.validate_string(payload, "jti"),
                "sid": self.validate_sid(payload),
                "iat": iat,
                "exp": exp,
                "iss": iss,
                "aud": aud,
                "raw": MappingProxyType(payload),
            }
        )

    def validate_exp(self, payload: dict[str, Any], now: float) -> float:
        """``exp`` is required; the token is refused from ``exp + leeway`` on (RFC 7519 §4.1.4).

        Raises:
            MissingClaimError, InvalidClaimError, TokenExpiredError.
        """
        exp = payload.get("exp")
        if exp is None:
            raise MissingClaimError("the token has no 'exp' claim")
        if type(exp) not in _NUMBER:
            raise InvalidClaimError("the token's 'exp' claim is not a number")
        if now >= exp + self._leeway:
            raise TokenExpiredError("the token has expired")
        return exp  # type: ignore[no-any-return]

    def validate_nbf(self, payload: dict[str, Any], now: float) -> None:
        """An ``nbf`` later than ``now + leeway`` is refused (RFC 7519 §4.1.5).

        Raises:
            InvalidClaimError, TokenNotYetValidError.
        """
        nbf = payload.get("nbf")
        if nbf is None:
            return
        if type(nbf) not in _NUMBER:
            raise InvalidClaimError("the token's 'nbf' claim is not a number")
        if nbf > now + self._leeway:
            raise TokenNotYetValidError("the token is not valid yet")

    def validate_iat(self, payload: dict[str, Any], now: float) -> float:
        """``iat`` is required (RFC 9068 §2.2) and must not lie beyond ``now + leeway``.

        Raises:
            MissingClaimError, InvalidClaimError, TokenNotYetValidError.
        """
        iat = payload.get("iat")
        if iat is None:
            raise MissingClaimError("the token has no 'iat' claim")
        if type(iat) not in _NUMBER:
            raise InvalidClaimError("the token's 'iat' claim is not a number")
        if iat > now + self._leeway:
            raise TokenNotYetValidError("the token was issued in the future")
        return iat  # type: ignore[no-any-return]

    def validate_iss(self, payload: dict[str, Any]) -> str:
        """``iss`` must be exactly the trusted issuer (RFC 9068 §4).

        Raises:
            MissingClaimError, InvalidIssuerError.
        """
        iss = payload.get("iss")
        if iss is None:
            raise MissingClaimError("the token has no 'iss' claim")
        if iss != self._issuer or type(iss) is not str:
            raise InvalidIssuerError("the token was not issued by the trusted issuer")
        return iss

    def validate_aud(self, payload: dict[str, Any]) -> tuple[str, ...]:
        """``aud``, a string or a list of strings, must contain this service (RFC 7519 §4.1.3).

        Raises:
            MissingClaimError, InvalidClaimError, InvalidAudienceError.
        """
        aud = payload.get("aud")
        if aud is None:
            raise MissingClaimError("the token has no 'aud' claim")
        if type(aud) is str:
            audiences: tuple[str, ...] = (aud,)
        elif type(aud) is list:
            for item in aud:
                if type(item) is not str:
                    raise InvalidClaimError("the token's 'aud' claim is not a list of strings")
            audiences = tuple(aud)
        else:
            raise InvalidClaimError("the token's 'aud' claim is not a string or list of strings")
        if self._audience not in audiences:
            raise InvalidAudienceError("the token is not meant for this service")
        return audiences

    def validate_string(self, payload: dict[str, Any], name: str) -> str:
        """A required non-empty string claim: ``sub``, ``jti``, ``client_id`` (RFC 9068 §2.2).

        Raises:
            MissingClaimError, InvalidClaimError.
        """
        value = payload.get(name)
        if type(value) is str and value:
            return value
        if value is None:
            raise MissingClaimError(f"the token has no '{name}' claim")
        raise InvalidClaimError(f"the token's '{name}' claim is not a non-empty string")

    def validate_scope(self, payload: dict[str, Any]) -> frozenset[str]:
        """``scope``, when present, is one space-separated string (RFC 8693 §4.2).

        Raises:
            InvalidClaimError: not a string.
        """
        scope = payload.get("scope")
        if scope is None:
            return _NO_SCOPE
        if type(scope) is not str:
            raise InvalidClaimError("the token's 'scope' claim is not a space-separated string")
        # Tokens of one client carry the same few scope strings: keep their sets
        # (immutable, so shared safely) in a small table cleared when full.
        scopes = self._scopes.get(scope)
        if scopes is None:
            scopes = frozenset(scope.split())
            if len(self._scopes) >= _SCOPE_CACHE_SIZE:
                self._scopes.clear()
            self._scopes[scope] = scopes
        return scopes

    def validate_roles(self, payload: dict[str, Any]) -> tuple[str, ...]:
        """``roles``, when present, is a list of strings (RFC 9068 §2.2.3.1).

        Raises:
            InvalidClaimError: not a list of strings.
        """
        roles = payload.get("roles")
        if roles is None:
            return ()
        if type(roles) is not list:
            raise InvalidClaimError("the token's 'roles' claim is not a list of strings")
        for role in roles:
            if type(role) is not str:
                raise InvalidClaimError("the token's 'roles' claim is not a list of strings")
        return tuple(roles)

    def validate_sid(self, payload: dict[str, Any]) -> str | None:
        """``sid``, when present, names the refresh-token family as a string.

        Raises:
            InvalidClaimError: not a non-empty string.
        """
        sid = payload.get("sid")
        if sid is None or (type(sid) is str and sid):
            return sid
        raise InvalidClaimError("the token's 'sid' claim is not a non-empty string")

    def validate_revocation(self, claims: AccessClaims) -> None:
        """The token, its family and its subject's earlier tokens must not be revoked.

        Raises:
            TokenRevokedError: revoked.
        """
        revocation = self._revocation
        if revocation is not None and revocation.is_revoked(claims):
            raise TokenRevokedError("the token has been revoked")
