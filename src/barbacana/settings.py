"""Settings: built once at the edge, frozen, one nested model per concern.

Every setting is read from the environment with the ``BARBACANA_`` prefix; a
nested setting joins its concern and field with one underscore, so
``BARBACANA_CORS_ORIGINS`` sets ``cors.origins`` and
``BARBACANA_DATABASE_URL`` sets ``database.url``. Sources, in order of
precedence: keyword arguments, environment, ``.env`` file, mounted secrets
directory (``BARBACANA_SECRETS_DIR``), defaults.

Secrets are :class:`~pydantic.SecretStr` and stay masked in ``repr()``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .audit._settings import AuditSettings
from .errors import ConfigurationError
from .outbound._settings import OutboundSettings
from .ratelimit._settings import RateLimitSettings
from .secrets._settings import SecretsSettings
from .transport._settings import TransportSettings
from .websocket._settings import WebSocketSettings

__all__ = [
    "AccessSettings",
    "ClientSettings",
    "CorsSettings",
    "DatabaseSettings",
    "IdentitySettings",
    "KeySettings",
    "RedisSettings",
    "Settings",
    "TokenSettings",
    "WebSettings",
]

Profile = Literal["development", "production"]
SigningAlgorithm = Literal["Ed25519", "ES256", "RS256"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TokenSettings(_Section):
    """Access-token issue and verification (RFC 9068, RFC 8725)."""

    issuer: str = "barbacana"
    audience: str = "barbacana"
    #: Signing algorithm of new keys. ``Ed25519`` is the fully specified name of RFC 9864.
    algorithm: SigningAlgorithm = "Ed25519"
    #: ``alg`` value emitted for Ed25519 keys: the RFC 9864 name, or the deprecated
    #: polymorphic ``EdDSA`` for verifiers that predate it. A key verifies only
    #: with the one name it was published with.
    ed25519_alg_name: Literal["Ed25519", "EdDSA"] = "Ed25519"
    access_ttl: timedelta = timedelta(minutes=10)
    refresh_ttl: timedelta = timedelta(days=14)
    leeway: timedelta = timedelta(seconds=10)
    max_token_bytes: int = Field(8192, ge=512, le=65536)
    #: Where clients obtain tokens (shown in OpenAPI and Swagger UI's Authorize).
    token_url: str = "/token"  # noqa: S105 -- an endpoint path, not a secret
    #: Base URL of the identity service, for a resource service (``None`` on the issuer).
    identity_url: str | None = None
    #: Where a resource service fetches the issuer's keys (default: under ``identity_url``).
    jwks_url: str | None = None
    #: A resource service re-fetches the JWKS this often (learns ``next`` keys early).
    jwks_refresh_interval: timedelta = timedelta(seconds=30)
    #: An unknown ``kid`` triggers at most one JWKS fetch per this interval.
    jwks_min_refresh_interval: timedelta = timedelta(seconds=5)
    #: Cache of verified tokens; ``0`` turns it off.
    verified_cache_size: int = Field(4096, ge=0)
    #: Where a resource service follows revocations (default: under ``identity_url``).
    revocation_url: str | None = None
    revocation_poll_interval: timedelta = timedelta(seconds=1)

    def endpoint(self, name: Literal["jwks", "revocations", "introspect", "token"]) -> str | None:
        """The URL of an identity-service endpoint, from its own setting or ``identity_url``."""
        explicit = {"jwks": self.jwks_url, "revocations": self.revocation_url}.get(name)
        if explicit:
            return explicit
        if not self.identity_url:
            return None
        path = {
            "jwks": "/.well-known/jwks.json",
            "revocations": "/internal/revocations",
            "introspect": "/introspect",
            "token": "/token",  # nosec B105 -- an endpoint path
        }[name]
        return self.identity_url.rstrip("/") + path


class ClientSettings(_Section):
    """This service's own OAuth2 client credentials (for introspection and the feed)."""

    id: str | None = None
    secret: SecretStr | None = None
    #: A file holding the secret (mode 0600), instead of ``secret``.
    secret_file: Path | None = None

    def resolved_secret(self) -> SecretStr | None:
        """The secret, read from ``secret_file`` when set."""
        if self.secret is not None:
            return self.secret
        if self.secret_file is None:
            return None
        try:
            return SecretStr(self.secret_file.read_text().strip())
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read BARBACANA_CLIENT_SECRET_FILE ({exc.strerror}); "
                "check the path and its permissions"
            ) from None


class KeySettings(_Section):
    """Signing-key lifecycle."""

    rotation_interval: timedelta = timedelta(days=30)
    #: A ``next`` key signs only after it has been published this long, so every
    #: resource service's JWKS cache (refreshed every ``tokens.jwks_refresh_interval``)
    #: knows it before the first token it signs arrives.
    publish_delay: timedelta = timedelta(seconds=60)


