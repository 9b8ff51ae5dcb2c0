"""The three apps ``bench/http.py`` measures: one ``GET /orders``, three ways of guarding it.

- ``bare``: FastAPI alone, no authentication — the ceiling.
- ``barbacana``: ``secure(app, settings)`` and ``Security(require, scopes=["orders:read"])``,
  with an Ed25519 access token checked by ``TokenVerifier`` (RFC 9068, strict).
- ``textbook``: the chapter's stack (sections 5.1, 5.2, 5.10, 5.11): python-jose HS256
  decode behind ``OAuth2PasswordBearer``, a ``RoleChecker`` dependency, slowapi's
  ``Limiter`` keyed by remote address, and one stdlib ``logging`` line per request.

Every handler returns the same small list. uvicorn starts each app with
``--factory _http_apps:<name>``; the key material (written by the bench, which
also issues the tokens) lives in the folder named by ``HTTP_BENCH_DIR``.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Security, status
from fastapi.security import OAuth2PasswordBearer
from jose import JWTError  # type: ignore[import-untyped]
from jose import jwt as jose_jwt
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address

from barbacana.access import Authenticator, Principal, principal_from_claims, require
from barbacana.settings import Settings, TokenSettings
from barbacana.tokens import KeyRing, SigningKey, TokenIssuer, TokenVerifier
from barbacana.web import secure

__all__ = [
    "AUDIENCE",
    "ISSUER",
    "ORDERS",
    "barbacana",
    "bare",
    "create_barbacana",
    "create_bare",
    "create_textbook",
    "issue_barbacana_token",
    "issue_textbook_token",
    "textbook",
    "write_key_material",
]

DIR_ENV = "HTTP_BENCH_DIR"
ISSUER = "https://auth.bench.test"
AUDIENCE = "orders"
KEY_FILE = "ed25519.pk8"
SECRET_FILE = "hs256.secret"
LOG_FILE = "textbook.log"
#: Generous enough that the textbook limiter counts every request and refuses none.
TEXTBOOK_LIMIT = "1000000/minute"

ORDERS: list[dict[str, Any]] = [
    {"id": "ord-1001", "item": "keyboard", "quantity": 1, "total": "49.90"},
    {"id": "ord-1002", "item": "monitor", "quantity": 2, "total": "318.00"},
    {"id": "ord-1003", "item": "cable", "quantity": 5, "total": "12.50"},
]


# -- key material, shared by the bench (which issues) and the servers (which verify) --


def write_key_material(folder: Path) -> None:
    """Write a fresh Ed25519 signing key (PKCS#8 DER) and an HS256 secret into ``folder``."""
    import secrets

    from barbacana.tokens import generate_signing_key

    key = generate_signing_key("Ed25519", now=time.time(), state="active")
    (folder / KEY_FILE).write_bytes(key.private_pkcs8())
    (folder / SECRET_FILE).write_text(secrets.token_urlsafe(32))
    for path in (folder / KEY_FILE, folder / SECRET_FILE):
        path.chmod(0o600)


def _ring(folder: Path) -> KeyRing:
    der = (folder / KEY_FILE).read_bytes()
    return KeyRing([SigningKey.from_private_pkcs8(der, alg="Ed25519", state="active")])


def _secret(folder: Path) -> str:
    return (folder / SECRET_FILE).read_text().strip()


def issue_barbacana_token(folder: Path) -> str:
    """An access token for ``user-1`` with ``orders:read``, valid for an hour."""
    issuer = TokenIssuer(_ring(folder), issuer=ISSUER, audience=AUDIENCE, access_ttl=3600)
    return issuer.issue_access(
        "user-1", scope=["orders:read"], roles=["user"], client_id="bench"
    ).token


def issue_textbook_token(folder: Path) -> str:
    """The chapter's token (section 5.1): ``sub``, ``roles`` and ``exp``, HS256."""
    expire = datetime.now(UTC).timestamp() + 3600
    claims = {"sub": "user-1", "roles": ["user"], "exp": int(expire)}
    return str(jose_jwt.encode(claims, _secret(folder), algorithm="HS256"))


# -- 1. bare ----------------------------------------------------------------------------


def create_bare() -> FastAPI:
    """FastAPI with the endpoint and nothing else."""
    app = FastAPI()

    @app.get("/orders")
    async def list_orders() -> list[dict[str, Any]]:
        return ORDERS

    return app


# -- 2. Barbacana -------------------------------------------------------------------------


def create_barbacana(folder: Path, *, secured: bool = True, guarded: bool = True) -> FastAPI:
    """The endpoint behind ``secure()`` and ``require`` with a strict Ed25519 verifier.

    ``secured=False`` leaves out ``secure()``, ``guarded=False`` the ``require``
    dependency: the two halves are timed apart by ``bench/http.py --profile``.
    """
    settings = Settings(
        _env_file=None,
        tokens=TokenSettings(issuer=ISSUER, audience=AUDIENCE),
    )
    verifier = TokenVerifier(
        _ring(folder),
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=["Ed25519"],
        leeway=settings.tokens.leeway,
        cache_size=settings.tokens.verified_cache_size,
    )

    async def verify(token: str) -> Principal:
        return principal_from_claims(verifier.verify(token))

    app = FastAPI()
    app.state.barbacana_authenticator = Authenticator(tokens=verify)

    if guarded:

        @app.get("/orders")
        async def list_orders(
            principal: Principal = Security(require, scopes=["orders:read"]),
        ) -> list[dict[str, Any]]:
            return ORDERS

    else:

        @app.get("/orders")
        async def list_orders_unguarded() -> list[dict[str, Any]]:
            return ORDERS

    return secure(app, settings) if secured else app


def create_barbacana_full(folder: Path) -> FastAPI:
    """Barbacana with the whole reference-service stack: also rate limits (in process,
    never refusing here) and the audit middleware writing every request to a
    tamper-evident SQLite trail (group-committed access events)."""
    from contextlib import asynccontextmanager

    from barbacana.audit import AuditSettings
    from barbacana.ratelimit import PolicySettings, RateLimitSettings
    from barbacana.services._protection import Protection
    from barbacana.storage import Database

    settings = Settings(
        _env_file=None,
        data_dir=folder,
        tokens=TokenSettings(issuer=ISSUER, audience=AUDIENCE),
        ratelimit=RateLimitSettings(
            policies=[PolicySettings(name="reads", methods=["GET"], limits=["10000000/minute"])],
            global_policy=PolicySettings(name="global", limits=["10000000/minute"]),
        ),
        audit=AuditSettings(log_events=False),
    )
    verifier = TokenVerifier(
        _ring(folder),
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=["Ed25519"],
        leeway=settings.tokens.leeway,
        cache_size=settings.tokens.verified_cache_size,
    )

    async def verify(token: str) -> Principal:
        return principal_from_claims(verifier.verify(token))

    database = Database(f"sqlite+aiosqlite:///{folder / f'audit-{os.getpid()}.db'}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        await protection.open(database, folder)
        yield
        await protection.close()
        await database.dispose()

    app = FastAPI(lifespan=lifespan)
    authenticator = Authenticator(tokens=verify)
    app.state.barbacana_authenticator = authenticator
    protection = Protection(app, settings, authenticator, service="bench")

    @app.get("/orders")
    async def list_orders(
        principal: Principal = Security(require, scopes=["orders:read"]),
    ) -> list[dict[str, Any]]:
        return ORDERS

    return secure(app, settings)


# -- 3. the chapter's textbook stack ----------------------------------------------------


def create_textbook(folder: Path, *, limit: str = TEXTBOOK_LIMIT) -> FastAPI:
    """Sections 5.1, 5.2, 5.10 and 5.11 of the chapter, as written there."""
    secret_key = _secret(folder)
    algorithm = "HS256"
    oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")

    async def get_current_user(token: str = Depends(oauth2_scheme)) -> dict[str, Any]:
        credentials_exception = HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Could not validate credentials",
            headers={"WWW-Authenticate": "Bearer"},
        )
        try:
            payload: dict[str, Any] = jose_jwt.decode(token, secret_key, algorithms=[algorithm])
        except JWTError:
            raise credentials_exception from None
        if payload.get("sub") is None:
            raise credentials_exception
        return payload

    class RoleChecker:
        def __init__(self, allowed_roles: list[str]) -> None:
            self.allowed_roles = allowed_roles

        def __call__(
            self, current_user_payload: dict[str, Any] = Depends(get_current_user)
        ) -> dict[str, Any]:
            user_roles = current_user_payload.get("roles", [])
            for role in self.allowed_roles:
                if role in user_roles:
                    return current_user_payload
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"Not enough permissions. Required roles: {self.allowed_roles}",
            )

    audit_logger = logging.getLogger("audit")
    audit_logger.setLevel(logging.INFO)
    audit_logger.propagate = False
    if not audit_logger.handlers:
        handler = logging.FileHandler(folder / LOG_FILE, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s - AUDIT - %(levelname)s - %(message)s"))
        audit_logger.addHandler(handler)

    def log_audit_event(actor_id: str | None, action: str, request: Request) -> None:
        audit_logger.info(
            {
                "timestamp": datetime.now(UTC).isoformat(),
                "actor_id": actor_id or "anonymous",
                "action": action,
                "status": "SUCCESS",
                "source_ip": request.client.host if request.client else "N/A",
                "endpoint": str(request.url),
            }
        )

    limiter = Limiter(key_func=get_remote_address)
    allow_user_or_admin = RoleChecker(allowed_roles=["user", "admin"])

    app = FastAPI()
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    @app.get("/orders")
    @limiter.limit(limit)
    async def list_orders(
        request: Request, user_payload: dict[str, Any] = Depends(allow_user_or_admin)
    ) -> list[dict[str, Any]]:
        log_audit_event(user_payload.get("sub"), "LIST_ORDERS", request)
        return ORDERS

    return app


# -- uvicorn --factory entry points -------------------------------------------------------


def _folder() -> Path:
    value = os.environ.get(DIR_ENV)
    if not value:
        raise SystemExit(f"{DIR_ENV} must name the folder holding the bench's key material")
    return Path(value)


def bare() -> FastAPI:
    """``uvicorn --factory _http_apps:bare``."""
    return create_bare()


def barbacana() -> FastAPI:
    """``uvicorn --factory _http_apps:barbacana``."""
    return create_barbacana(_folder())


def barbacana_full() -> FastAPI:
    """``uvicorn --factory _http_apps:barbacana_full``."""
    return create_barbacana_full(_folder())


def textbook() -> FastAPI:
    """``uvicorn --factory _http_apps:textbook``."""
    return create_textbook(_folder())
