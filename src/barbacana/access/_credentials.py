"""This service's client credentials at the identity service, re-read as they rotate.

A service client's secret is rotated with an overlap (``barbacana clients
rotate-secret``): the new secret is written where the service reads it (its
``BARBACANA_CLIENT_SECRET_FILE``) and the previous one keeps working for a
while. :class:`ClientCredentials` re-reads the secret every ``reread_every``
seconds and, when the identity service answers 401, re-reads it at once and
retries the request once, so a running service moves to the new secret
without a restart and without a failed request.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Generator
from urllib.parse import quote

import httpx
import structlog
from pydantic import SecretStr

from ..errors import ConfigurationError
from ..settings import ClientSettings

__all__ = ["ClientCredentials"]

_log = structlog.get_logger("barbacana.access")

SecretReader = Callable[[], SecretStr | None]


def _basic(client_id: str, secret: str) -> str:
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


class ClientCredentials(httpx.Auth):
    """HTTP Basic client authentication whose secret may change while the service runs.

    Args:
        client_id: This service's client id at the identity service.
        read_secret: Reads the current secret (e.g. from its file); may raise
            :class:`ConfigurationError` when it cannot (the last good secret is kept).
        reread_every: Seconds between routine re-reads.
        clock: Monotonic time source for the re-read schedule.

    Raises:
        ConfigurationError: The secret cannot be read now (start-up fails early).
    """

    requires_request_body = True  # a retried request is sent again in full

    def __init__(
        self,
        client_id: str,
        read_secret: SecretReader,
        *,
        reread_every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id = client_id
        self._read = read_secret
        self._reread_every = reread_every
        self._clock = clock
        secret = read_secret()
        if secret is None or not secret.get_secret_value():
            raise ConfigurationError(f"client {client_id!r} has no secret configured")
        self._secret = secret
        self._read_at = clock()

    @classmethod
    def from_settings(
        cls, client: ClientSettings, *, reread_every: float = 30.0
    ) -> ClientCredentials | None:
        """Credentials from ``settings.client``, or ``None`` when no client is configured.

        A ``secret_file`` is re-read as described above; a ``secret`` given
        directly never changes.

        Raises:
            ConfigurationError: The secret file cannot be read.
        """
        if not client.id or (client.secret is None and client.secret_file is None):
            return None
        return cls(client.id, client.resolved_secret, reread_every=reread_every)

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r})"

    @property
    def secret(self) -> SecretStr:
        """The secret in use (masked in ``repr``)."""
        return self._secret

    def reload(self) -> bool:
        """Read the secret again; True when it changed.

        A secret that cannot be read, or reads empty (a file being replaced), is
        logged and the one in use kept.
        """
        self._read_at = self._clock()
        try:
            fresh = self._read()
        except ConfigurationError as exc:
            _log.warning("client_secret_unreadable", client_id=self.client_id, detail=exc.detail)
            return False
        if fresh is None or not fresh.get_secret_value():
            return False
        if fresh.get_secret_value() == self._secret.get_secret_value():
            return False
        self._secret = fresh
        _log.info("client_secret_reloaded", client_id=self.client_id)
        return True

    def _current(self) -> str:
        if self._clock() - self._read_at >= self._reread_every:
            self.reload()
        return self._secret.get_secret_value()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Authenticate ``request``; on 401, retry once if the secret has changed since."""
        sent = self._current()
        request.headers["Authorization"] = _basic(self.client_id, sent)
        response = yield request
        if response.status_code != 401:
            return
        # The secret may have been rotated and the overlap ended: read it again.
        self.reload()
        current = self._secret.get_secret_value()
        if current != sent:
            request.headers["Authorization"] = _basic(self.client_id, current)
            yield request
