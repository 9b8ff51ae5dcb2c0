"""Signing keys: generation, JWK export and import, PKCS#8."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from barbacana.tokens import (
    InvalidKeyError,
    NoSigningKeyError,
    SigningKey,
    generate_signing_key,
    jwk_thumbprint,
    key_from_jwk,
)
from barbacana.tokens._b64 import b64url_encode

from .helpers import ALGORITHMS, NOW, cached_key

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


class TestGenerate:
    """generate_signing_key."""

    @pytest.mark.parametrize(
        ("alg", "kind"),
        [
            ("Ed25519", ed25519.Ed25519PublicKey),
            ("ES256", ec.EllipticCurvePublicKey),
            ("RS256", rsa.RSAPublicKey),
        ],
    )
    def test_key_types(self, alg: str, kind: type) -> None:
        """Each algorithm gets its key type; the kid is the RFC 7638 thumbprint."""
        key = cached_key(alg)
        assert isinstance(key.public_key, kind)
        assert key.kid == jwk_thumbprint(key.public_jwk())
        assert key.alg == alg

    def test_rsa_is_3072_bits(self) -> None:
        """New RSA keys have 3072 bits (128-bit security)."""
        public = cached_key("RS256").public_key
        assert isinstance(public, rsa.RSAPublicKey)
        assert public.key_size == 3072

    def test_es256_is_p256(self) -> None:
        """ES256 keys are on P-256."""
        public = cached_key("ES256").public_key
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert isinstance(public.curve, ec.SECP256R1)

    def test_defaults_to_next_state(self) -> None:
        """A new key waits as next: published, not signing."""
        key = generate_signing_key("Ed25519", now=NOW)
        assert (key.state, key.created_at, key.activated_at) == ("next", NOW, None)
        assert not key.can_sign
        assert key.can_verify

    def test_ed25519_alg_name(self) -> None:
        """Ed25519 keys are published as Ed25519 (RFC 9864), or EdDSA when asked."""
        assert generate_signing_key("Ed25519", now=NOW).alg == "Ed25519"
        assert generate_signing_key("Ed25519", now=NOW, ed25519_alg_name="EdDSA").alg == "EdDSA"
        assert generate_signing_key("EdDSA", now=NOW).alg == "EdDSA"

    @pytest.mark.parametrize("alg", ["HS256", "none", "PS256", "ES384", ""])
    def test_unsupported(self, alg: str) -> None:
        """Only Ed25519, ES256 and RS256 keys are made."""
        with pytest.raises(InvalidKeyError):
            generate_signing_key(alg, now=NOW)

    def test_kids_are_distinct(self) -> None:
        """Two new keys never share a kid."""
        assert (
            generate_signing_key("Ed25519", now=NOW).kid
            != generate_signing_key("Ed25519", now=NOW).kid
        )


class TestSignAndVerify:
    """SigningKey.sign and verify."""

    @pytest.mark.parametrize("alg", ALGORITHMS)
    def test_round_trip(self, alg: str) -> None:
        """A signature verifies for its input only."""
        key = cached_key(alg)
        signature = key.sign(b"header.payload")
        assert key.verify(signature, b"header.payload")
        assert not key.verify(signature, b"header.payloaD")

    def test_es256_signature_is_raw_r_s(self) -> None:
        """RFC 7518 §3.4: 64 bytes, not DER."""
        assert len(cached_key("ES256").sign(b"x")) == 64

    def test_public_only_key_cannot_sign(self) -> None:
        """Without the private part, signing is a configuration error."""
        with pytest.raises(NoSigningKeyError):
            cached_key("Ed25519").public_only().sign(b"x")


class TestRepr:
    """Key material never shows in repr."""

    @pytest.mark.parametrize("alg", ALGORITHMS)
    def test_repr(self, alg: str) -> None:
        """repr names kid, alg and state only."""
        key = cached_key(alg)
        text = repr(key)
        assert key.kid in text
        assert alg in text
        assert "private" not in text.lower()
        der = key.private_pkcs8()
        assert b64url_encode(der)[:20] not in text
        for value in key.public_jwk().values():
            if len(value) > 20:
                assert value not in text or value == key.kid


class TestConstruction:
    """SigningKey checks what it is given."""

    def test_private_key_must_match(self) -> None:
        """A private key that is not the public key's other half is refused."""
        one, two = cached_key("Ed25519", 0), cached_key("Ed25519", 1)
        with pytest.raises(InvalidKeyError, match="does not belong"):
            SigningKey(
                kid="k", alg="Ed25519", public_key=one.public_key, private_key=two.private_key
            )

    @pytest.mark.parametrize(
        ("alg", "other"), [("ES256", "Ed25519"), ("RS256", "ES256"), ("Ed25519", "RS256")]
    )
    def test_key_type_must_fit_alg(self, alg: str, other: str) -> None:
        """The key type is the algorithm's (RFC 8725 §3.1)."""
        with pytest.raises(InvalidKeyError):
            SigningKey(kid="k", alg=alg, public_key=cached_key(other).public_key)

    def test_p384_is_not_es256(self) -> None:
        """ES256 needs P-256."""
        public = ec.generate_private_key(ec.SECP384R1()).public_key()
        with pytest.raises(InvalidKeyError, match="P-256"):
            SigningKey(kid="k", alg="ES256", public_key=public)

    @pytest.mark.parametrize("kid", ["", "x" * 257, 5])
    def test_kid_shape(self, kid: Any) -> None:
        """kid is a string of 1 to 256 characters."""
        with pytest.raises(InvalidKeyError):
            SigningKey(kid=kid, alg="Ed25519", public_key=cached_key("Ed25519").public_key)

    def test_state(self) -> None:
        """Only the four lifecycle states exist."""
        with pytest.raises(InvalidKeyError):
            SigningKey(
                kid="k", alg="Ed25519", public_key=cached_key("Ed25519").public_key, state="old"
            )  # type: ignore[arg-type]


