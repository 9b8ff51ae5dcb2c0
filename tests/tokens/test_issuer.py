"""TokenIssuer: RFC 9068 access tokens."""

from __future__ import annotations

import json
from typing import Any

import pytest

from barbacana.errors import ConfigurationError
from barbacana.tokens import KeyRing, NoSigningKeyError, TokenIssuer, generate_signing_key
from barbacana.tokens._b64 import b64url_decode

from .helpers import AUDIENCE, ISSUER, NOW, FakeClock, cached_key, make_kit


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    return json.loads(b64url_decode(head)), json.loads(b64url_decode(body))


class TestFormat:
    """Header and claims."""

    @pytest.mark.parametrize("alg", ["Ed25519", "ES256", "RS256"])
    def test_header(self, alg: str) -> None:
        """Exactly alg, kid and typ at+jwt."""
        kit = make_kit(alg)
        header, _ = decode(kit.token())
        assert header == {"alg": alg, "kid": kit.key.kid, "typ": "at+jwt"}

    def test_claims(self) -> None:
        """The RFC 9068 §2.2 claims, whole-second times, space-separated scope."""
        kit = make_kit()
        issued = kit.issuer.issue_access(
            "alice", scope=["a", "b", "a"], roles=["user"], client_id="web"
        )
        _, payload = decode(issued.token)
        assert payload == dict(issued.claims)
        assert payload["iss"] == ISSUER
        assert payload["aud"] == AUDIENCE
        assert payload["sub"] == "alice"
        assert payload["iat"] == payload["nbf"] == int(NOW)
        assert payload["exp"] == int(NOW) + 600 == payload["iat"] + issued.expires_in
        assert payload["scope"] == "a b"
        assert payload["roles"] == ["user"]
        assert payload["client_id"] == "web"
        assert "sid" not in payload
        assert len(b64url_decode(payload["jti"])) == 16

    def test_sid(self) -> None:
        """sid is set for tokens of a refresh family."""
        kit = make_kit()
        _, payload = decode(kit.token(sid="family-1"))
        assert payload["sid"] == "family-1"

    def test_jti_unique(self) -> None:
        """Every token gets its own jti."""
        kit = make_kit()
        assert len({decode(kit.token())[1]["jti"] for _ in range(200)}) == 200

    def test_extra_claims(self) -> None:
        """Extra claims are added; registered ones cannot be replaced."""
        kit = make_kit()
        _, payload = decode(kit.token(extra={"preferred_username": "alice"}))
        assert payload["preferred_username"] == "alice"
        for name in ("iss", "sub", "aud", "exp", "jti", "scope", "roles", "sid", "client_id"):
            with pytest.raises(ConfigurationError):
                kit.token(extra={name: "x"})

    def test_extra_must_be_json(self) -> None:
        """Non-JSON or non-finite extras are refused."""
        kit = make_kit()
        for value in (float("nan"), object()):
            with pytest.raises(ConfigurationError):
                kit.token(extra={"x": value})

    def test_audience_list(self) -> None:
        """Several audiences become a JSON array."""
        ring = KeyRing([cached_key("Ed25519")])
        issuer = TokenIssuer(
            ring, issuer=ISSUER, audience=["orders", "chat"], access_ttl=60, clock=FakeClock()
        )
        _, payload = decode(issuer.issue_access("u", scope=[], roles=[], client_id="c").token)
        assert payload["aud"] == ["orders", "chat"]

    def test_repr_hides_the_token(self) -> None:
        """An IssuedToken's repr never shows the bearer token."""
        issued = make_kit().issuer.issue_access("u", scope=[], roles=[], client_id="c")
        assert issued.token not in repr(issued)
        assert issued.token.split(".")[2] not in repr(issued)


class TestKeys:
    """The issuer signs with the ring's active key, read on each call."""

    def test_no_active_key(self) -> None:
        """A ring with only a next key cannot sign."""
        ring = KeyRing([generate_signing_key("Ed25519", now=NOW)])
        issuer = TokenIssuer(ring, issuer=ISSUER, audience=AUDIENCE, access_ttl=60)
        with pytest.raises(NoSigningKeyError):
            issuer.issue_access("u", scope=[], roles=[], client_id="c")

    def test_follows_replace(self) -> None:
        """After a rotation swapped into the ring, new tokens use the new key."""
        kit = make_kit()
        kit.ring.replace([cached_key("ES256")])
        header, _ = decode(kit.token())
        assert header["kid"] == cached_key("ES256").kid
        assert header["alg"] == "ES256"


class TestArguments:
    """Programming errors are configuration errors, never bad tokens."""

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"sub": ""},
            {"client_id": ""},
            {"scope": "orders:read"},
            {"scope": ["two words"]},
            {"scope": [""]},
            {"roles": "admin"},
            {"roles": [""]},
            {"sid": ""},
        ],
    )
    def test_refused(self, kwargs: dict[str, Any]) -> None:
        """Each malformed argument raises ConfigurationError."""
        kit = make_kit()
        values: dict[str, Any] = {"sub": "u", "scope": [], "roles": [], "client_id": "c", **kwargs}
        sub = values.pop("sub")
        with pytest.raises(ConfigurationError):
            kit.issuer.issue_access(sub, **values)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"issuer": ""},
            {"audience": ""},
            {"audience": []},
            {"access_ttl": 0},
            {"access_ttl": 0.5},
        ],
    )
    def test_constructor(self, kwargs: dict[str, Any]) -> None:
        """Bad issuer settings fail at construction."""
        values: dict[str, Any] = {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "access_ttl": 60,
            **kwargs,
        }
        with pytest.raises(ConfigurationError):
            TokenIssuer(KeyRing(), **values)
