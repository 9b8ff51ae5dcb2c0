"""The identity service's internal ticket endpoints, as a WebSocket service calls them.

Without a shared Redis, tickets live in the identity service's process, so a
WebSocket service redeems them over HTTP — mTLS between services, plus the
service's client credentials (the same two checks as the revocation feed,
DESIGN invariant 12). The same client asks for a revoked user's current
state, to choose the close code of their open sockets.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from ..errors import ConfigurationError
from ._guard import SubjectStatus
from ._tickets import TicketRecord, well_formed_ticket
from .errors import TicketStoreUnavailableError

__all__ = ["REDEEM_PATH", "SUBJECT_PATH", "TICKETS_PATH", "IdentityTickets"]

#: Where clients trade a bearer token for a ticket.
TICKETS_PATH = "/ws/tickets"
#: Where a WebSocket service redeems a ticket (internal: peer certificate and client credentials).
REDEEM_PATH = "/internal/ws/tickets/redeem"
#: Where a WebSocket service reads a user's state (internal); ``{sub}`` is the user id.
SUBJECT_PATH = "/internal/ws/subjects/{sub}"


class IdentityTickets:
    """Redeems tickets at the identity service and reads users' state.

    Args:
        identity_url: Base URL of the identity service.
        client: An HTTP client authenticated as this service (``auth=`` Basic
            client credentials; an mTLS client in production).

    Raises:
        ConfigurationError: ``identity_url`` is not an http(s) URL.
    """

    def __init__(self, identity_url: str, client: httpx.AsyncClient) -> None:
        if not identity_url.startswith(("http://", "https://")):
            raise ConfigurationError("the identity service URL must be an http or https URL")
        self._base = identity_url.rstrip("/")
        self._client = client

    def __repr__(self) -> str:
        return f"IdentityTickets(url={self._base!r})"

    async def redeem(self, ticket: str) -> TicketRecord | None:
        """The ticket's record, removing it at the identity service; ``None`` if not valid.

        Raises:
            TicketStoreUnavailableError: The identity service did not answer properly.
        """
        if not well_formed_ticket(ticket):
            return None
        try:
            response = await self._client.post(self._base + REDEEM_PATH, json={"ticket": ticket})
        except httpx.HTTPError as exc:
            raise TicketStoreUnavailableError("the identity service cannot be reached") from exc
        if response.status_code != 200:
            raise TicketStoreUnavailableError(
                f"the identity service answered HTTP {response.status_code} to a redemption"
            )
        try:
            record = response.json().get("record")
        except (ValueError, AttributeError):
            raise TicketStoreUnavailableError("the identity service did not answer JSON") from None
        return None if record is None else TicketRecord.parse(record)

    async def subject(self, sub: str) -> SubjectStatus | None:
        """The user's state now, or ``None`` when the identity service cannot say."""
        url = self._base + SUBJECT_PATH.format(sub=quote(sub, safe=""))
        try:
            response = await self._client.get(url)
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            return None
        roles = body.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            return None
        return SubjectStatus(active=body["active"], roles=tuple(roles))
