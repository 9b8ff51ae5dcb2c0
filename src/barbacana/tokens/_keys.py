"""Signing keys: generation, JWK import and export, thumbprints, PKCS#8.

A :class:`SigningKey` binds one public key to exactly one JWS ``alg`` (RFC 8725
§3.1: "each key MUST be used with exactly one algorithm") and to one place in
the rotation lifecycle (``next`` → ``active`` → ``retiring`` → ``retired``).
Its ``kid`` is the RFC 7638 JWK thumbprint, so a key id can never be claimed by
different key material from the same issuer.

Ed25519 keys are published under the fully specified name ``Ed25519`` (RFC
9864 §2.2), or under the deprecated polymorphic ``EdDSA`` (RFC 8037 §3.1) for
verifiers that predate RFC 9864. A key verifies only under the name it was
published with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias, get_args

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ._b64 import b64url_decode, b64url_encode
from .errors import InvalidKeyError, NoSigningKeyError

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "Algorithm",
    "KeyState",
    "PrivateKey",
    "PublicKey",
    "SigningKey",
    "generate_signing_key",
    "jwk_thumbprint",
    "key_from_jwk",
]

#: JWS algorithms Barbacana signs and verifies. HMAC and ``none`` are absent on purpose.
Algorithm: TypeAlias = Literal["Ed25519", "EdDSA", "ES256", "RS256"]
SUPPORTED_ALGORITHMS: frozenset[str] = frozenset(get_args(Algorithm))

#: Where a key is in its lifecycle. ``next`` keys are published but never sign;
#: ``active`` signs; ``retiring`` only verifies; ``retired`` does neither.
KeyState: TypeAlias = Literal["next", "active", "retiring", "retired"]
KEY_STATES: frozenset[str] = frozenset(get_args(KeyState))

PublicKey: TypeAlias = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey: TypeAlias = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

#: Size of generated RSA keys: 3072 bits is 128-bit security (NIST SP 800-57 Pt 1 Table 2).
RSA_KEY_BITS = 3072
#: Smallest RSA modulus accepted from a JWKS (RFC 7518 §3.3 requires 2048).
RSA_MIN_BITS = 2048
#: Largest RSA modulus accepted, so a hostile JWKS cannot make verification slow.
RSA_MAX_BITS = 8192
#: Longest ``kid`` accepted; thumbprints are 43 characters.
MAX_KID_LENGTH = 256

# JWK members that only a private key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()

Verify: TypeAlias = Callable[[bytes, bytes], None]
Sign: TypeAlias = Callable[[bytes], bytes]


def _b64_uint(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(size, "big"))


def _required_members(public_key: PublicKey) -> dict[str, str]:
    """The members RFC 7638 §3.2 hashes, for each key type."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(raw)}
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64_uint(numbers.x, 32),
            "y": _b64_uint(numbers.y, 32),
        }
    numbers_rsa = public_key.public_numbers()
    return {"e": _b64_uint(numbers_rsa.e), "kty": "RSA", "n": _b64_uint(numbers_rsa.n)}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of a public JWK.

    Only the required members of the key type take part, in lexicographic order
    and without whitespace (RFC 7638 §3.3).

    Raises:
        InvalidKeyError: the key type is not OKP, EC or RSA, or a member is missing.
    """
    required = {
        "OKP": ("crv", "kty", "x"),
        "EC": ("crv", "kty", "x", "y"),
        "RSA": ("e", "kty", "n"),
    }
    names = required.get(jwk.get("kty"))  # type: ignore[arg-type]
    if names is None:
        raise InvalidKeyError("the JWK's key type has no thumbprint definition")
    try:
        members = {name: jwk[name] for name in names}
    except KeyError as exc:
        raise InvalidKeyError(f"the JWK lacks its required member {exc.args[0]!r}") from None
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def _check_pair(alg: str, public_key: object) -> None:
    """Refuse a key whose type is not the one ``alg`` needs."""
    if alg in ("Ed25519", "EdDSA"):
        if not isinstance(public_key, ed25519.Ed25519PublicKey):
            raise InvalidKeyError(f"{alg} needs an Ed25519 key")
    elif alg == "ES256":
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
            public_key.curve, ec.SECP256R1
        ):
            raise InvalidKeyError("ES256 needs a P-256 key")
    elif alg == "RS256":
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise InvalidKeyError("RS256 needs an RSA key")
        if not RSA_MIN_BITS <= public_key.key_size <= RSA_MAX_BITS:
            raise InvalidKeyError(
                f"RSA keys must have {RSA_MIN_BITS} to {RSA_MAX_BITS} bits, "
                f"not {public_key.key_size}"
            )
    else:
        raise InvalidKeyError(
            f"unsupported algorithm; supported: {', '.join(sorted(SUPPORTED_ALGORITHMS))}"
        )


def _spki(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _verifier(alg: str, public_key: PublicKey) -> Verify:
    """A function ``(signature, signing_input) -> None`` raising ``InvalidSignature``."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return public_key.verify
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        ec_key = public_key

        def verify_es256(signature: bytes, data: bytes) -> None:
            # RFC 7518 §3.4: the JWS signature is R || S, 32 bytes each; OpenSSL wants DER.
            if len(signature) != 64:
                raise InvalidSignature
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            ec_key.verify(der, data, _ECDSA_SHA256)

        return verify_es256
    rsa_key = public_key

    def verify_rs256(signature: bytes, data: bytes) -> None:
        rsa_key.verify(signature, data, _PKCS1, _SHA256)

    return verify_rs256


