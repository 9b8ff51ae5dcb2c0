"""rotate(): one lifecycle step at a time (DESIGN invariant 4)."""

from __future__ import annotations

import pytest

from barbacana.errors import ConfigurationError
from barbacana.tokens import (
    InvalidKeyError,
    KeyRing,
    TokenIssuer,
    TokenVerifier,
    UnknownKeyError,
    generate_signing_key,
    next_to_promote,
    rotate,
)

from .helpers import AUDIENCE, ISSUER, NOW, FakeClock, cached_key


def states(keys: list) -> list[str]:  # type: ignore[type-arg]
    return [key.state for key in keys]


class TestSteps:
    """next → active → retiring → retired."""

    def test_fresh_ring_takes_two_steps(self) -> None:
        """The first step creates a next key; the second makes it active."""
        first = rotate([], now=NOW, alg="ES256", retire_after=900)
        assert states(first) == ["next"]
        assert first[0].alg == "ES256"
        assert first[0].created_at == NOW
        second = rotate(first, now=NOW + 1, alg="ES256", retire_after=900)
        assert states(second) == ["active"]
        assert second[0].kid == first[0].kid
        assert second[0].activated_at == NOW + 1
        assert KeyRing(second).signing_key().kid == first[0].kid

    def test_full_cycle(self) -> None:
        """Promotion retires the active key for retire_after seconds, then retires it."""
        keys = rotate(
            rotate([], now=NOW, alg="Ed25519", retire_after=900),
            now=NOW,
            alg="Ed25519",
            retire_after=900,
        )
        keys = rotate(keys, now=NOW + 100, alg="Ed25519", retire_after=900)
        assert states(keys) == ["active", "next"]
        keys = rotate(keys, now=NOW + 200, alg="Ed25519", retire_after=900)
        assert states(keys) == ["retiring", "active"]
        assert keys[0].retire_at == NOW + 1100
        keys = rotate(keys, now=NOW + 1099, alg="Ed25519", retire_after=900)
        assert states(keys) == ["retiring", "active", "next"]
        keys = rotate(keys, now=NOW + 1100, alg="Ed25519", retire_after=900)
        assert states(keys) == ["retired", "retiring", "active"]

    def test_pure(self) -> None:
        """The input list and its keys are unchanged."""
        keys = rotate([], now=NOW, alg="Ed25519", retire_after=60)
        before = list(keys)
        rotate(keys, now=NOW, alg="Ed25519", retire_after=60)
        assert keys == before
        assert keys[0].state == "next"

    def test_ed25519_alg_name(self) -> None:
        """The new key's name follows the setting."""
        keys = rotate([], now=NOW, alg="Ed25519", retire_after=60, ed25519_alg_name="EdDSA")
        assert keys[0].alg == "EdDSA"

    def test_oldest_next_is_promoted(self) -> None:
        """With two next keys, the one published first becomes active."""
        older = generate_signing_key("Ed25519", now=NOW - 10)
        newer = generate_signing_key("Ed25519", now=NOW - 5)
        keys = rotate([newer, older], now=NOW, alg="Ed25519", retire_after=60)
        assert [key.state for key in keys] == ["next", "active"]

    def test_negative_retire_after(self) -> None:
        """A negative grace period is a configuration error."""
        with pytest.raises(ConfigurationError):
            rotate([], now=NOW, alg="Ed25519", retire_after=-1)

    def test_public_only_next_cannot_be_promoted(self) -> None:
        """A next key without its private part cannot start signing."""
        key = generate_signing_key("Ed25519", now=NOW).public_only()
        with pytest.raises(InvalidKeyError):
            rotate([key], now=NOW, alg="Ed25519", retire_after=60)


class TestNoValidRequestFails:
    """Invariant 4: a rotation never fails a valid token."""

    def test_tokens_survive_rotation_until_they_expire(self) -> None:
        """A token signed before promotion verifies while its key is retiring, then expires."""
        clock = FakeClock()
        ttl, leeway = 600, 10
        keys = rotate(
            rotate([], now=clock(), alg="ES256", retire_after=ttl + leeway),
            now=clock(),
            alg="ES256",
            retire_after=ttl + leeway,
        )
        ring = KeyRing(keys)
        issuer = TokenIssuer(ring, issuer=ISSUER, audience=AUDIENCE, access_ttl=ttl, clock=clock)
        verifier = TokenVerifier(
            ring,
            issuer=ISSUER,
            audience=AUDIENCE,
            algorithms=["ES256"],
            leeway=leeway,
            clock=clock,
            cache_size=0,
        )
        old_token = issuer.issue_access("u", scope=[], roles=[], client_id="c").token

        # Publish next: the JWKS carries it before it signs anything.
        keys = rotate(keys, now=clock(), alg="ES256", retire_after=ttl + leeway)
        ring.replace(keys)
        next_kid = next(key.kid for key in keys if key.state == "next")
        assert next_kid in {jwk["kid"] for jwk in ring.jwks()["keys"]}
        assert verifier.verify(old_token).sub == "u"

        clock.advance(300)
        keys = rotate(keys, now=clock(), alg="ES256", retire_after=ttl + leeway)
        ring.replace(keys)
        new_token = issuer.issue_access("u", scope=[], roles=[], client_id="c").token
        assert ring.signing_key().kid == next_kid
        assert verifier.verify(old_token).sub == "u"  # retiring key still verifies
        assert verifier.verify(new_token).sub == "u"

        clock.advance(ttl + leeway)  # the retiring key's grace period has passed
        keys = rotate(keys, now=clock(), alg="ES256", retire_after=ttl + leeway)
        ring.replace(keys)
        assert "retired" in states(keys)
        assert (
            verifier.verify(issuer.issue_access("u", scope=[], roles=[], client_id="c").token).sub
            == "u"
        )