class TestPKCS8:
    """Private keys round-trip through PKCS#8 DER."""

    @pytest.mark.parametrize("alg", ALGORITHMS)
    def test_round_trip(self, alg: str) -> None:
        """The reloaded key signs what the original verifies, with the same kid and times."""
        key = cached_key(alg).with_state("retiring", retire_at=NOW + 5)
        loaded = SigningKey.from_private_pkcs8(
            key.private_pkcs8(),
            alg=key.alg,
            state=key.state,
            created_at=key.created_at,
            activated_at=key.activated_at,
            retire_at=key.retire_at,
        )
        assert loaded == key
        assert key.verify(loaded.sign(b"data"), b"data")

    def test_explicit_kid_is_kept(self) -> None:
        """A stored kid is not recomputed."""
        key = cached_key("Ed25519")
        assert (
            SigningKey.from_private_pkcs8(key.private_pkcs8(), alg="Ed25519", kid="stored").kid
            == "stored"
        )

    def test_garbage(self) -> None:
        """Bytes that are not PKCS#8 are refused."""
        with pytest.raises(InvalidKeyError):
            SigningKey.from_private_pkcs8(b"\x30\x03garbage", alg="Ed25519")

    def test_wrong_alg_for_stored_key(self) -> None:
        """A stored Ed25519 key cannot be loaded as RS256."""
        with pytest.raises(InvalidKeyError):
            SigningKey.from_private_pkcs8(cached_key("Ed25519").private_pkcs8(), alg="RS256")

    def test_public_only_has_nothing_to_serialise(self) -> None:
        """A verification-only key has no PKCS#8 form."""
        with pytest.raises(InvalidKeyError):
            cached_key("ES256").public_only().private_pkcs8()


class TestPublicJWK:
    """Export never carries private members."""

    @pytest.mark.parametrize("alg", ALGORITHMS)
    def test_members(self, alg: str) -> None:
        """use sig, alg, kid and the public members only."""
        jwk = cached_key(alg).public_jwk()
        assert jwk["use"] == "sig"
        assert jwk["alg"] == alg
        assert jwk["kid"] == cached_key(alg).kid
        assert not PRIVATE_MEMBERS & set(jwk)

    @pytest.mark.parametrize("alg", ALGORITHMS)
    def test_import_round_trip(self, alg: str) -> None:
        """An exported JWK imports as a verification-only key for the original's signatures."""
        key = cached_key(alg)
        imported = key_from_jwk(key.public_jwk())
        assert imported.kid == key.kid
        assert imported.alg == alg
        assert imported.private_key is None
        assert imported.verify(key.sign(b"m"), b"m")

    def test_es256_coordinates_are_32_bytes(self) -> None:
        """EC coordinates are padded to 32 bytes (RFC 7518 §6.2.1.2)."""
        jwk = cached_key("ES256").public_jwk()
        assert len(jwk["x"]) == len(jwk["y"]) == 43


