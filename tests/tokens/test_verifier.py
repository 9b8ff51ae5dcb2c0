"""TokenVerifier: one class per rule, each with a passing and a failing case."""

from __future__ import annotations

import json
from typing import Any

import pytest

from barbacana.errors import ConfigurationError, TokenError
from barbacana.tokens import (
    AccessClaims,
    AlgorithmMismatchError,
    AlgorithmNotAllowedError,
    ForbiddenHeaderError,
    InvalidAudienceError,
    InvalidClaimError,
    InvalidIssuerError,
    InvalidSignatureError,
    InvalidTypeError,
    KeyRing,
    MalformedTokenError,
    MissingClaimError,
    TokenExpiredError,
    TokenNotYetValidError,
    TokenTooLargeError,
    TokenVerifier,
    UnknownAlgorithmError,
    UnknownCriticalHeaderError,
    UnknownKeyError,
)

from .helpers import (
    ALGORITHMS,
    AUDIENCE,
    ISSUER,
    NOW,
    Kit,
    cached_key,
    claims,
    forge,
    header_for,
    make_kit,
    segment,
)


@pytest.fixture
def kit() -> Kit:
    return make_kit("Ed25519")


def signed(kit: Kit, payload: Any = None, **header: Any) -> str:
    """A token signed by the kit's key with a custom header or payload."""
    return forge(header_for(kit.key, **header), claims() if payload is None else payload, kit.key)


class TestValidTokens:
    """Tokens from the issuer verify, for every algorithm."""

    @pytest.mark.parametrize("alg", ALGORITHMS)
    def test_round_trip(self, alg: str) -> None:
        """Every claim the issuer sets comes back typed."""
        kit = make_kit(alg)
        result = kit.verifier.verify(
            kit.token("alice", scope=["a", "b"], roles=["admin"], sid="fam")
        )
        assert isinstance(result, AccessClaims)
        assert result.sub == "alice"
        assert result.scope == frozenset({"a", "b"})
        assert result.roles == ("admin",)
        assert (result.client_id, result.sid, result.iss, result.aud) == (
            "web",
            "fam",
            ISSUER,
            (AUDIENCE,),
        )
        assert result.exp - result.iat == 600
        assert len(result.jti) == 22
        assert result.raw["client_id"] == "web"

    def test_eddsa_named_key_verifies_under_eddsa(self) -> None:
        """A key published as EdDSA verifies tokens whose alg is EdDSA."""
        kit = make_kit(key=cached_key("Ed25519", 0, "EdDSA"))
        assert kit.verifier.verify(kit.token()).sub == "user-1"

    def test_raw_claims_are_read_only(self, kit: Kit) -> None:
        """Claims may be shared through the cache, so ``raw`` cannot be changed."""
        result = kit.verifier.verify(kit.token())
        with pytest.raises(TypeError):
            result.raw["sub"] = "mallory"  # type: ignore[index]

    def test_payload_with_surrounding_whitespace_is_json(self, kit: Kit) -> None:
        """JSON allows whitespace around the value; the fast parser falls back for it."""
        text = "  " + json.dumps(claims()) + "\n"
        assert kit.verifier.verify(signed(kit, text)).sub == "user-1"


