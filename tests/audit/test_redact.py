"""Redaction: secrets never survive, ordinary values do."""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, SecretBytes, SecretStr

from barbacana.audit import REDACTED, Redactor

JWT = (
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0"
    ".eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjE3MDAwMDAwMDB9"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmUtMTIzNDU2Nzg5MA"
)
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIGJhcmJhY2FuYS10ZXN0LWtleS1tYXRlcmlhbC0x\n"
    "-----END PRIVATE KEY-----"
)


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(secret_fields=["pin_code", "ssn"])


class TestFieldNames:
    """Values under secret-sounding names are replaced, whatever their case or style."""

    @pytest.mark.parametrize(
        "name",
        [
            "password",
            "new_password",
            "Password",
            "passwd",
            "client_secret",
            "clientSecret",
            "access_token",
            "refreshToken",
            "id_token",
            "api_key",
            "apiKey",
            "X-API-Key",
            "Authorization",
            "cookie",
            "Set-Cookie",
            "private_key",
            "signing_key",
            "hmac_key",
            "otp",
            "totp_secret",
            "session_id",
            "credentials",
            "ssn",
            "PIN-Code",
        ],
    )
    def test_secret_names(self, redactor: Redactor, name: str) -> None:
        """Each of these names hides its value."""
        assert redactor.is_secret_name(name)
        assert redactor({name: "s3cr3t-value"}) == {name: REDACTED}

    @pytest.mark.parametrize(
        "name", ["username", "kid", "key_id", "token_type", "scope", "client_id", "status", "email"]
    )
    def test_ordinary_names(self, redactor: Redactor, name: str) -> None:
        """Ordinary names keep their values."""
        assert not redactor.is_secret_name(name)
        assert redactor({name: "visible"}) == {name: "visible"}


class TestValues:
    """Secret values are found wherever they are."""

    def test_nested_structures(self, redactor: Redactor) -> None:
        """Dicts in lists in dicts, tuples and sets are all walked."""
        value = {
            "user": "bob",
            "changes": [{"field": "password", "new": {"password": "hunter2"}}],
            "clients": ({"client_secret": "topsecret", "name": "orders"},),
            "many": {"a": [[{"token": "deep"}]]},
        }
        out = redactor(value)
        text = json.dumps(out)
        for secret in ("hunter2", "topsecret", "deep"):
            assert secret not in text
        assert out["user"] == "bob"
        assert out["clients"][0]["name"] == "orders"

    def test_pydantic_secrets(self, redactor: Redactor) -> None:
        """SecretStr and SecretBytes never show their content, even under ordinary names."""
        out = redactor(
            {"value": SecretStr("hunter2"), "blob": SecretBytes(b"k3y"), "l": [SecretStr("x1")]}
        )
        assert out == {"value": REDACTED, "blob": REDACTED, "l": [REDACTED]}

    def test_models_and_dataclasses(self, redactor: Redactor) -> None:
        """Models and dataclasses are dumped, then redacted field by field."""

        class Login(BaseModel):
            username: str
            password: SecretStr
            note: str

        @dataclasses.dataclass
        class Change:
            who: str
            api_key: str

        out = redactor(
            {
                "login": Login(username="bob", password=SecretStr("pw-1"), note=f"used {JWT}"),
                "change": Change(who="alice", api_key="ak-123456"),
            }
        )
        text = json.dumps(out)
        assert "pw-1" not in text
        assert JWT not in text
        assert "ak-123456" not in text
        assert out["login"]["username"] == "bob"
        assert out["change"]["who"] == "alice"

    def test_authorization_headers(self, redactor: Redactor) -> None:
        """Header pairs (str or bytes, as in an ASGI scope) hide credentials by name."""
        headers = [
            (b"authorization", b"Bearer abcdef123456"),
            (b"cookie", b"session=xyz123456"),
            (b"x-api-key", b"bk_live_123456"),
            (b"user-agent", b"curl/8"),
            ("Authorization", "Basic dXNlcjpwYXNz"),
        ]
        out = redactor({"headers": headers})
        assert out["headers"] == [
            ["authorization", REDACTED],
            ["cookie", REDACTED],
            ["x-api-key", REDACTED],
            ["user-agent", "curl/8"],
            ["Authorization", REDACTED],
        ]

    @pytest.mark.parametrize(
        ("text", "secret"),
        [
            (f"token was {JWT} (expired)", JWT),
            (f"Authorization: Bearer {JWT}", JWT),
            ("Authorization: Bearer opaque-Refresh_Token.123", "opaque-Refresh_Token.123"),
            ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
            (
                f"key file:\n{PEM}\nend",
                "MC4CAQAwBQYDK2VwBCIEIGJhcmJhY2FuYS10ZXN0LWtleS1tYXRlcmlhbC0x",
            ),
            ("postgresql://app:pa55word@db/prod", "pa55word"),
            ("GET /callback?code=AbC123xyz&state=ok", "AbC123xyz"),
            ("GET /x?access_token=zzz999&page=2", "zzz999"),
            ("login failed password=hunter2 for bob", "hunter2"),
            ('{"client_secret": "cs-998877"}', "cs-998877"),
            ("refresh_token=rt-123456", "rt-123456"),
            ("robot used brb_0123456789ab_Zx9-Kq_Lm2Np4Rs6", "Zx9-Kq_Lm2Np4Rs6"),
        ],
    )
    def test_secrets_inside_strings(self, redactor: Redactor, text: str, secret: str) -> None:
        """JWTs, PEM keys, credentials, URL passwords and secret parameters are cut out."""
        out = redactor({"message": text})["message"]
        assert secret not in out
        assert REDACTED in out

    @pytest.mark.parametrize(
        "text",
        [
            "the token expired",
            "invalid_token: signature",
            "user.created",
            "GET /orders/42 200",
            "brb_0123456789ab",
        ],
    )
    def test_ordinary_strings_survive(self, redactor: Redactor, text: str) -> None:
        """Prose and codes are left alone."""
        assert redactor(text) == text

    def test_other_types(self, redactor: Redactor) -> None:
        """Bytes show only their length; known types become JSON; unknown ones their type name."""

        class Colour(enum.Enum):
            RED = "red"

        class Opaque:
            def __str__(self) -> str:
                return "password=leaked"

        moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
        ident = uuid.UUID(int=7)
        out = redactor(
            {
                "raw": b"\x00key-material",
                "when": moment,
                "id": ident,
                "colour": Colour.RED,
                "obj": Opaque(),
                "nan": float("nan"),
                "n": 3,
                "ok": True,
                "none": None,
            }
        )
        assert out == {
            "raw": "[13 bytes]",
            "when": moment.isoformat(),
            "id": str(ident),
            "colour": "red",
            "obj": "<Opaque>",
            "nan": "nan",
            "n": 3,
            "ok": True,
            "none": None,
        }
        json.dumps(out, allow_nan=False)

    def test_limits(self) -> None:
        """Depth, item counts and string lengths are capped."""
        redactor = Redactor(max_depth=3, max_items=5, max_string=10)
        deep = {"a": {"b": {"c": {"d": 1}}}}
        assert redactor(deep) == {"a": {"b": {"c": "[...]"}}}
        assert redactor(list(range(8))) == [0, 1, 2, 3, 4, "[… 3 more]"]
        assert redactor("x" * 50) == "x" * 10 + "…"
        assert len(redactor({str(i): i for i in range(9)})) == 6