class TestAlgorithmChange:
    """Changing the signing algorithm is a rotation like any other."""

    def test_next_key_takes_the_new_algorithm(self) -> None:
        """After RS256 → Ed25519, the step publishes an Ed25519 key; the next one promotes it."""
        old = cached_key("RS256")
        keys = rotate([old], now=NOW, alg="Ed25519", retire_after=60)
        assert [(key.alg, key.state) for key in keys] == [("RS256", "active"), ("Ed25519", "next")]
        keys = rotate(keys, now=NOW + 1, alg="Ed25519", retire_after=60)
        assert [(key.alg, key.state) for key in keys] == [
            ("RS256", "retiring"),
            ("Ed25519", "active"),
        ]
        assert keys[0].retire_at == NOW + 61
        published = {jwk["alg"]: jwk for jwk in KeyRing(keys).jwks()["keys"]}
        assert published["RS256"]["kty"] == "RSA"
        assert (published["Ed25519"]["kty"], published["Ed25519"]["crv"]) == ("OKP", "Ed25519")

    def test_next_key_of_the_old_algorithm_never_signs(self) -> None:
        """A next key published for the old algorithm is retired and replaced, never promoted."""
        active = cached_key("ES256")
        stale = generate_signing_key("ES256", now=NOW - 100)
        keys = rotate([active, stale], now=NOW, alg="Ed25519", retire_after=60)
        assert [(key.kid, key.state) for key in keys[:2]] == [
            (active.kid, "active"),
            (stale.kid, "retired"),
        ]
        assert keys[1].retire_at == NOW
        assert (keys[2].alg, keys[2].state, keys[2].created_at) == ("Ed25519", "next", NOW)
        ring = KeyRing(keys)
        assert ring.signing_key().kid == active.kid
        assert ring.verification_key(stale.kid) is None
        assert stale.kid not in {jwk["kid"] for jwk in ring.jwks()["keys"]}
        keys = rotate(keys, now=NOW + 1, alg="Ed25519", retire_after=60)
        assert KeyRing(keys).signing_key().alg == "Ed25519"

    def test_ed25519_name_change_is_an_algorithm_change(self) -> None:
        """A next key published as Ed25519 is replaced when the setting asks for EdDSA."""
        stale = generate_signing_key("Ed25519", now=NOW - 100)
        keys = rotate(
            [cached_key("ES256"), stale],
            now=NOW,
            alg="Ed25519",
            retire_after=60,
            ed25519_alg_name="EdDSA",
        )
        assert [(key.alg, key.state) for key in keys] == [
            ("ES256", "active"),
            ("Ed25519", "retired"),
            ("EdDSA", "next"),
        ]

    def test_next_to_promote(self) -> None:
        """It names the oldest next key of the configured algorithm, or nothing."""
        older = generate_signing_key("ES256", now=NOW - 10)
        newer = generate_signing_key("ES256", now=NOW - 5)
        other = generate_signing_key("Ed25519", now=NOW - 20)
        keys = [cached_key("RS256"), newer, other, older]
        assert next_to_promote(keys, alg="ES256") is older
        assert next_to_promote(keys, alg="Ed25519") is other
        assert next_to_promote(keys, alg="Ed25519", ed25519_alg_name="EdDSA") is None
        assert next_to_promote(keys, alg="RS256") is None
        promoted = rotate(keys, now=NOW, alg="ES256", retire_after=60)
        assert [key.state for key in promoted] == ["retiring", "next", "retired", "active"]

    @pytest.mark.parametrize(("old", "new"), [("RS256", "Ed25519"), ("Ed25519", "ES256")])
    def test_old_tokens_verify_until_the_old_key_retires(self, old: str, new: str) -> None:
        """One verifier accepts both algorithms through the overlap, then only the new one."""
        clock = FakeClock()
        ttl = 600
        ring = KeyRing([cached_key(old)])
        issuer = TokenIssuer(ring, issuer=ISSUER, audience=AUDIENCE, access_ttl=ttl, clock=clock)
        verifier = TokenVerifier(
            ring,
            issuer=ISSUER,
            audience=AUDIENCE,
            algorithms=[old, new],
            clock=clock,
            cache_size=16,
        )
        old_token = issuer.issue_access("u", scope=[], roles=[], client_id="c").token
        assert verifier.verify(old_token).sub == "u"
        for _ in range(2):  # publish, then promote
            ring.replace(rotate(ring.keys, now=clock(), alg=new, retire_after=ttl))
        new_token = issuer.issue_access("u", scope=[], roles=[], client_id="c").token
        assert ring.signing_key().alg == new
        assert verifier.verify(old_token).sub == "u"
        assert verifier.verify(new_token).sub == "u"

        clock.advance(ttl)
        ring.replace(rotate(ring.keys, now=clock(), alg=new, retire_after=ttl))
        assert [key.alg for key in ring.keys if key.state == "retired"] == [old]
        assert {jwk["alg"] for jwk in ring.jwks()["keys"]} == {new}
        with pytest.raises(UnknownKeyError):
            verifier.verify(old_token)
