"""Strict base64url without padding (RFC 7515 §2 and Appendix C).

The standard library's ``urlsafe_b64decode`` skips characters outside the
alphabet and ignores non-zero bits in the last character, so two different
strings can decode to the same bytes. A JWS must have exactly one encoding:
anything else would let a token be changed without changing what verifies.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["TO_STANDARD", "b64url_decode", "b64url_encode", "decode_translated"]

# '-' and '_' become the standard alphabet; '+', '/' and '=' become a byte that
# strict mode rejects, so the standard alphabet and padding are refused too.
TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/***")
_PADDING = (b"", b"", b"==", b"=")
# The last character of a segment whose length is 2 or 3 modulo 4 carries 4 or 2
# unused bits; canonical encodings leave them zero.
_CANONICAL_TAIL: tuple[frozenset[int], ...] = (
    frozenset(),
    frozenset(),
    frozenset(b"AQgw"),
    frozenset(b"AEIMQUYcgkosw048"),
)


def b64url_encode(data: bytes) -> str:
    """Encode ``data`` as base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(data: str) -> bytes:
    """Decode canonical, unpadded base64url.

    Raises:
        ValueError: ``data`` has padding, whitespace, characters outside the
            base64url alphabet, an impossible length or non-zero unused bits.
    """
    return decode_translated(data.encode("ascii").translate(TO_STANDARD))


def decode_translated(data: bytes) -> bytes:
    """Decode base64url that was already passed through :data:`TO_STANDARD`.

    The verifier translates a whole token at once and decodes its segments
    with this, saving one copy per segment.

    Raises:
        ValueError: as :func:`b64url_decode`.
    """
    rest = len(data) % 4
    if rest == 1 or (rest and data[-1] not in _CANONICAL_TAIL[rest]):
        raise ValueError("not canonical base64url")
    try:
        return binascii.a2b_base64(data + _PADDING[rest], strict_mode=True)
    except binascii.Error:
        raise ValueError("invalid base64url") from None
