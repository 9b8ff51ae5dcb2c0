"""Properties: any change to a valid token fails; any input fails cleanly; claims round-trip."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from barbacana.errors import TokenError

from .helpers import ALGORITHMS, Kit, make_kit

# Kits are built once per algorithm: RSA keys are slow to make, and the kits hold no per-test state
# that these properties change (the clock stays put, nothing is revoked).
KITS: dict[str, Kit] = {}


def kit_for(alg: str) -> Kit:
    if alg not in KITS:
        KITS[alg] = make_kit(alg, cache_size=64)
    return KITS[alg]


TOKENS: dict[str, str] = {}


def token_for(alg: str) -> str:
    if alg not in TOKENS:
        TOKENS[alg] = kit_for(alg).token("alice", sid="fam-1")
    return TOKENS[alg]


replacement_chars = st.sampled_from(string.ascii_letters + string.digits + "-_.=+/ \n\x00é")


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_every_position_is_protected(alg: str) -> None:
    """An exhaustive sweep: each position, changed to another base64url character, fails."""
    kit, token = kit_for(alg), token_for(alg)
    for position, original in enumerate(token):
        if original == ".":
            continue
        char = "A" if original != "A" else "B"
        with pytest.raises(TokenError):
            kit.verifier.verify(token[:position] + char + token[position + 1 :])


@pytest.mark.parametrize("alg", ALGORITHMS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_changing_any_character_fails(alg: str, data: st.DataObject) -> None:
    """Replacing any one character of a valid token with any other makes verification fail.

    The original is verified first, so it sits in the verified-token cache: the
    changed token must not be served from it.
    """
    kit, token = kit_for(alg), token_for(alg)
    assert kit.verifier.verify(token).sub == "alice"
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    char = data.draw(replacement_chars.filter(lambda c: c != token[position]), label="char")
    with pytest.raises(TokenError):
        kit.verifier.verify(token[:position] + char + token[position + 1 :])


@pytest.mark.parametrize("alg", ALGORITHMS)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_flipping_any_bit_of_a_segment_fails(alg: str, data: st.DataObject) -> None:
    """Flipping any bit of the decoded header, payload or signature makes verification fail."""
    from barbacana.tokens._b64 import b64url_decode, b64url_encode

    kit, token = kit_for(alg), token_for(alg)
    segments = token.split(".")
    which = data.draw(st.integers(0, 2), label="segment")
    raw = bytearray(b64url_decode(segments[which]))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1), label="bit")
    raw[bit // 8] ^= 1 << (bit % 8)
    segments[which] = b64url_encode(bytes(raw))
    with pytest.raises(TokenError):
        kit.verifier.verify(".".join(segments))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_arbitrary_input_fails_cleanly(text: str) -> None:
    """Any string is refused with a TokenError, never another exception."""
    with pytest.raises(TokenError):
        kit_for("Ed25519").verifier.verify(text)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from("abcdefghij.*-_/:"), min_size=1, max_size=40).map("".join)
    | st.just("x"),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
)
def test_dotted_segments_fail_cleanly(segment: str, tail: str) -> None:
    """Three-segment strings of junk are refused with a TokenError."""
    with pytest.raises(TokenError):
        kit_for("Ed25519").verifier.verify(f"{segment}.{segment}.{tail}")


scope_names = st.text(string.ascii_lowercase + ":_", min_size=1, max_size=12)


@settings(max_examples=100, deadline=None)
@given(
    sub=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
    scope=st.lists(scope_names, max_size=6),
    roles=st.lists(st.text(min_size=1, max_size=10), max_size=4),
)
def test_claims_round_trip(sub: str, scope: list[str], roles: list[str]) -> None:
    """Whatever the issuer signs, the verifier returns unchanged."""
    kit = kit_for("Ed25519")
    result = kit.verifier.verify(kit.token(sub, scope=scope, roles=roles))
    assert result.sub == sub
    assert result.scope == frozenset(scope)
    assert result.roles == tuple(dict.fromkeys(roles))