class TestShape:
    """Size cap and the three-segment compact form."""

    def test_too_large_is_refused_before_parsing(self, kit: Kit) -> None:
        """An oversized string is refused for its size, whatever it contains."""
        verifier = kit.verifier_with(max_token_bytes=1024)
        with pytest.raises(TokenTooLargeError):
            verifier.verify("!" * 1025)

    def test_at_the_cap_is_parsed(self, kit: Kit) -> None:
        """A token exactly at the cap is not refused for its size."""
        token = kit.token()
        verifier = kit.verifier_with(max_token_bytes=len(token))
        assert verifier.verify(token).sub == "user-1"

    @pytest.mark.parametrize("value", [None, b"a.b.c", 42, ["a", "b", "c"]])
    def test_non_string(self, kit: Kit, value: Any) -> None:
        """Only text is a token."""
        with pytest.raises(MalformedTokenError):
            kit.verifier.verify(value)

    @pytest.mark.parametrize("dots", [0, 1, 3, 4])
    def test_wrong_segment_count(self, kit: Kit, dots: int) -> None:
        """A compact JWS has exactly three segments."""
        parts = kit.token().split(".")
        token = ".".join((parts * 2)[: dots + 1])
        with pytest.raises(MalformedTokenError):
            kit.verifier.verify(token)

    def test_non_ascii(self, kit: Kit) -> None:
        """Non-ASCII characters cannot be base64url."""
        head, body, sig = kit.token().split(".")
        with pytest.raises(MalformedTokenError):
            kit.verifier.verify(f"{head}.{body}é.{sig}")

    @pytest.mark.parametrize("where", [0, 1])
    def test_empty_segment(self, kit: Kit, where: int) -> None:
        """An empty header or payload is malformed."""
        parts = kit.token().split(".")
        parts[where] = ""
        with pytest.raises(MalformedTokenError):
            kit.verifier.verify(".".join(parts))

    @pytest.mark.parametrize(
        "change",
        [
            lambda s: s + "=",
            lambda s: s + " ",
            lambda s: " " + s,
            lambda s: s[:10] + "\n" + s[10:],
            lambda s: s.replace(s[5], "+", 1),
            lambda s: s.replace(s[5], "/", 1),
        ],
        ids=["padding", "trailing-space", "leading-space", "newline", "plus", "slash"],
    )
    @pytest.mark.parametrize("where", [0, 1, 2])
    def test_not_strict_base64url(self, kit: Kit, change: Any, where: int) -> None:
        """Padding, whitespace and the standard alphabet are refused in every segment."""
        parts = kit.token().split(".")
        parts[where] = change(parts[where])
        with pytest.raises(TokenError):
            kit.verifier.verify(".".join(parts))


class TestHeader:
    """The protected header must be a plain JSON object."""

    @pytest.mark.parametrize(
        "raw",
        [
            b"not json",
            b"[1,2]",
            b'"at+jwt"',
            b"null",
            b"\xff\xfe",
            b'{"alg":"EdDSA","alg":"EdDSA"}',
        ],
        ids=["text", "array", "string", "null", "not-utf8", "duplicate"],
    )
    def test_not_an_object(self, kit: Kit, raw: bytes) -> None:
        """Anything but a JSON object without duplicate members is malformed."""
        with pytest.raises(MalformedTokenError):
            kit.verifier.verify(f"{segment(raw)}.{segment(claims())}.AAAA")

    def test_missing_alg(self, kit: Kit) -> None:
        """A header without alg is malformed."""
        with pytest.raises(MalformedTokenError):
            kit.verifier.verify(signed(kit, alg=None))


class TestAlgorithm:
    """alg: registered, allowed, and the key's own."""

    @pytest.mark.parametrize(
        "alg", ["foo", "NONE", "None", "ed25519", "hs256", 256, None, ["EdDSA"]]
    )
    def test_unknown(self, kit: Kit, alg: Any) -> None:
        """Names outside the JWS registry are unknown (names are case-sensitive)."""
        header = (
            header_for(kit.key, alg=alg)
            if alg is not None
            else {**header_for(kit.key), "alg": None}
        )
        with pytest.raises((UnknownAlgorithmError, MalformedTokenError)) as info:
            kit.verifier.verify(forge(header, claims(), kit.key))
        assert info.type is UnknownAlgorithmError

    @pytest.mark.parametrize("alg", ["none", "HS256", "HS512", "RS256", "PS256", "ES384"])
    def test_registered_but_not_allowed(self, kit: Kit, alg: str) -> None:
        """Registered names off the allow-list get the distinct not-allowed error."""
        with pytest.raises(AlgorithmNotAllowedError) as info:
            kit.verifier.verify(signed(kit, alg=alg))
        assert info.type is AlgorithmNotAllowedError

    def test_allowed_but_not_the_keys_algorithm(self) -> None:
        """An ES256 key named by a token that says Ed25519 is a mismatch."""
        es_key = cached_key("ES256")
        kit = make_kit(key=es_key, algorithms=("Ed25519", "ES256"))
        token = forge(header_for(es_key, alg="Ed25519"), claims(), cached_key("Ed25519"))
        with pytest.raises(AlgorithmMismatchError):
            kit.verifier.verify(token)

    def test_eddsa_and_ed25519_are_not_interchangeable(self) -> None:
        """A key published as Ed25519 does not verify a token that says EdDSA."""
        kit = make_kit("Ed25519", algorithms=("Ed25519", "EdDSA"))
        with pytest.raises(AlgorithmMismatchError):
            kit.verifier.verify(signed(kit, alg="EdDSA"))

    @pytest.mark.parametrize(
        "algorithms", [["none"], ["HS256"], ["Ed25519", "HS256"], [], ["PS256"], ["ES384"]]
    )
    def test_allow_list_is_checked_at_construction(self, algorithms: list[str]) -> None:
        """none and HMAC can never be configured; unsupported names neither."""
        with pytest.raises(ConfigurationError):
            TokenVerifier(KeyRing(), issuer=ISSUER, audience=AUDIENCE, algorithms=algorithms)


