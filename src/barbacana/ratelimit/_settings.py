"""Rate-limit settings: policies, store, failure mode and login-guard thresholds.

Everything here comes from configuration, not code: the environment
(``BARBACANA_RATELIMIT_FAILURE_MODE=closed``, ``BARBACANA_RATELIMIT_POLICIES='[...]'``
as JSON) or a TOML file named by ``policy_file`` (or read with
:meth:`RateLimitSettings.from_toml`)::

    [ratelimit]
    algorithm = "sliding_window_counter"
    failure_mode = "fallback"

    [[ratelimit.policies]]
    name = "token"
    route = "/token"
    methods = ["POST"]
    limits = ["10/minute", "50/hour"]

    [[ratelimit.policies]]
    name = "orders-write"
    route = "/orders"
    methods = ["POST"]
    limits = ["5/minute"]                       # tiers without an entry of their own
    tiers = { user = ["30/minute"], admin = ["300/minute"] }
    cost = 1

A request meets the first policy whose route template and method match it,
plus the global policy; each policy's limits are counted per identity, per
method and per route template.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ..errors import ConfigurationError
from ._algorithms import AlgorithmName
from ._base import FailureMode, Store, store_from_url
from ._limits import parse_limit

if TYPE_CHECKING:
    from ._guard import LoginGuard

__all__ = [
    "DEFAULT_TIERS",
    "LoginGuardSettings",
    "PolicySettings",
    "RateLimitSettings",
]

#: Tiers from least to most trusted: a principal gets the highest tier among its roles.
DEFAULT_TIERS = ("anonymous", "user", "admin")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PolicySettings(_Section):
    """One named policy: which requests, which limits for which tier, what they cost."""

    #: Shown to clients in ``RateLimit-Policy``; letters, digits, ``_``, ``.``, ``-``.
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,48}$")
    #: A route template exactly as the app declares it (``/orders/{order_id}``), or ``*``.
    route: str = "*"
    #: HTTP methods (``*`` for any).
    methods: list[str] = Field(default_factory=lambda: ["*"])
    #: Limits for every tier that has no entry in ``tiers`` (``"10/second"``...).
    limits: list[str] = Field(default_factory=list)
    #: Limits per tier, replacing ``limits`` for that tier.
    tiers: dict[str, list[str]] = Field(default_factory=dict)
    #: Units of quota one request costs.
    cost: int = Field(1, ge=1)
    #: Overrides the settings' algorithm for this policy.
    algorithm: AlgorithmName | None = None
    #: Overrides the settings' failure mode for this policy.
    failure_mode: FailureMode | None = None

    @field_validator("route")
    @classmethod
    def _route(cls, value: str) -> str:
        if value != "*" and not value.startswith("/"):
            raise ConfigurationError(f"policy route {value!r} must be '*' or start with '/'")
        return value

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        return [m.strip().upper() for m in value]

    @model_validator(mode="after")
    def _limits_parse(self) -> PolicySettings:
        for text in [*self.limits, *(t for ts in self.tiers.values() for t in ts)]:
            limit = parse_limit(text)
            if self.cost > limit.amount:
                raise ConfigurationError(
                    f"policy {self.name!r}: cost {self.cost} exceeds the limit {text!r}"
                )
        return self


class LoginGuardSettings(_Section):
    """Brute-force protection on login (OWASP A07; ASVS 2.2.1).

    After ``delay_after`` consecutive failures each further attempt waits
    ``base_delay · 2^(n - delay_after)`` seconds (at most ``max_delay``); at
    ``lock_after`` failures the account is locked for ``lock_seconds``, and
    one more failure after that locks it again. Addresses are counted the same
    way with their own, higher thresholds (password spraying). Failures are
    forgotten ``failure_window`` seconds after the last one, and a success
    resets the account (never the address).
    """

    delay_after: int = Field(3, ge=1)
    base_delay: float = Field(1.0, gt=0, le=60)
    max_delay: float = Field(30.0, gt=0, le=300)
    #: Keycloak locks after 30 failures by default; never allow more.
    lock_after: int = Field(10, ge=1, le=30)
    lock_seconds: int = Field(900, ge=1)
    failure_window: int = Field(43_200, ge=60)
    address_delay_after: int = Field(10, ge=1)
    address_lock_after: int = Field(100, ge=1)
    address_lock_seconds: int = Field(900, ge=1)
    #: Most accounts and addresses the in-process guard remembers.
    max_entries: int = Field(100_000, ge=16)
    #: First part of the guard's Redis keys.
    key_prefix: str = "brb:lg"

    @model_validator(mode="after")
    def _order(self) -> LoginGuardSettings:
        if self.delay_after >= self.lock_after:
            raise ConfigurationError("login guard: delay_after must be below lock_after")
        if self.address_delay_after >= self.address_lock_after:
            raise ConfigurationError(
                "login guard: address_delay_after must be below address_lock_after"
            )
        return self


def _default_policies() -> list[PolicySettings]:
    return [
        # Strict: the password grant is where credentials get guessed (the
        # LoginGuard counts failures; this caps attempts of any outcome).
        PolicySettings(
            name="token", route="/token", methods=["POST"], limits=["10/minute", "50/hour"]
        ),
        # Moderate: writes cost the service more and change state.
        PolicySettings(
            name="writes",
            methods=["POST", "PUT", "PATCH", "DELETE"],
            limits=["30/minute"],
            tiers={"user": ["120/minute"], "admin": ["600/minute"]},
        ),
        # Generous: reads.
        PolicySettings(
            name="reads",
            methods=["GET", "HEAD", "OPTIONS"],
            limits=["120/minute"],
            tiers={"user": ["600/minute"], "admin": ["3000/minute"]},
        ),
    ]


def _default_global() -> PolicySettings:
    return PolicySettings(
        name="global",
        limits=["600/minute"],
        tiers={"user": ["1200/minute"], "admin": ["6000/minute"]},
    )


class RateLimitSettings(_Section):
    """Rate limiting for one service (``Settings.ratelimit``)."""

    enabled: bool = True
    #: ``None``: count in process; ``redis://...`` to share counts between instances.
    store_url: SecretStr | None = None
    key_prefix: str = Field("brb:rl", pattern=r"^[^{}\s]{1,32}$")
    algorithm: AlgorithmName = "sliding_window_counter"
    #: When the shared store is down: admit (open), answer 503 (closed), or count in process.
    failure_mode: FailureMode = "fallback"
    #: Seconds to wait for Redis before failing over, and between reconnection probes.
    timeout: float = Field(0.5, gt=0, le=10)
    retry_interval: float = Field(1.0, gt=0, le=60)
    #: Most counters the in-process store keeps.
    max_keys: int = Field(100_000, ge=16)
    #: Tier names, least trusted first.
    tiers: list[str] = Field(default_factory=lambda: list(DEFAULT_TIERS), min_length=1)
    policies: list[PolicySettings] = Field(default_factory=_default_policies)
    #: Applies to every request of an identity, on top of its route's policy.
    global_policy: PolicySettings | None = Field(default_factory=_default_global)
    #: A TOML file whose ``policies`` / ``global_policy`` (top level or under
    #: ``[ratelimit]``) are read when the settings are built; other sources win.
    policy_file: Path | None = None
    login: LoginGuardSettings = Field(default_factory=LoginGuardSettings)

    @model_validator(mode="before")
    @classmethod
    def _read_policy_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("policy_file"):
            return data
        table = _read_toml(Path(data["policy_file"]))
        return {**table, **data}

    @model_validator(mode="after")
    def _consistent(self) -> RateLimitSettings:
        names = [p.name for p in self.policies]
        if self.global_policy is not None:
            names.append(self.global_policy.name)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(f"rate-limit policy names must be unique: {duplicates}")
        for policy in [*self.policies, *([self.global_policy] if self.global_policy else [])]:
            unknown = sorted(set(policy.tiers) - set(self.tiers))
            if unknown:
                raise ConfigurationError(
                    f"policy {policy.name!r} names unknown tiers {unknown}; known: {self.tiers}"
                )
        return self

    def store_url_or(self, redis_url: str | None) -> str | None:
        """This concern's store URL, else the service-wide Redis URL, else ``None`` (memory)."""
        return self.store_url.get_secret_value() if self.store_url is not None else redis_url

    def build_store(self, redis_url: str | None = None) -> Store:
        """The store these settings name (``redis_url``: the service-wide Redis, if any).

        Raises:
            ConfigurationError: the URL's scheme is unknown.
        """
        url = self.store_url_or(redis_url)
        if url is None or url.startswith("memory://"):
            return store_from_url(url, max_keys=self.max_keys)
        return store_from_url(
            url,
            key_prefix=self.key_prefix,
            timeout=self.timeout,
            retry_interval=self.retry_interval,
            max_keys=self.max_keys,
        )

    def build_login_guard(self, redis_url: str | None = None) -> LoginGuard:
        """The login guard, on the same store as the limits.

        Raises:
            ConfigurationError: the URL's scheme is unknown.
        """
        from ._guard import login_guard_from_url

        url = self.store_url_or(redis_url)
        if url is None or url.startswith("memory://"):
            return login_guard_from_url(url, self.login)
        return login_guard_from_url(
            url, self.login, timeout=self.timeout, retry_interval=self.retry_interval
        )

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> RateLimitSettings:
        """Settings from a TOML file (its ``[ratelimit]`` table, or the whole file).

        Raises:
            ConfigurationError: the file is missing or not valid TOML.
        """
        return cls.model_validate({**_read_toml(Path(path)), **overrides})


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read rate-limit policy file {path}: {exc.strerror}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"rate-limit policy file {path} is not valid TOML: {exc}"
        ) from None
    section = table.get("ratelimit", table)
    if not isinstance(section, dict):
        raise ConfigurationError(f"rate-limit policy file {path}: [ratelimit] must be a table")
    return section