def _signer(private_key: PrivateKey) -> Sign:
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        ec_key = private_key

        def sign_es256(data: bytes) -> bytes:
            r, s = decode_dss_signature(ec_key.sign(data, _ECDSA_SHA256))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        return sign_es256
    rsa_key = private_key

    def sign_rs256(data: bytes) -> bytes:
        return rsa_key.sign(data, _PKCS1, _SHA256)

    return sign_rs256


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key of a ring: public part, optional private part, algorithm and lifecycle.

    Times are UNIX seconds. ``repr()`` never shows key material. Build new keys
    with :func:`generate_signing_key`, import published ones with
    :func:`key_from_jwk`, and reload stored ones with :meth:`from_private_pkcs8`.

    Raises:
        InvalidKeyError: the key type does not fit ``alg``, the private part does
            not belong to the public part, or ``state`` or ``kid`` is invalid.
    """

    kid: str
    alg: str
    public_key: PublicKey = field(repr=False, compare=False)
    private_key: PrivateKey | None = field(default=None, repr=False, compare=False)
    state: KeyState = "active"
    created_at: float = 0.0
    activated_at: float | None = None
    retire_at: float | None = None
    _verify: Verify = field(init=False, repr=False, compare=False)
    _sign: Sign | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.kid, str) or not 0 < len(self.kid) <= MAX_KID_LENGTH:
            raise InvalidKeyError(f"a kid must be a string of 1 to {MAX_KID_LENGTH} characters")
        if self.state not in KEY_STATES:
            raise InvalidKeyError(f"key state must be one of {', '.join(sorted(KEY_STATES))}")
        _check_pair(self.alg, self.public_key)
        signer: Sign | None = None
        if self.private_key is not None:
            if _spki(self.private_key.public_key()) != _spki(self.public_key):
                raise InvalidKeyError("the private key does not belong to the public key")
            signer = _signer(self.private_key)
        object.__setattr__(self, "_verify", _verifier(self.alg, self.public_key))
        object.__setattr__(self, "_sign", signer)

    @property
    def can_sign(self) -> bool:
        """True when the key is ``active`` and holds its private part."""
        return self.state == "active" and self._sign is not None

    @property
    def can_verify(self) -> bool:
        """True for ``next``, ``active`` and ``retiring`` keys; retired keys never verify."""
        return self.state != "retired"

    def sign(self, signing_input: bytes) -> bytes:
        """The JWS signature of ``signing_input`` (R || S for ES256, RFC 7518 §3.4).

        Raises:
            NoSigningKeyError: the key has no private part.
        """
        if self._sign is None:
            raise NoSigningKeyError("this key has no private part")
        return self._sign(signing_input)

    def verify(self, signature: bytes, signing_input: bytes) -> bool:
        """True when ``signature`` is valid for ``signing_input`` under this key."""
        try:
            self._verify(signature, signing_input)
        except (InvalidSignature, ValueError):
            return False
        return True

    def with_state(
        self,
        state: KeyState,
        *,
        activated_at: float | None = None,
        retire_at: float | None = None,
    ) -> SigningKey:
        """A copy in ``state``; times not given keep their current value."""
        return replace(
            self,
            state=state,
            activated_at=self.activated_at if activated_at is None else activated_at,
            retire_at=self.retire_at if retire_at is None else retire_at,
        )

    def public_only(self) -> SigningKey:
        """A copy without the private part."""
        return replace(self, private_key=None)

    def public_jwk(self) -> dict[str, str]:
        """The public JWK with ``use``, ``alg`` and ``kid``; never a private member."""
        return {
            **_required_members(self.public_key),
            "use": "sig",
            "alg": self.alg,
            "kid": self.kid,
        }

    def private_pkcs8(self) -> bytes:
        """The private key as unencrypted PKCS#8 DER; the caller encrypts it at rest.

        Raises:
            InvalidKeyError: the key has no private part.
        """
        if self.private_key is None:
            raise InvalidKeyError("this key has no private part to serialise")
        return self.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_private_pkcs8(
        cls,
        der: bytes,
        *,
        alg: str,
        state: KeyState = "active",
        created_at: float = 0.0,
        activated_at: float | None = None,
        retire_at: float | None = None,
        kid: str | None = None,
    ) -> SigningKey:
        """Load a key stored with :meth:`private_pkcs8`; ``kid`` defaults to the thumbprint.

        Raises:
            InvalidKeyError: the bytes are not an unencrypted PKCS#8 key of a type ``alg`` uses.
        """
        try:
            private_key = serialization.load_der_private_key(der, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise InvalidKeyError("not an unencrypted PKCS#8 private key") from None
        if not isinstance(
            private_key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        ):
            raise InvalidKeyError("only Ed25519, P-256 and RSA private keys are supported")
        public_key = private_key.public_key()
        _check_pair(alg, public_key)
        return cls(
            kid=kid if kid is not None else jwk_thumbprint(_required_members(public_key)),
            alg=alg,
            public_key=public_key,
            private_key=private_key,
            state=state,
            created_at=created_at,
            activated_at=activated_at,
            retire_at=retire_at,
        )


def generate_signing_key(
    alg: str,
    *,
    now: float,
    ed25519_alg_name: Literal["Ed25519", "EdDSA"] = "Ed25519",
    state: KeyState = "next",
) -> SigningKey:
    """A new key for ``alg`` (``Ed25519``, ``ES256`` or ``RS256``), in state ``state``.

    Ed25519 keys are published as ``ed25519_alg_name``: ``Ed25519`` (RFC 9864)
    unless verifiers need the deprecated ``EdDSA``. RSA keys have
    :data:`RSA_KEY_BITS` bits. The ``kid`` is the RFC 7638 thumbprint.

    Raises:
        InvalidKeyError: ``alg`` or ``ed25519_alg_name`` is not supported.
    """
    private_key: PrivateKey
    if alg in ("Ed25519", "EdDSA"):
        if ed25519_alg_name not in ("Ed25519", "EdDSA"):
            raise InvalidKeyError("ed25519_alg_name must be 'Ed25519' or 'EdDSA'")
        private_key = ed25519.Ed25519PrivateKey.generate()
        alg = "EdDSA" if alg == "EdDSA" else ed25519_alg_name
    elif alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    else:
        raise InvalidKeyError("new keys can be Ed25519, ES256 or RS256")
    public_key = private_key.public_key()
    return SigningKey(
        kid=jwk_thumbprint(_required_members(public_key)),
        alg=alg,
        public_key=public_key,
        private_key=private_key,
        state=state,
        created_at=now,
        activated_at=now if state == "active" else None,
    )


def _member_bytes(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidKeyError(f"the JWK member {name!r} must be a non-empty base64url string")
    try:
        return b64url_decode(value)
    except ValueError:
        raise InvalidKeyError(f"the JWK member {name!r} is not canonical base64url") from None


def _public_key_from_jwk(jwk: Mapping[str, Any], alg: str) -> PublicKey:
    kty = jwk.get("kty")
    if kty == "OKP":
        if jwk.get("crv") != "Ed25519":
            raise InvalidKeyError("only the Ed25519 curve is supported for OKP keys")
        if alg not in ("Ed25519", "EdDSA"):
            raise InvalidKeyError("an Ed25519 key must be published for Ed25519 or EdDSA")
        x = _member_bytes(jwk, "x")
        if len(x) != 32:
            raise InvalidKeyError("an Ed25519 public key has 32 bytes")
        return ed25519.Ed25519PublicKey.from_public_bytes(x)
    if kty == "EC":
        if jwk.get("crv") != "P-256":
            raise InvalidKeyError("only the P-256 curve is supported for EC keys")
        if alg != "ES256":
            raise InvalidKeyError("a P-256 key must be published for ES256")
        x, y = _member_bytes(jwk, "x"), _member_bytes(jwk, "y")
        if len(x) != 32 or len(y) != 32:
            raise InvalidKeyError("P-256 coordinates have 32 bytes each (RFC 7518 §6.2.1.2)")
        try:
            return ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
            ).public_key()
        except ValueError:
            raise InvalidKeyError("the EC point is not on the P-256 curve") from None
    if kty == "RSA":
        if alg != "RS256":
            raise InvalidKeyError("an RSA key must be published for RS256")
        n, e = _member_bytes(jwk, "n"), _member_bytes(jwk, "e")
        if not RSA_MIN_BITS <= len(n) * 8 <= RSA_MAX_BITS + 8 or len(e) > 8:
            raise InvalidKeyError(f"RSA keys must have {RSA_MIN_BITS} to {RSA_MAX_BITS} bits")
        try:
            return rsa.RSAPublicNumbers(
                int.from_bytes(e, "big"), int.from_bytes(n, "big")
            ).public_key()
        except ValueError:
            raise InvalidKeyError("the RSA public numbers are invalid") from None
    raise InvalidKeyError("unsupported key type; supported: OKP (Ed25519), EC (P-256), RSA")


def key_from_jwk(jwk: Mapping[str, Any], *, state: KeyState = "active") -> SigningKey:
    """Import one public JWK as a verification-only key.

    The JWK must carry ``alg`` (so the key is bound to one algorithm), may carry
    ``use`` only as ``sig`` and ``key_ops`` only with ``verify``, and must not
    carry any private member. Without ``kid``, the RFC 7638 thumbprint is used.

    Raises:
        InvalidKeyError: any of the rules above is broken, or the key material is invalid.
    """
    if not isinstance(jwk, Mapping):
        raise InvalidKeyError("a JWK must be a JSON object")
    if _PRIVATE_MEMBERS.intersection(jwk):
        raise InvalidKeyError("the JWK contains private key members; only public keys are accepted")
    alg = jwk.get("alg")
    if not isinstance(alg, str) or alg not in SUPPORTED_ALGORITHMS:
        raise InvalidKeyError(
            f"the JWK must name its algorithm, one of {', '.join(sorted(SUPPORTED_ALGORITHMS))}"
        )
    if "use" in jwk and jwk["use"] != "sig":
        raise InvalidKeyError("the JWK is not a signature key (use must be 'sig')")
    if "key_ops" in jwk:
        ops = jwk["key_ops"]
        if not isinstance(ops, list) or "verify" not in ops:
            raise InvalidKeyError("the JWK's key_ops does not allow 'verify'")
    public_key = _public_key_from_jwk(jwk, alg)
    kid = jwk.get("kid")
    if kid is None:
        kid = jwk_thumbprint(_required_members(public_key))
    elif not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        raise InvalidKeyError(f"a kid must be a string of 1 to {MAX_KID_LENGTH} characters")
    return SigningKey(kid=kid, alg=alg, public_key=public_key, state=state)
