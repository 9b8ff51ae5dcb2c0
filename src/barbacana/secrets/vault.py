"""Secrets from HashiCorp Vault (or OpenBao) KV version 2, through hvac.

References name a KV v2 secret and one of its fields::

    vault://secret/data/app#db_password     API form: mount ``secret``, path ``app``
    vault://secret/app#db_password          CLI form (``vault kv get secret/app``): the same secret
    vault://kv/team-a/data/app?version=3#f  a mount with a slash (API form), pinned version

In the CLI form the first segment is the mount. Without ``#field`` the secret
must hold exactly one field.

The service logs in with a token, AppRole or Kubernetes auth. Its Vault token
is renewed once ``renew_fraction`` of its time to live has passed (Vault's
lease model: a token not renewed before its TTL ends is revoked); when it is
not renewable, or renewal is capped by the token's maximum TTL, AppRole and
Kubernetes auth log in again, and token auth reports the coming expiry. A
read refused with 403 triggers one fresh login and retry. hvac is synchronous:
every call runs in a worker thread so the event loop never blocks.

``VAULT_ADDR``, ``VAULT_TOKEN``, ``VAULT_NAMESPACE``, ``VAULT_CACERT`` and
``VAULT_CAPATH`` are honoured when the settings leave them unset.
``VAULT_SKIP_VERIFY`` is deliberately not: turn TLS verification off only by
using ``vault+http://`` against a local development server.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import SecretStr

from .._clock import Clock, system_clock
from ._base import SecretSource, SourceURL
from ._value import SecretValue, SourceHealth, pick_field, split_field
from .errors import (
    SecretAccessDeniedError,
    SecretMalformedError,
    SecretNotFoundError,
    SecretsConfigurationError,
    SecretSourceUnavailableError,
)

if TYPE_CHECKING:
    from ._settings import SecretsSettings

__all__ = [
    "VaultAppRoleAuth",
    "VaultAuth",
    "VaultKubernetesAuth",
    "VaultSource",
    "VaultTokenAuth",
]

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]*$")
_INSTALL_HINT = "Vault support needs hvac: pip install barbacana[vault]"


def _import_hvac() -> Any:
    try:
        import hvac
    except ImportError:
        raise SecretsConfigurationError(_INSTALL_HINT) from None
    return hvac


class VaultAuth(ABC):
    """How the service proves who it is to Vault; ``repr()`` never shows a credential."""

    #: Name of the auth method (``token``, ``approle``, ``kubernetes``).
    method: ClassVar[str]
    #: Whether a new token can be obtained without an operator (false for a given token).
    can_login_again: ClassVar[bool] = True

    @abstractmethod
    def login(self, client: Any) -> Mapping[str, Any]:
        """Authenticate ``client`` (an ``hvac.Client``) and return the response's ``auth`` block.

        The block has at least ``lease_duration`` (seconds; 0 for no expiry) and
        ``renewable``. Runs in a worker thread.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class VaultTokenAuth(VaultAuth):
    """A token given by the operator (``VAULT_TOKEN``); it cannot be replaced when it expires."""

    method = "token"
    can_login_again = False

    def __init__(self, token: SecretStr | str) -> None:
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        if not self._token.get_secret_value():
            raise SecretsConfigurationError("the Vault token is empty")

    def login(self, client: Any) -> Mapping[str, Any]:
        client.token = self._token.get_secret_value()
        data = client.auth.token.lookup_self()["data"]
        return {
            "lease_duration": int(data.get("ttl") or 0),
            "renewable": bool(data.get("renewable")),
            "requested_ttl": int(data.get("creation_ttl") or data.get("ttl") or 0),
        }


class VaultAppRoleAuth(VaultAuth):
    """AppRole: a role id (like a user name) and a secret id (like a password)."""

    method = "approle"

    def __init__(
        self, role_id: str, secret_id: SecretStr | str | None = None, *, mount: str = "approle"
    ) -> None:
        if not role_id:
            raise SecretsConfigurationError("AppRole auth needs a role id")
        self.role_id = role_id
        self._secret_id = (
            secret_id if isinstance(secret_id, SecretStr | None) else SecretStr(secret_id)
        )
        self.mount = mount

    def login(self, client: Any) -> Mapping[str, Any]:
        secret_id = self._secret_id.get_secret_value() if self._secret_id is not None else None
        response = client.auth.approle.login(
            role_id=self.role_id, secret_id=secret_id, mount_point=self.mount, use_token=True
        )
        auth: Mapping[str, Any] = response["auth"]
        return auth

    def __repr__(self) -> str:
        return f"VaultAppRoleAuth(role_id={self.role_id!r}, mount={self.mount!r})"