def _jwk(of: str = "Ed25519", **changes: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = copy.deepcopy(cached_key(of).public_jwk())
    jwk.update(changes)
    return {name: value for name, value in jwk.items() if value is not None}


class TestImportRefusals:
    """key_from_jwk refuses anything unusual."""

    @pytest.mark.parametrize("member", sorted(PRIVATE_MEMBERS))
    def test_private_members(self, member: str) -> None:
        """Any private member is refused, whatever its value."""
        with pytest.raises(InvalidKeyError, match="private"):
            key_from_jwk(_jwk(**{member: "AAAA"}))

    @pytest.mark.parametrize(
        "changes",
        [
            {"kty": "oct"},
            {"kty": "OKP", "crv": "X25519"},
            {"kty": "OKP", "crv": "Ed448"},
            {"kty": None},
        ],
    )
    def test_unknown_kty_or_crv(self, changes: dict[str, Any]) -> None:
        """Only OKP/Ed25519, EC/P-256 and RSA are known."""
        with pytest.raises(InvalidKeyError):
            key_from_jwk(_jwk(**changes))

    def test_p384(self) -> None:
        """EC keys on other curves are refused."""
        with pytest.raises(InvalidKeyError, match="P-256"):
            key_from_jwk(_jwk("ES256", crv="P-384"))

    @pytest.mark.parametrize(
        ("alg", "claimed"),
        [
            ("Ed25519", "ES256"),
            ("Ed25519", "RS256"),
            ("ES256", "RS256"),
            ("ES256", "Ed25519"),
            ("RS256", "ES256"),
            ("RS256", "EdDSA"),
        ],
    )
    def test_alg_must_fit_kty(self, alg: str, claimed: str) -> None:
        """A JWK's alg must be one its key type can do."""
        with pytest.raises(InvalidKeyError):
            key_from_jwk(_jwk(alg, alg=claimed))

    @pytest.mark.parametrize("alg", [None, "HS256", "none", "PS256", 7])
    def test_alg_required_and_supported(self, alg: Any) -> None:
        """A JWK must name one supported algorithm."""
        with pytest.raises(InvalidKeyError):
            key_from_jwk(_jwk(alg=alg))

    def test_use_enc(self) -> None:
        """Encryption keys are not signature keys."""
        with pytest.raises(InvalidKeyError):
            key_from_jwk(_jwk(use="enc"))

    def test_key_ops_without_verify(self) -> None:
        """key_ops, when given, must allow verify."""
        with pytest.raises(InvalidKeyError):
            key_from_jwk(_jwk(key_ops=["sign"]))
        assert key_from_jwk(_jwk(key_ops=["verify"])).alg == "Ed25519"

    def test_point_off_curve(self) -> None:
        """An EC point not on P-256 is refused (invalid-curve attacks)."""
        with pytest.raises(InvalidKeyError):
            key_from_jwk(_jwk("ES256", y=b64url_encode((1).to_bytes(32, "big"))))

    def test_small_rsa(self) -> None:
        """RSA keys under 2048 bits are refused."""
        small = rsa.generate_private_key(65537, 1024).public_key().public_numbers()
        jwk = {
            "kty": "RSA",
            "alg": "RS256",
            "n": b64url_encode(small.n.to_bytes(128, "big")),
            "e": "AQAB",
        }
        with pytest.raises(InvalidKeyError):
            key_from_jwk(jwk)

    @pytest.mark.parametrize("x", ["", "not base64!", "AAAA=", 5, "AA"])
    def test_bad_members(self, x: Any) -> None:
        """Members must be canonical base64url of the right length."""
        with pytest.raises(InvalidKeyError):
            key_from_jwk(_jwk(x=x))

    @pytest.mark.parametrize("kid", ["", 5, "k" * 300])
    def test_bad_kid(self, kid: Any) -> None:
        """A JWK kid must be a reasonable string."""
        with pytest.raises(InvalidKeyError):
            key_from_jwk(_jwk(kid=kid))

    @pytest.mark.parametrize("value", [[], "jwk", None, 5])
    def test_not_an_object(self, value: Any) -> None:
        """A JWK is a JSON object."""
        with pytest.raises(InvalidKeyError):
            key_from_jwk(value)
