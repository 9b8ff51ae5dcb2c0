"""RFC 8037 Appendix A (Ed25519 JWS) and RFC 7638 §3.1 (JWK thumbprint) vectors."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from barbacana.tokens import InvalidKeyError, SigningKey, jwk_thumbprint, key_from_jwk
from barbacana.tokens._b64 import b64url_decode

# RFC 8037 Appendix A.1 (private key), A.2 (public key), A.3 (thumbprint), A.4 (JWS).
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
RFC8037_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)

# RFC 7638 §3.1: an RSA key and its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
    "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
    "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWh"
    "AI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def _rfc8037_key(alg: str = "EdDSA") -> SigningKey:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_D))
    return SigningKey(
        kid=RFC8037_THUMBPRINT, alg=alg, public_key=private.public_key(), private_key=private
    )


class TestRFC8037:
    """Ed25519 in JOSE: key encoding, thumbprint and a deterministic signature."""

    def test_public_key_encoding_matches_a2(self) -> None:
        """The public JWK Barbacana exports carries the x of Appendix A.2."""
        jwk = _rfc8037_key().public_jwk()
        assert (jwk["kty"], jwk["crv"], jwk["x"]) == ("OKP", "Ed25519", RFC8037_X)
        assert "d" not in jwk

    def test_thumbprint_matches_a3(self) -> None:
        """The RFC 7638 thumbprint of the A.2 key is the one A.3 prints."""
        assert (
            jwk_thumbprint({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}) == RFC8037_THUMBPRINT
        )

    def test_kid_of_imported_key_is_the_thumbprint(self) -> None:
        """A JWK without kid gets its thumbprint as kid."""
        key = key_from_jwk({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "alg": "EdDSA"})
        assert key.kid == RFC8037_THUMBPRINT

    def test_signature_matches_a4(self) -> None:
        """Ed25519 is deterministic: signing the A.4 input gives the A.4 signature byte for byte."""
        signing_input, _, signature = RFC8037_JWS.rpartition(".")
        assert _rfc8037_key().sign(signing_input.encode()) == b64url_decode(signature)

    def test_a4_signature_verifies_with_the_public_key(self) -> None:
        """The A.4 JWS verifies with the imported public key, and not once altered."""
        key = key_from_jwk({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "alg": "EdDSA"})
        signing_input, _, signature = RFC8037_JWS.rpartition(".")
        assert key.verify(b64url_decode(signature), signing_input.encode())
        assert not key.verify(b64url_decode(signature), signing_input.encode() + b"x")

    def test_private_jwk_of_a1_is_refused(self) -> None:
        """The A.1 JWK holds ``d``; a key set must never accept it."""
        with pytest.raises(InvalidKeyError, match="private"):
            key_from_jwk(
                {"kty": "OKP", "crv": "Ed25519", "d": RFC8037_D, "x": RFC8037_X, "alg": "EdDSA"}
            )


class TestRFC7638:
    """JWK thumbprints (the kid of every Barbacana key)."""

    def test_rsa_example(self) -> None:
        """§3.1: the example RSA key's thumbprint, whatever other members the JWK has."""
        jwk = {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
        assert jwk_thumbprint(jwk) == RFC7638_THUMBPRINT

    def test_imported_key_recomputes_the_same_thumbprint(self) -> None:
        """An imported RSA key without kid gets the §3.1 thumbprint as kid."""
        key = key_from_jwk({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256"})
        assert key.kid == RFC7638_THUMBPRINT
        assert key.public_jwk()["n"] == RFC7638_N

    def test_unknown_key_type_has_no_thumbprint(self) -> None:
        """Only OKP, EC and RSA members are defined here."""
        with pytest.raises(InvalidKeyError):
            jwk_thumbprint({"kty": "oct", "k": "c2VjcmV0"})
