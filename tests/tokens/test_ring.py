"""KeyRing: signing key, verification keys, JWKS publish and import."""

from __future__ import annotations

import json
from typing import Any

import pytest

from barbacana.tokens import InvalidKeyError, KeyRing, NoSigningKeyError, generate_signing_key

from .helpers import NOW, cached_key


def lifecycle_ring() -> KeyRing:
    """One key in each state."""
    return KeyRing(
        [
            cached_key("Ed25519", 10).with_state("retired"),
            cached_key("Ed25519", 11).with_state("retiring", retire_at=NOW + 60),
            cached_key("Ed25519", 12),
            cached_key("ES256", 13).with_state("next"),
        ]
    )


class TestSigningKey:
    """Only the active key with a private part signs."""

    def test_active_key_signs(self) -> None:
        """signing_key() is the active key."""
        assert lifecycle_ring().signing_key() is cached_key("Ed25519", 12)

    @pytest.mark.parametrize(
        "keys",
        [
            [],
            [generate_signing_key("Ed25519", now=NOW)],
            [cached_key("Ed25519").public_only()],
            [cached_key("Ed25519").with_state("retiring")],
        ],
        ids=["empty", "only-next", "public-only", "only-retiring"],
    )
    def test_no_signing_key(self, keys: list[Any]) -> None:
        """Next, retiring and public-only keys never sign."""
        with pytest.raises(NoSigningKeyError):
            KeyRing(keys).signing_key()


class TestVerificationKey:
    """next, active and retiring keys verify; retired never."""

    @pytest.mark.parametrize(
        ("index", "alg", "found"),
        [(10, "Ed25519", False), (11, "Ed25519", True), (12, "Ed25519", True), (13, "ES256", True)],
    )
    def test_by_state(self, index: int, alg: str, found: bool) -> None:
        """Retired keys are absent from verification."""
        key = lifecycle_ring().verification_key(cached_key(alg, index).kid)
        assert (key is not None) is found

    def test_unknown(self) -> None:
        """An unknown kid gives None."""
        assert lifecycle_ring().verification_key("nope") is None


class TestJWKS:
    """The published key set."""

    def test_publishes_next_active_retiring(self) -> None:
        """The JWKS carries next, active and retiring public keys, active first."""
        published = lifecycle_ring().jwks()["keys"]
        assert [jwk["kid"] for jwk in published] == [
            cached_key("Ed25519", 12).kid,
            cached_key("ES256", 13).kid,
            cached_key("Ed25519", 11).kid,
        ]

    def test_no_private_members(self) -> None:
        """Nothing private is ever published."""
        text = json.dumps(lifecycle_ring().jwks())
        for member in ('"d"', '"p"', '"q"', '"dp"', '"dq"', '"qi"'):
            assert member not in text

    def test_round_trip(self) -> None:
        """A ring imported from the JWKS verifies exactly the published keys."""
        ring = lifecycle_ring()
        imported = KeyRing.from_jwks(json.dumps(ring.jwks()))
        assert {key.kid for key in imported.keys} == {jwk["kid"] for jwk in ring.jwks()["keys"]}
        assert all(key.private_key is None for key in imported.keys)
        with pytest.raises(NoSigningKeyError):
            imported.signing_key()


class TestReplace:
    """Atomic swap."""

    def test_replace(self) -> None:
        """After replace, the new keys are used."""
        ring = KeyRing([cached_key("Ed25519", 0)])
        ring.replace([cached_key("Ed25519", 1)])
        assert ring.signing_key() is cached_key("Ed25519", 1)
        assert ring.verification_key(cached_key("Ed25519", 0).kid) is None

    def test_invalid_replacement_keeps_the_ring(self) -> None:
        """A rejected key set leaves the previous one in place."""
        ring = KeyRing([cached_key("Ed25519", 0)])
        with pytest.raises(InvalidKeyError):
            ring.replace([cached_key("Ed25519", 1), cached_key("Ed25519", 1)])
        assert ring.signing_key() is cached_key("Ed25519", 0)

    def test_two_signing_keys(self) -> None:
        """A ring cannot have two active signing keys."""
        with pytest.raises(InvalidKeyError, match="at most one"):
            KeyRing([cached_key("Ed25519", 0), cached_key("Ed25519", 1)])

    def test_only_signing_keys(self) -> None:
        """A ring holds SigningKey objects."""
        with pytest.raises(InvalidKeyError):
            KeyRing(["not a key"])  # type: ignore[list-item]


class TestFromJWKS:
    """Importing a published key set."""

    def test_oversized_document(self) -> None:
        """Documents over the byte cap are refused before parsing."""
        with pytest.raises(InvalidKeyError, match="larger"):
            KeyRing.from_jwks(" " * 70_000)
        with pytest.raises(InvalidKeyError, match="larger"):
            KeyRing.from_jwks(json.dumps(lifecycle_ring().jwks()), max_bytes=100)

    def test_too_many_keys(self) -> None:
        """At most max_keys keys."""
        doc = {"keys": [cached_key("Ed25519").public_jwk()] * 40}
        with pytest.raises(InvalidKeyError, match="more than"):
            KeyRing.from_jwks(doc)

    @pytest.mark.parametrize("doc", ["[]", "{}", '{"keys": {}}', "nope", b"\xff", '{"keys": [1]}'])
    def test_malformed(self, doc: str | bytes) -> None:
        """Only an object with a keys array of JWKs is a key set."""
        with pytest.raises(InvalidKeyError):
            KeyRing.from_jwks(doc)

    def test_one_private_key_rejects_the_set(self) -> None:
        """A key set that leaks a private member is rejected as a whole."""
        doc = lifecycle_ring().jwks()
        doc["keys"][1]["d"] = "AAAA"
        with pytest.raises(InvalidKeyError, match="private"):
            KeyRing.from_jwks(doc)

    def test_duplicate_kids(self) -> None:
        """Two keys with one kid are ambiguous."""
        jwk = cached_key("Ed25519").public_jwk()
        with pytest.raises(InvalidKeyError, match="share"):
            KeyRing.from_jwks({"keys": [jwk, dict(jwk)]})
