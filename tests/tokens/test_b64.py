"""Strict, canonical base64url."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from barbacana.tokens._b64 import b64url_decode, b64url_encode


@given(st.binary(max_size=300))
def test_round_trip(data: bytes) -> None:
    """Encoding then decoding gives the bytes back, without padding."""
    encoded = b64url_encode(data)
    assert "=" not in encoded
    assert b64url_decode(encoded) == data


@given(st.binary(min_size=1, max_size=64))
def test_one_encoding_per_value(data: bytes) -> None:
    """Changing the unused low bits of the last character is refused, not ignored."""
    encoded = b64url_encode(data)
    if len(encoded) % 4 == 0:
        return
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(encoded[-1])
    unused = 4 if len(encoded) % 4 == 2 else 2
    for bits in range(1, 1 << unused):
        variant = encoded[:-1] + alphabet[last | bits]
        assert base64.urlsafe_b64decode(variant + "==") == data  # the lenient decoder is fooled
        with pytest.raises(ValueError, match="canonical"):
            b64url_decode(variant)


@pytest.mark.parametrize(
    "text",
    ["QQ==", "QQ=", "Q Q", " QQ", "QQ\n", "+w", "/w", "Q", "QUJD\x00", "é", "QQ.QQ"],
)
def test_refused(text: str) -> None:
    """Padding, whitespace, the standard alphabet, impossible lengths and junk are refused."""
    with pytest.raises(ValueError, match=r"base64url|ascii"):
        b64url_decode(text)


def test_url_alphabet() -> None:
    """'-' and '_' decode as 62 and 63."""
    assert b64url_decode("-_8") == bytes([0xFB, 0xFF])