class VaultKubernetesAuth(VaultAuth):
    """Kubernetes auth: the pod's service-account token, read again at each login."""

    method = "kubernetes"

    def __init__(
        self,
        role: str,
        *,
        token_path: Path | str = Path("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        mount: str = "kubernetes",
    ) -> None:
        if not role:
            raise SecretsConfigurationError("Kubernetes auth needs a Vault role")
        self.role = role
        self.token_path = Path(token_path)
        self.mount = mount

    def login(self, client: Any) -> Mapping[str, Any]:
        try:
            jwt = self.token_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretAccessDeniedError(
                f"cannot read the service-account token {self.token_path}: {exc.strerror}"
            ) from exc
        response = client.auth.kubernetes.login(self.role, jwt, mount_point=self.mount)
        auth: Mapping[str, Any] = response["auth"]
        return auth

    def __repr__(self) -> str:
        return f"VaultKubernetesAuth(role={self.role!r}, mount={self.mount!r})"


def parse_kv_name(name: str) -> tuple[str, str, int | None, str | None]:
    """Split a reference name into mount, path, version and field.

    Raises:
        SecretsConfigurationError: empty segments, ``..``, or a bad version.
    """
    location, fieldname = split_field(name)
    location, _, query = location.partition("?")
    version: int | None = None
    if query:
        key, _, value = query.partition("=")
        if key != "version" or not value.isdigit() or int(value) < 1:
            raise SecretsConfigurationError(
                f"vault://{name}: the only option is ?version=<positive integer>"
            )
        version = int(value)
    if "/data/" in location:
        mount, _, path = location.partition("/data/")
    else:
        mount, _, path = location.partition("/")
    segments = [*mount.split("/"), *path.split("/")]
    if not mount or not path or not all(_SEGMENT.match(s) for s in segments):
        raise SecretsConfigurationError(
            f"vault://{name} is not a KV v2 secret; write vault://<mount>/data/<path>#<field> "
            "or vault://<mount>/<path>#<field>"
        )
    return mount, path, version, fieldname


class VaultSource(SecretSource):
    """HashiCorp Vault or OpenBao, KV secrets engine version 2.

    Args:
        address: Server URL (``https://vault.internal:8200``).
        auth: How to log in.
        namespace: Vault Enterprise / OpenBao namespace.
        verify: ``True``, or a CA bundle file or directory that signs the server certificate.
        timeout: Seconds for one HTTP request.
        renew_fraction: Renew the token once this fraction of its lease has passed.
        clock: Time source for lease bookkeeping.
        name: The source name references use (``vault`` by default).
    """

    scheme = "vault"

    def __init__(
        self,
        address: str,
        *,
        auth: VaultAuth,
        namespace: str | None = None,
        verify: bool | str = True,
        timeout: float = 10.0,
        renew_fraction: float = 2 / 3,
        clock: Clock = system_clock,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if not 0.0 < renew_fraction < 1.0:
            raise SecretsConfigurationError("renew_fraction must be between 0 and 1")
        hvac = _import_hvac()
        self.address = address.rstrip("/")
        self.namespace = namespace
        self.auth = auth
        self.renew_fraction = renew_fraction
        self._clock = clock
        # token="" stops hvac from reading VAULT_TOKEN or ~/.vault-token behind our back.
        self._client = hvac.Client(
            url=self.address,
            token="",  # nosec B106 -- no credential: stops hvac reading VAULT_TOKEN itself
            verify=verify,
            timeout=timeout,
            namespace=namespace,
        )
        self._hvac = hvac
        self._lock = threading.RLock()
        self._logged_in = False
        self._issued_at = 0.0
        self._expires_at: float | None = None
        self._renewable = False
        self._requested_ttl = 0
        #: Counters for health reports.
        self.logins = 0
        self.renewals = 0
        self.renewal_failures = 0

    @classmethod
    def from_url(
        cls, url: SourceURL, settings: SecretsSettings, *, clock: Clock = system_clock
    ) -> Self:
        """``vault://host:8200`` (HTTPS), ``vault+http://host:8200``, ``vault://`` (VAULT_ADDR)."""
        if url.location:
            if url.parts.path not in ("", "/"):
                raise SecretsConfigurationError(
                    "a vault:// source URL names a server only; secret paths go in references"
                )
            transport = "http" if url.scheme == "vault+http" else "https"
            address = f"{transport}://{url.parts.netloc}"
        else:
            address = os.environ.get("VAULT_ADDR", "")
            if not address:
                raise SecretsConfigurationError(
                    "vault:// names no server and VAULT_ADDR is not set; "
                    "write vault://vault.internal:8200 or set VAULT_ADDR"
                )
        namespace = (
            url.pop("namespace") or settings.vault_namespace or os.environ.get("VAULT_NAMESPACE")
        )
        method = url.pop("auth") or settings.vault_auth
        url.finish()
        auth: VaultAuth
        if method == "token":
            token = settings.vault_token or (
                SecretStr(os.environ["VAULT_TOKEN"]) if os.environ.get("VAULT_TOKEN") else None
            )
            if token is None:
                raise SecretsConfigurationError(
                    "Vault token auth needs BARBACANA_SECRETS_VAULT_TOKEN or VAULT_TOKEN"
                )
            auth = VaultTokenAuth(token)
        elif method == "approle":
            role_id = settings.vault_role_id or os.environ.get("VAULT_ROLE_ID")
            secret_id = settings.vault_secret_id or (
                SecretStr(os.environ["VAULT_SECRET_ID"])
                if os.environ.get("VAULT_SECRET_ID")
                else None
            )
            if not role_id:
                raise SecretsConfigurationError(
                    "Vault AppRole auth needs BARBACANA_SECRETS_VAULT_ROLE_ID "
                    "(and usually BARBACANA_SECRETS_VAULT_SECRET_ID)"
                )
            auth = VaultAppRoleAuth(role_id, secret_id, mount=settings.vault_approle_mount)
        elif method == "kubernetes":
            if not settings.vault_kubernetes_role:
                raise SecretsConfigurationError(
                    "Vault Kubernetes auth needs BARBACANA_SECRETS_VAULT_KUBERNETES_ROLE"
                )
            auth = VaultKubernetesAuth(
                settings.vault_kubernetes_role,
                token_path=settings.vault_kubernetes_token_path,
                mount=settings.vault_kubernetes_mount,
            )
        else:
            raise SecretsConfigurationError(
                f"unknown Vault auth method {method!r}; use token, approle or kubernetes"
            )
        verify: bool | str = True
        cacert = (
            settings.vault_cacert
            or os.environ.get("VAULT_CACERT")
            or os.environ.get("VAULT_CAPATH")
        )
        if cacert:
            verify = str(cacert)
        return cls(
            address,
            auth=auth,
            namespace=namespace,
            verify=verify,
            timeout=settings.timeout.total_seconds(),
            renew_fraction=settings.vault_renew_fraction,
            clock=clock,
        )

    @property
    def location(self) -> str:
        where = self.address
        if self.namespace:
            where += f" (namespace {self.namespace})"
        return where

    def validate_name(self, name: str) -> None:
        parse_kv_name(name)

    # -- errors ---------------------------------------------------------------

    @contextmanager
    def _translate(self, secret: str | None, action: str) -> Iterator[None]:
        """Turn hvac and requests errors into ours; Vault's own message is not echoed."""
        hvac = self._hvac
        import requests

        try:
            yield
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as exc:
            raise SecretAccessDeniedError(
                f"Vault refused to {action} (permission denied)",
                secret=secret,
                source=self.description,
            ) from exc
        except hvac.exceptions.InvalidPath as exc:
            raise SecretNotFoundError(
                f"Vault has no such secret or version ({action})",
                secret=secret,
                source=self.description,
            ) from exc
        except hvac.exceptions.InvalidRequest as exc:
            raise SecretAccessDeniedError(
                f"Vault rejected the request to {action}", secret=secret, source=self.description
            ) from exc
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise SecretSourceUnavailableError(
                f"Vault did not answer the request to {action} ({type(exc).__name__})",
                secret=secret,
                source=self.description,
            ) from exc

    # -- token lifecycle ------------------------------------------------------

    def _login(self) -> None:
        with self._lock:
            self._client.token = ""  # nosec B105 -- drop the old token before logging in
            with self._translate(None, f"log in with {self.auth.method} auth"):
                auth = self.auth.login(self._client)
            now = self._clock()
            lease = int(auth.get("lease_duration") or 0)
            self._issued_at = now
            self._expires_at = now + lease if lease > 0 else None
            self._renewable = bool(auth.get("renewable"))
            self._requested_ttl = int(auth.get("requested_ttl") or lease)
            self._logged_in = True
            self.logins += 1

    def _renew_due(self, now: float) -> bool:
        if self._expires_at is None:
            return False
        lifetime = self._expires_at - self._issued_at
        return now >= self._issued_at + self.renew_fraction * lifetime

    def _ensure_token(self) -> None:
        """Log in, renew, or log in again, so the token outlives the next request."""
        with self._lock:
            if not self._logged_in:
                self._login()
                return
            now = self._clock()
            if not self._renew_due(now):
                return
            if self._renewable:
                try:
                    with self._translate(None, "renew the token"):
                        response = self._client.auth.token.renew_self(
                            increment=f"{self._requested_ttl}s"
                        )
                except (SecretAccessDeniedError, SecretSourceUnavailableError):
                    self.renewal_failures += 1
                    if self.auth.can_login_again:
                        self._login()
                        return
                    if self._expires_at is not None and now >= self._expires_at:
                        raise
                    return  # still valid for a while: try again at the next tick
                lease = int(response["auth"].get("lease_duration") or 0)
                if lease < self._requested_ttl and self.auth.can_login_again:
                    # Capped by the token's maximum TTL: a fresh login gives a full lease.
                    self._login()
                    return
                self._issued_at = now
                self._expires_at = now + lease
                self._renewable = bool(response["auth"].get("renewable"))
                self.renewals += 1
                if lease > 0:
                    return
            if self.auth.can_login_again:
                self._login()
                return
            if self._expires_at is not None and now >= self._expires_at:
                raise SecretAccessDeniedError(
                    "the Vault token has expired and cannot be renewed; give the service a new "
                    "token or use AppRole or Kubernetes auth",
                    source=self.description,
                )

    # -- reads ----------------------------------------------------------------

    def _read(self, name: str) -> SecretValue:
        mount, path, version, fieldname = parse_kv_name(name)
        ref = f"{self.name}://{name}"
        self._ensure_token()
        for attempt in (1, 2):
            try:
                with self._translate(ref, f"read {mount}/data/{path}"):
                    response = self._client.secrets.kv.v2.read_secret_version(
                        path=path,
                        mount_point=mount,
                        version=version,
                        raise_on_deleted_version=True,
                    )
                break
            except SecretAccessDeniedError:
                if attempt == 1 and self.auth.can_login_again:
                    self._login()  # the token may have been revoked; one fresh login
                    continue
                raise
        try:
            data = response["data"]["data"]
            got_version = response["data"]["metadata"]["version"]
        except (KeyError, TypeError):
            raise SecretMalformedError(
                "Vault answered without KV v2 data; is the mount KV version 2?",
                secret=ref,
                source=self.description,
            ) from None
        if not isinstance(data, dict):
            raise SecretMalformedError(
                "the KV secret holds no fields", secret=ref, source=self.description
            )
        value = pick_field(data, fieldname, secret=ref, source=self.description)
        if not value:
            raise SecretMalformedError("the field is empty", secret=ref, source=self.description)
        return SecretValue(value, version=str(got_version))

    async def get(self, name: str) -> SecretValue:
        return await asyncio.to_thread(self._read, name)

    async def maintain(self) -> None:
        await asyncio.to_thread(self._ensure_token)

    def _probe(self) -> SourceHealth:
        try:
            with self._translate(None, "report its health"):
                health = self._client.sys.read_health_status(method="GET")
        except SecretsConfigurationError:
            raise
        except SecretSourceUnavailableError as exc:
            return SourceHealth(self.description, False, exc.detail)
        except SecretAccessDeniedError as exc:  # pragma: no cover - health is unauthenticated
            return SourceHealth(self.description, False, exc.detail)
        if not isinstance(health, dict):
            status = getattr(health, "status_code", "?")
            return SourceHealth(
                self.description, False, f"Vault is not ready (health status {status})"
            )
        if health.get("sealed"):
            return SourceHealth(self.description, False, "Vault is sealed")
        try:
            self._ensure_token()
            with self._translate(None, "look up its own token"):
                data = self._client.auth.token.lookup_self()["data"]
        except (SecretAccessDeniedError, SecretSourceUnavailableError) as exc:
            return SourceHealth(self.description, False, exc.detail)
        info = {
            "version": health.get("version"),
            "auth": self.auth.method,
            "token_ttl": data.get("ttl"),
            "token_renewable": bool(data.get("renewable")),
            "logins": self.logins,
            "renewals": self.renewals,
            "renewal_failures": self.renewal_failures,
        }
        warnings: list[str] = []
        if self.address.startswith("http://"):
            warnings.append("Vault is reached over plain HTTP; use HTTPS outside development")
        return SourceHealth(self.description, True, "ok", tuple(warnings), info)

    async def check(self) -> SourceHealth:
        return await asyncio.to_thread(self._probe)

    def close(self) -> None:
        self._client.adapter.close()
