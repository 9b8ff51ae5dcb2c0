"""The verified-token cache: bounded, never past exp, revocation re-checked on every hit."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from barbacana.tokens import (
    InvalidSignatureError,
    SigningKey,
    TokenExpiredError,
    TokenRevokedError,
    UnknownKeyError,
    generate_signing_key,
)

from .helpers import NOW, Kit, make_kit


class CountingKey:
    """Counts signature checks made with a key (the expensive part a cache saves)."""

    def __init__(self, key: SigningKey) -> None:
        self.calls = 0
        original: Callable[[bytes, bytes], None] = key._verify

        def counted(signature: bytes, data: bytes) -> None:
            self.calls += 1
            original(signature, data)

        object.__setattr__(key, "_verify", counted)


@pytest.fixture
def fresh_key() -> SigningKey:
    return generate_signing_key("Ed25519", now=NOW - 60, state="active")


@pytest.fixture
def kit(fresh_key: SigningKey) -> Kit:
    return make_kit(key=fresh_key, cache_size=3)


class TestHits:
    """A repeated token is served from the cache."""

    def test_hit_skips_the_signature(self, kit: Kit, fresh_key: SigningKey) -> None:
        """The second verification of one token does not check the signature again."""
        counter = CountingKey(fresh_key)
        token = kit.token()
        first = kit.verifier.verify(token)
        assert kit.verifier.verify(token) is first
        assert counter.calls == 1

    def test_cache_off(self, fresh_key: SigningKey) -> None:
        """cache_size=0 verifies every time."""
        kit = make_kit(key=fresh_key, cache_size=0)
        counter = CountingKey(fresh_key)
        token = kit.token()
        kit.verifier.verify(token)
        kit.verifier.verify(token)
        assert counter.calls == 2

    def test_bounded_lru(self, kit: Kit, fresh_key: SigningKey) -> None:
        """With room for 3, the least recently used token is evicted first."""
        counter = CountingKey(fresh_key)
        tokens = [kit.token(f"user-{n}") for n in range(4)]
        for token in tokens[:3]:
            kit.verifier.verify(token)
        kit.verifier.verify(tokens[0])  # refreshes 0: now 1 is the oldest
        kit.verifier.verify(tokens[3])  # evicts 1
        assert counter.calls == 4
        kit.verifier.verify(tokens[0])
        kit.verifier.verify(tokens[2])
        assert counter.calls == 4
        kit.verifier.verify(tokens[1])
        assert counter.calls == 5

    def test_tampered_token_is_not_a_hit(self, kit: Kit) -> None:
        """Only the exact string hits; anything else goes through every check."""
        token = kit.token()
        kit.verifier.verify(token)
        head, body, sig = token.split(".")
        changed = sig[:10] + ("B" if sig[10] != "B" else "C") + sig[11:]
        with pytest.raises(InvalidSignatureError):
            kit.verifier.verify(f"{head}.{body}.{changed}")


class TestNeverStale:
    """A hit is re-checked: time, key and revocation."""

    def test_not_used_past_exp(self, kit: Kit) -> None:
        """At exp a cached token is refused, even with leeway configured."""
        kit = make_kit(key=kit.key, cache_size=3, leeway=30)
        token = kit.token()
        kit.verifier.verify(token)
        kit.clock.advance(599)
        assert kit.verifier.verify(token).sub == "user-1"
        kit.clock.advance(1)
        # The hit is dropped at exp; the full check still grants the leeway.
        assert kit.verifier.verify(token).sub == "user-1"
        kit.clock.advance(30)
        with pytest.raises(TokenExpiredError):
            kit.verifier.verify(token)

    def test_revoked_jti_takes_effect_at_once(self, kit: Kit) -> None:
        """Revoking a cached token's jti refuses the very next use."""
        token = kit.token()
        claims = kit.verifier.verify(token)
        kit.revocation.revoke_jti(claims.jti, claims.exp)
        with pytest.raises(TokenRevokedError):
            kit.verifier.verify(token)
        with pytest.raises(TokenRevokedError):
            kit.verifier.verify(token)

    def test_revoked_sid_takes_effect_at_once(self, kit: Kit) -> None:
        """Revoking a refresh family voids its cached access tokens."""
        token = kit.token(sid="fam-1")
        kit.verifier.verify(token)
        kit.revocation.revoke_sid("fam-1", NOW + 3600)
        with pytest.raises(TokenRevokedError):
            kit.verifier.verify(token)

    def test_subject_cut_off_takes_effect_at_once(self, kit: Kit) -> None:
        """A subject cut-off voids cached tokens issued before it, not later ones."""
        old = kit.token("alice")
        kit.verifier.verify(old)
        kit.clock.advance(5)
        kit.revocation.revoke_subject("alice", kit.clock())
        with pytest.raises(TokenRevokedError):
            kit.verifier.verify(old)
        kit.clock.advance(1)
        assert kit.verifier.verify(kit.token("alice")).sub == "alice"

    def test_retired_key_voids_cached_tokens(self, kit: Kit, fresh_key: SigningKey) -> None:
        """Once the key leaves the ring (retired or removed), cached tokens stop working."""
        token = kit.token()
        kit.verifier.verify(token)
        kit.ring.replace([fresh_key.with_state("retired")])
        with pytest.raises(UnknownKeyError):
            kit.verifier.verify(token)

    def test_clear_cache(self, kit: Kit, fresh_key: SigningKey) -> None:
        """clear_cache() forgets every entry."""
        counter = CountingKey(fresh_key)
        token = kit.token()
        kit.verifier.verify(token)
        kit.verifier.clear_cache()
        kit.verifier.verify(token)
        assert counter.calls == 2