class TestForbiddenHeaders:
    """Keys never come from the token."""

    @pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c"])
    def test_refused(self, kit: Kit, name: str) -> None:
        """Each key-carrying member is refused, whatever its value."""
        with pytest.raises(ForbiddenHeaderError):
            kit.verifier.verify(signed(kit, **{name: "https://attacker.example/keys"}))


class TestCrit:
    """No critical extension is understood."""

    @pytest.mark.parametrize("crit", [["exp"], ["b64"], [], "b64"])
    def test_refused(self, kit: Kit, crit: Any) -> None:
        """Any crit member is refused."""
        with pytest.raises(UnknownCriticalHeaderError):
            kit.verifier.verify(signed(kit, crit=crit, b64=False))


class TestType:
    """typ tells an access token from other JWTs (RFC 9068 §4)."""

    @pytest.mark.parametrize(
        "typ", ["at+jwt", "AT+JWT", "At+Jwt", "application/at+jwt", "Application/AT+JWT"]
    )
    def test_accepted_spellings(self, kit: Kit, typ: str) -> None:
        """Media types compare case-insensitively, with or without application/."""
        assert kit.verifier.verify(signed(kit, typ=typ)).sub == "user-1"

    @pytest.mark.parametrize(
        "typ", ["JWT", "jwt", "application/jwt", "at+jwt ", "dpop+jwt", 1, ["at+jwt"]]
    )
    def test_refused(self, kit: Kit, typ: Any) -> None:
        """Other types, including the ID-token ``JWT``, are refused."""
        with pytest.raises(InvalidTypeError):
            kit.verifier.verify(signed(kit, typ=typ))

    def test_missing(self, kit: Kit) -> None:
        """A token without typ is not an access token."""
        with pytest.raises(InvalidTypeError):
            kit.verifier.verify(signed(kit, typ=None))

    def test_custom_type(self, kit: Kit) -> None:
        """A verifier for another JWT profile names its own typ."""
        verifier = kit.verifier_with(typ="application/ws-ticket+jwt")
        assert verifier.verify(signed(kit, typ="ws-ticket+jwt")).sub == "user-1"
        with pytest.raises(InvalidTypeError):
            verifier.verify(kit.token())


class TestKeyId:
    """kid must name a key of the ring."""

    @pytest.mark.parametrize(
        "kid",
        ["../../../../etc/passwd", "' OR '1'='1", "k" * 10_000, "", "\x00", "unknown-kid"],
        ids=["traversal", "sql", "long", "empty", "nul", "unknown"],
    )
    def test_odd_values_are_unknown(self, kid: str) -> None:
        """Odd strings are just unknown key ids."""
        kit = make_kit(leeway=0)
        verifier = kit.verifier_with(max_token_bytes=65536)
        with pytest.raises(UnknownKeyError):
            verifier.verify(signed(kit, kid=kid))

    @pytest.mark.parametrize("kid", [None, 7, ["a"], {"kid": "x"}, True])
    def test_non_strings_are_unknown(self, kit: Kit, kid: Any) -> None:
        """A missing or non-string kid is an unknown key, and asks for no refresh."""
        header = (
            {**header_for(kit.key), "kid": kid}
            if kid is not None
            else header_for(kit.key, kid=None)
        )
        with pytest.raises(UnknownKeyError) as info:
            kit.verifier.verify(forge(header, claims(), kit.key))
        assert info.value.kid is None

    def test_plausible_unknown_kid_is_offered_for_refresh(self, kit: Kit) -> None:
        """A well-formed unknown kid is carried on the error (not in its public members)."""
        with pytest.raises(UnknownKeyError) as info:
            kit.verifier.verify(signed(kit, kid="rotated-key-2"))
        assert info.value.kid == "rotated-key-2"
        assert "rotated-key-2" not in str(info.value)
        assert info.value.extra == {}


