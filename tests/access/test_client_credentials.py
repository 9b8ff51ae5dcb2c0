"""ClientCredentials: a resource service's client secret, re-read as it rotates."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from pydantic import SecretStr

from barbacana.access import ClientCredentials
from barbacana.errors import ConfigurationError
from barbacana.settings import ClientSettings


class Identity:
    """Stands in for the identity service: accepts only the secrets in ``valid``."""

    def __init__(self, *valid: str) -> None:
        self.valid = set(valid)
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        client, _, secret = base64.b64decode(encoded).decode().partition(":")
        self.seen.append(unquote(secret))
        if scheme == "Basic" and unquote(client) == "orders" and unquote(secret) in self.valid:
            return httpx.Response(200, json={"ok": True, "body": request.content.decode()})
        return httpx.Response(401, json={"title": "Invalid client"})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _client(identity: Identity, auth: ClientCredentials) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(identity), auth=auth)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "orders.client-secret"
    path.write_text("first-secret\n")
    return path


class TestClientCredentials:
    async def test_a_401_rereads_the_file_and_retries_once(self, secret_file: Path) -> None:
        """After the overlap the old secret is refused: the request succeeds with the new one."""
        auth = ClientCredentials.from_settings(ClientSettings(id="orders", secret_file=secret_file))
        assert auth is not None
        identity = Identity("first-secret")
        async with _client(identity, auth) as client:
            assert (await client.post("https://auth/introspect", data={"token": "x"})).is_success
            secret_file.write_text("second-secret\n")  # rotated ...
            identity.valid = {"second-secret"}  # ... and the overlap is over
            answer = await client.post("https://auth/introspect", data={"token": "x"})
        assert answer.status_code == 200
        assert answer.json()["body"] == "token=x"  # the retry carried the body again
        assert identity.seen == ["first-secret", "first-secret", "second-secret"]
        assert auth.secret.get_secret_value() == "second-secret"

    async def test_no_retry_when_the_secret_did_not_change(self, secret_file: Path) -> None:
        """A refused secret that is still the one on file is not sent twice: the 401 stands."""
        auth = ClientCredentials("orders", lambda: SecretStr(secret_file.read_text().strip()))
        identity = Identity()
        async with _client(identity, auth) as client:
            answer = await client.get("https://auth/internal/revocations")
        assert answer.status_code == 401
        assert identity.seen == ["first-secret"]

    async def test_routine_reread_moves_to_the_new_secret_before_any_401(
        self, secret_file: Path
    ) -> None:
        """During the overlap the service switches on its own schedule: no request is refused."""
        clock = Clock()
        auth = ClientCredentials(
            "orders",
            ClientSettings(id="orders", secret_file=secret_file).resolved_secret,
            reread_every=30,
            clock=clock,
        )
        identity = Identity("first-secret", "second-secret")
        async with _client(identity, auth) as client:
            secret_file.write_text("second-secret")
            await client.get("https://auth/internal/revocations")
            clock.now += 30
            await client.get("https://auth/internal/revocations")
        assert identity.seen == ["first-secret", "second-secret"]

    async def test_an_unreadable_or_empty_file_keeps_the_secret_in_use(
        self, secret_file: Path
    ) -> None:
        """A file being replaced or gone for a moment never leaves the service without a secret."""
        auth = ClientCredentials.from_settings(ClientSettings(id="orders", secret_file=secret_file))
        assert auth is not None
        secret_file.write_text("")
        assert auth.reload() is False
        secret_file.unlink()
        assert auth.reload() is False
        assert auth.secret.get_secret_value() == "first-secret"

    def test_secret_is_never_in_repr(self, secret_file: Path) -> None:
        """Neither the object nor its secret attribute show the secret."""
        auth = ClientCredentials.from_settings(ClientSettings(id="orders", secret_file=secret_file))
        assert "first-secret" not in repr(auth)
        assert "first-secret" not in repr(auth.secret)  # type: ignore[union-attr]

    def test_configuration(self, tmp_path: Path) -> None:
        """No client configured: no credentials; a missing file fails at start-up."""
        assert ClientCredentials.from_settings(ClientSettings()) is None
        assert ClientCredentials.from_settings(ClientSettings(id="orders")) is None
        with pytest.raises(ConfigurationError):
            ClientCredentials.from_settings(
                ClientSettings(id="orders", secret_file=tmp_path / "missing")
            )
        with pytest.raises(ConfigurationError):
            ClientCredentials("orders", lambda: SecretStr(""))

    async def test_special_characters_are_form_encoded(self) -> None:
        """RFC 6749 §2.3.1: id and secret are form-urlencoded inside Basic."""
        auth = ClientCredentials("orders", lambda: SecretStr("a:b%41"))
        identity = Identity("a:b%41")  # sent raw, it would read as "a:bA"
        async with _client(identity, auth) as client:
            assert (await client.get("https://auth/internal/revocations")).status_code == 200
