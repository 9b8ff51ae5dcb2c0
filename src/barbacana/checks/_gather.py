"""Facts the checks need from outside the settings: the database and a running service.

Both are read-only: the signing keys are read with one ``SELECT`` (a SQLite
file that does not exist is not created), and the service is asked three
``GET`` requests. Anything that cannot be read becomes a line in
:attr:`CheckContext.unread`, reported as ``BRB-I099``, never a crash.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from .._clock import Clock, system_clock
from ..errors import BarbacanaError, ConfigurationError
from ..settings import Settings
from ..storage import Database
from ._context import CheckContext, Probe, SigningKeyRecord

__all__ = ["DOC_PATHS", "gather", "probe", "read_signing_keys", "verify_context"]

#: Paths that give a service's API away when ``web.docs`` is on.
DOC_PATHS = ("/docs", "/openapi.json")

_KEYS_QUERY = text(
    "SELECT kid, alg, state, created_at, activated_at FROM signing_keys ORDER BY created_at"
)


def _missing_database(url: str) -> str | None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "the database URL is malformed"
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        # Connecting would create an empty file: a check must not change what it inspects.
        if not path or path == ":memory:" or not Path(path).is_file():
            return "no database yet (run `barbacana up` or `barbacana db upgrade`)"
    return None


async def read_signing_keys(
    settings: Settings, *, within: float = 10.0
) -> tuple[tuple[SigningKeyRecord, ...] | None, str | None]:
    """The signing keys' public metadata, or ``None`` and why they could not be read.

    Args:
        settings: Where the database is.
        within: Seconds to wait for the database.
    """
    url = settings.database_url
    missing = _missing_database(url)
    if missing:
        return None, missing
    try:
        db = Database.from_settings(settings, pool_size=1)
    except ConfigurationError as exc:
        return None, exc.detail
    try:
        async with asyncio.timeout(within):
            rows = await _select_keys(db)
    except TimeoutError:
        return None, f"the database did not answer within {within:g} s"
    except (BarbacanaError, SQLAlchemyError, OSError):
        # The driver's message may quote the URL; say what failed, not how.
        return None, "the database could not be read (no identity schema yet?)"
    finally:
        await db.dispose()
    return rows, None


async def _select_keys(db: Database) -> tuple[SigningKeyRecord, ...]:
    async with db.connect() as conn:
        rows = (await conn.execute(_KEYS_QUERY)).all()
    return tuple(
        SigningKeyRecord(
            kid=str(row.kid),
            alg=str(row.alg),
            state=str(row.state),
            created_at=float(row.created_at),
            activated_at=None if row.activated_at is None else float(row.activated_at),
        )
        for row in rows
    )


def verify_context(settings: Settings, ca_file: Path | None = None) -> ssl.SSLContext:
    """How ``--url`` certificates are verified: ``ca_file`` only, or the system's
    roots plus the data directory's dev CA (``pki/ca.pem``) when it exists.

    Raises:
        ConfigurationError: ``ca_file`` is not a readable PEM certificate.
    """
    try:
        if ca_file is not None:
            return ssl.create_default_context(cafile=str(ca_file))
        context = ssl.create_default_context()
        local = settings.data_dir / "pki" / "ca.pem"
        if local.is_file():
            context.load_verify_locations(cafile=str(local))
        return context
    except (OSError, ssl.SSLError):
        raise ConfigurationError(
            f"{ca_file or 'pki/ca.pem'} is not a readable PEM CA certificate"
        ) from None


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            "--url must be an absolute http:// or https:// URL, such as https://127.0.0.1:8000"
        )
    if parts.username or parts.password:
        raise ConfigurationError("--url must not carry credentials")
    return url


async def probe(url: str, *, verify: ssl.SSLContext | bool = True, within: float = 5.0) -> Probe:
    """Ask the service at ``url`` (and its documentation paths) what it answers.

    Redirects are not followed, proxies from the environment are not used;
    each request may take ``within`` seconds.

    Raises:
        ConfigurationError: ``url`` is not an absolute http(s) URL.
    """
    _check_url(url)
    async with httpx.AsyncClient(
        verify=verify, timeout=within, follow_redirects=False, trust_env=False
    ) as client:
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            return Probe(
                url, error=str(exc) or type(exc).__name__, untrusted_certificate=_untrusted(exc)
            )
        headers: dict[str, str] = {}
        for name, value in response.headers.multi_items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        exposed: list[str] = []
        base = url.rstrip("/")
        for path in DOC_PATHS:
            try:
                answer = await client.get(base + path)
            except httpx.HTTPError:
                continue
            if answer.status_code == 200:
                exposed.append(path)
    return Probe(url, status=response.status_code, headers=headers, exposed_docs=tuple(exposed))


def _untrusted(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def gather(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock = system_clock,
    plain_http: bool = False,
    url: str | None = None,
    ca_file: Path | None = None,
    read_database: bool = True,
) -> CheckContext:
    """Build the context of a check run: settings, environment, database, service.

    Args:
        settings: The effective settings.
        environ: The services' environment (default: this process's).
        clock: The time (key ages, certificate expiry).
        plain_http: The listeners serve plain HTTP (``barbacana up --plain-http``).
        url: A running service to probe.
        ca_file: The CA that signs ``url``'s certificate.
        read_database: Read the signing keys (off: key age is not checked).

    Raises:
        ConfigurationError: ``url`` or ``ca_file`` is unusable.
    """
    env = dict(os.environ if environ is None else environ)
    unread: dict[str, str] = {}
    keys: tuple[SigningKeyRecord, ...] | None = None
    if read_database:
        keys, why = await read_signing_keys(settings)
        if why:
            unread["signing_keys"] = why
    found = None
    if url is not None:
        _check_url(url)
        verify: ssl.SSLContext | bool = (
            verify_context(settings, ca_file) if url.lower().startswith("https://") else True
        )
        found = await probe(url, verify=verify)
    return CheckContext(
        settings=settings,
        now=clock(),
        environ=env,
        plain_http=plain_http,
        url=url,
        signing_keys=keys,
        unread=unread,
        probe=found,
    )