class IdentitySettings(_Section):
    """Users, passwords and grants."""

    #: Argon2id cost profile; ``test_only_cheap`` is for test suites only.
    password_profile: Literal["rfc9106_low_memory", "test_only_cheap"] = "rfc9106_low_memory"  # noqa: S105 -- a profile name, not a password
    #: Name of the account ``barbacana up`` creates on first run.
    admin_username: str = "admin"


#: Scopes every reference service knows, with the text shown in Swagger UI.
DEFAULT_SCOPES: dict[str, str] = {
    "orders:read": "Read your orders",
    "orders:write": "Create orders",
    "orders:admin": "Read every order and the dashboard",
    "users:read": "Read user accounts",
    "users:write": "Create, disable and change users",
    "apikeys:write": "Create and revoke API keys",
    "keys:admin": "Rotate signing keys",
    "audit:read": "Read the audit trail",
    "chat:use": "Open chat WebSockets",
}


class AccessSettings(_Section):
    """Roles map to scopes; ``*`` in a role's list means every known scope."""

    scopes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_SCOPES))
    roles: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "user": ["orders:read", "orders:write", "chat:use"],
            "admin": ["*"],
        }
    )

    def scopes_for(self, roles: list[str] | tuple[str, ...]) -> frozenset[str]:
        """The scopes granted by a set of roles (unknown roles grant nothing)."""
        granted: set[str] = set()
        for role in roles:
            for scope in self.roles.get(role, ()):
                granted.update(self.scopes if scope == "*" else (scope,))
        return frozenset(granted)


class WebSettings(_Section):
    """The HTTP layer installed by ``secure()``."""

    max_body_bytes: int = Field(1_048_576, ge=1024)
    #: Serve ``/docs`` and ``/openapi.json``; ``barbacana check`` flags it in production.
    docs: bool = True
    hsts_max_age: int = Field(63_072_000, ge=0)
    #: Proxies (CIDRs) whose ``X-Forwarded-*`` headers are believed.
    trusted_proxies: list[str] = Field(default_factory=list)


class CorsSettings(_Section):
    """CORS policy; validated at start-up by ``barbacana.web.cors``."""

    origins: list[str] = Field(default_factory=list)
    allow_credentials: bool = False
    methods: list[str] = Field(default_factory=lambda: ["GET", "POST", "PUT", "PATCH", "DELETE"])
    headers: list[str] = Field(
        default_factory=lambda: ["Authorization", "Content-Type", "X-Request-ID", "X-API-Key"]
    )
    expose_headers: list[str] = Field(
        default_factory=lambda: [
            "X-Request-ID",
            "Location",
            "RateLimit",
            "RateLimit-Policy",
            "Retry-After",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
        ]
    )
    max_age: int = Field(600, ge=0, le=86400)


class DatabaseSettings(_Section):
    """SQLite under the data directory by default; PostgreSQL by URL."""

    url: SecretStr | None = None
    #: A secret reference (``aws://prod/orders-db``, ``vault://secret/data/orders#db``,
    #: ``file://db-credentials``) holding the password, or a JSON object with ``username``
    #: and ``password`` (AWS RDS rotation's shape). It overrides the URL's, is refreshed
    #: every ``secrets.ttl``, and a new value is used without restart (PostgreSQL only).
    credentials_ref: str | None = None
    pool_size: int = Field(10, ge=1)
    echo: bool = False


class RedisSettings(_Section):
    """Shared state for many instances; ``None`` keeps it in process."""

    url: SecretStr | None = None


class Settings(BaseSettings):
    """Everything a Barbacana service or the CLI needs, frozen once built."""

    model_config = SettingsConfigDict(
        env_prefix="BARBACANA_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    profile: Profile = "development"
    data_dir: Path = Path(".barbacana")
    debug: bool = False
    service_name: str = "barbacana"
    #: The URL clients use to reach this service (for metadata and links).
    public_url: str | None = None
    tokens: TokenSettings = TokenSettings()
    key: KeySettings = KeySettings()
    client: ClientSettings = ClientSettings()
    identity: IdentitySettings = IdentitySettings()
    access: AccessSettings = AccessSettings()
    web: WebSettings = WebSettings()
    cors: CorsSettings = CorsSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    transport: TransportSettings = TransportSettings()
    outbound: OutboundSettings = OutboundSettings()
    secrets: SecretsSettings = SecretsSettings()
    ratelimit: RateLimitSettings = RateLimitSettings()
    audit: AuditSettings = AuditSettings()
    websocket: WebSocketSettings = WebSocketSettings()

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def database_url(self) -> str:
        """The effective SQLAlchemy URL (a secret: never log it)."""
        if self.database.url is not None:
            return self.database.url.get_secret_value()
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'barbacana.db'}"

    def require(self, condition: bool, message: str) -> None:
        """Raise :class:`ConfigurationError` with ``message`` unless ``condition``."""
        if not condition:
            raise ConfigurationError(message)