class TestSignature:
    """The signature is checked with the ring's key."""

    @pytest.mark.parametrize("alg", ALGORITHMS)
    def test_wrong_signature(self, alg: str) -> None:
        """A signature by another key of the same type fails."""
        kit = make_kit(alg)
        token = forge(header_for(kit.key), claims(), cached_key(alg, 1))
        with pytest.raises(InvalidSignatureError):
            kit.verifier.verify(token)

    def test_empty_signature(self, kit: Kit) -> None:
        """A stripped signature fails."""
        head, body, _ = kit.token().split(".")
        with pytest.raises(InvalidSignatureError):
            kit.verifier.verify(f"{head}.{body}.")

    @pytest.mark.parametrize("length", [63, 65, 32])
    def test_es256_signature_of_wrong_length(self, length: int) -> None:
        """ES256 signatures are exactly 64 bytes (R || S)."""
        kit = make_kit("ES256")
        token = forge(
            header_for(kit.key),
            claims(),
            sign=lambda data: kit.key.sign(data)[:length].ljust(length, b"\1"),
        )
        with pytest.raises(InvalidSignatureError):
            kit.verifier.verify(token)

    def test_es256_der_signature_is_refused(self) -> None:
        """A DER-encoded ECDSA signature is not a JWS signature."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        kit = make_kit("ES256")
        private = kit.key.private_key
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        token = forge(
            header_for(kit.key),
            claims(),
            sign=lambda data: private.sign(data, ec.ECDSA(hashes.SHA256())),
        )
        with pytest.raises(InvalidSignatureError):
            kit.verifier.verify(token)


class TestPayload:
    """A verified payload must still be a JSON object of finite numbers."""

    @pytest.mark.parametrize(
        "raw",
        [b"[]", b"not json", b'{"exp": NaN}', b'{"exp": Infinity}', b'{"exp": 1e400}', b"\xff"],
        ids=["array", "text", "nan", "infinity", "overflow", "not-utf8"],
    )
    def test_refused(self, kit: Kit, raw: bytes) -> None:
        """Even correctly signed, such payloads are malformed."""
        with pytest.raises(MalformedTokenError):
            kit.verifier.verify(forge(header_for(kit.key), raw, kit.key))


class TestTimes:
    """exp, nbf and iat, with leeway."""

    def test_expired(self, kit: Kit) -> None:
        """At exp the token is refused (RFC 7519: now must be before exp)."""
        token = kit.token()
        kit.clock.advance(600)
        with pytest.raises(TokenExpiredError):
            kit.verifier.verify(token)

    def test_leeway_extends_exp(self) -> None:
        """Within the leeway after exp the token is accepted; after it, refused."""
        kit = make_kit(leeway=10)
        token = kit.token()
        kit.clock.advance(609)
        assert kit.verifier.verify(token).sub == "user-1"
        kit.clock.advance(1)
        with pytest.raises(TokenExpiredError):
            kit.verifier.verify(token)

    @pytest.mark.parametrize("exp", [None, "1800000000", True, [1], {"v": 1}])
    def test_exp_missing_or_not_a_number(self, kit: Kit, exp: Any) -> None:
        """exp is required and numeric; booleans are not numbers."""
        error = MissingClaimError if exp is None else InvalidClaimError
        with pytest.raises(error):
            kit.verifier.verify(signed(kit, claims(exp=exp)))

    def test_float_times_are_accepted(self, kit: Kit) -> None:
        """NumericDate may carry fractions."""
        token = signed(kit, claims(exp=NOW + 60.5, iat=NOW - 0.25, nbf=NOW - 0.25))
        assert kit.verifier.verify(token).exp == NOW + 60.5

    def test_nbf_in_the_future(self, kit: Kit) -> None:
        """A token is refused before nbf."""
        with pytest.raises(TokenNotYetValidError):
            kit.verifier.verify(signed(kit, claims(nbf=int(NOW) + 5)))

    def test_nbf_within_leeway(self) -> None:
        """nbf up to the leeway ahead is tolerated (clock skew)."""
        kit = make_kit(leeway=10)
        assert kit.verifier.verify(signed(kit, claims(nbf=int(NOW) + 10))).sub == "user-1"
        with pytest.raises(TokenNotYetValidError):
            kit.verifier.verify(signed(kit, claims(nbf=int(NOW) + 11)))

    def test_nbf_is_optional_but_numeric(self, kit: Kit) -> None:
        """Without nbf the token verifies; a string nbf is invalid."""
        assert kit.verifier.verify(signed(kit, claims(nbf=None))).sub == "user-1"
        with pytest.raises(InvalidClaimError):
            kit.verifier.verify(signed(kit, claims(nbf="now")))

    def test_iat_in_the_future(self) -> None:
        """A token issued beyond the leeway in the future is refused."""
        kit = make_kit(leeway=5)
        assert kit.verifier.verify(signed(kit, claims(iat=int(NOW) + 5))).sub == "user-1"
        with pytest.raises(TokenNotYetValidError):
            kit.verifier.verify(signed(kit, claims(iat=int(NOW) + 6)))

    @pytest.mark.parametrize("iat", [None, "x", False])
    def test_iat_required(self, kit: Kit, iat: Any) -> None:
        """RFC 9068 requires iat."""
        error = MissingClaimError if iat is None else InvalidClaimError
        with pytest.raises(error):
            kit.verifier.verify(signed(kit, claims(iat=iat)))


class TestIssuerAndAudience:
    """iss exact, aud containing this service."""

    @pytest.mark.parametrize(
        "iss", ["https://evil.example", ISSUER + "/", ISSUER.upper(), 1, [ISSUER]]
    )
    def test_wrong_issuer(self, kit: Kit, iss: Any) -> None:
        """Only the exact issuer string is trusted."""
        with pytest.raises(InvalidIssuerError):
            kit.verifier.verify(signed(kit, claims(iss=iss)))

    def test_missing_issuer(self, kit: Kit) -> None:
        """iss is required."""
        with pytest.raises(MissingClaimError):
            kit.verifier.verify(signed(kit, claims(iss=None)))

    @pytest.mark.parametrize("aud", [AUDIENCE, [AUDIENCE], ["chat", AUDIENCE]])
    def test_audience_accepted(self, kit: Kit, aud: Any) -> None:
        """A string, or a list that contains this service."""
        assert AUDIENCE in kit.verifier.verify(signed(kit, claims(aud=aud))).aud

    @pytest.mark.parametrize("aud", ["chat", ["chat"], [], AUDIENCE.upper()])
    def test_audience_refused(self, kit: Kit, aud: Any) -> None:
        """A token for another service is refused."""
        with pytest.raises(InvalidAudienceError):
            kit.verifier.verify(signed(kit, claims(aud=aud)))

    @pytest.mark.parametrize("aud", [1, [AUDIENCE, 1], {"aud": AUDIENCE}])
    def test_audience_malformed(self, kit: Kit, aud: Any) -> None:
        """aud of another type is invalid."""
        with pytest.raises(InvalidClaimError):
            kit.verifier.verify(signed(kit, claims(aud=aud)))

    def test_audience_missing(self, kit: Kit) -> None:
        """aud is required."""
        with pytest.raises(MissingClaimError):
            kit.verifier.verify(signed(kit, claims(aud=None)))


class TestIdentityClaims:
    """sub, jti, client_id required; scope, roles, sid typed."""

    @pytest.mark.parametrize("name", ["sub", "jti", "client_id"])
    def test_required(self, kit: Kit, name: str) -> None:
        """Missing → MissingClaimError; empty or not a string → InvalidClaimError."""
        with pytest.raises(MissingClaimError):
            kit.verifier.verify(signed(kit, claims(**{name: None})))
        for bad in ("", 5, ["x"]):
            with pytest.raises(InvalidClaimError):
                kit.verifier.verify(signed(kit, claims(**{name: bad})))

    def test_scope_optional(self, kit: Kit) -> None:
        """No scope claim means no scopes."""
        assert kit.verifier.verify(signed(kit, claims(scope=None))).scope == frozenset()

    @pytest.mark.parametrize("scope", [["orders:read"], 1, {"a": 1}])
    def test_scope_must_be_a_string(self, kit: Kit, scope: Any) -> None:
        """RFC 8693 §4.2: scope is one space-separated string."""
        with pytest.raises(InvalidClaimError):
            kit.verifier.verify(signed(kit, claims(scope=scope)))

    @pytest.mark.parametrize("roles", ["admin", [1], [["admin"]], {"admin": True}])
    def test_roles_must_be_a_list_of_strings(self, kit: Kit, roles: Any) -> None:
        """roles is a JSON array of strings."""
        with pytest.raises(InvalidClaimError):
            kit.verifier.verify(signed(kit, claims(roles=roles)))

    def test_roles_optional(self, kit: Kit) -> None:
        """A client-credentials token may carry no roles."""
        assert kit.verifier.verify(signed(kit, claims(roles=None))).roles == ()

    @pytest.mark.parametrize("sid", ["", 3, ["fam"]])
    def test_sid_must_be_a_string(self, kit: Kit, sid: Any) -> None:
        """sid, when present, is a non-empty string."""
        with pytest.raises(InvalidClaimError):
            kit.verifier.verify(signed(kit, claims(sid=sid)))


class TestConfiguration:
    """Bad verifier settings fail at construction."""

    @pytest.mark.parametrize(
        "changes",
        [
            {"issuer": ""},
            {"audience": ""},
            {"leeway": -1},
            {"leeway": 301},
            {"max_token_bytes": 10},
            {"cache_size": -1},
            {"typ": ""},
            {"typ": "application/"},
        ],
    )
    def test_refused(self, kit: Kit, changes: dict[str, Any]) -> None:
        """Each invalid option raises ConfigurationError."""
        with pytest.raises(ConfigurationError):
            kit.verifier_with(**changes)

    def test_provider_must_have_verification_key(self, kit: Kit) -> None:
        """An object without verification_key is not a ring provider."""
        with pytest.raises(ConfigurationError):
            kit.verifier_with(ring_provider=object())

    def test_repr_names_no_keys(self, kit: Kit) -> None:
        """repr shows the policy, not key material."""
        text = repr(kit.verifier)
        assert ISSUER in text
        assert kit.key.kid not in text


class TestMessages:
    """Errors say what is wrong without echoing the token."""

    def test_no_token_material_in_errors(self, kit: Kit) -> None:
        """Neither the token, nor its segments, nor its claims appear in any message."""
        token = kit.token("secret-subject-42")
        head, body, sig = token.split(".")
        kit.clock.advance(10_000)
        for candidate in (token, f"{head}.{body}.", f"{head}.{body}", token + "x"):
            with pytest.raises(TokenError) as info:
                kit.verifier.verify(candidate)
            message = str(info.value) + repr(info.value)
            for fragment in (head, body, sig, "secret-subject-42"):
                assert fragment not in message


class TestAsync:
    """verify_async without a refreshable provider behaves like verify."""

    async def test_unknown_kid_on_plain_ring(self, kit: Kit) -> None:
        """A KeyRing cannot learn keys: the unknown key error propagates."""
        with pytest.raises(UnknownKeyError):
            await kit.verifier.verify_async(signed(kit, kid="another"))

    async def test_valid(self, kit: Kit) -> None:
        """A valid token verifies through the async entry point."""
        assert (await kit.verifier.verify_async(kit.token())).sub == "user-1"


class TestInternalTables:
    """The bounded header and scope tables never change a result."""

    def test_many_distinct_headers(self, kit: Kit) -> None:
        """More distinct valid headers than the table holds: each token still checks out."""
        for n in range(150):
            token = signed(kit, claims(sub=f"user-{n}"), x=n)
            assert kit.verifier.verify(token).sub == f"user-{n}"
        with pytest.raises(InvalidTypeError):
            kit.verifier.verify(signed(kit, typ="JWT", x=1))
        assert len(kit.verifier._headers) <= 64

    def test_many_distinct_scopes(self, kit: Kit) -> None:
        """More distinct scope strings than the table holds: each token gets its own set."""
        for n in range(300):
            result = kit.verifier.verify(signed(kit, claims(scope=f"a:{n} b:{n}")))
            assert result.scope == frozenset({f"a:{n}", f"b:{n}"})
        assert len(kit.verifier._scopes) <= 256
