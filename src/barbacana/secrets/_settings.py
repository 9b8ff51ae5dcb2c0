"""Settings of the ``secrets`` concern (``BARBACANA_SECRETS_<FIELD>``).

Sources are listed as URLs (``sources``); the options a URL cannot carry safely
(credentials, CA files) are fields here. Vault options fall back to the
standard Vault environment variables (``VAULT_ADDR``, ``VAULT_TOKEN``,
``VAULT_NAMESPACE``, ``VAULT_CACERT``) when unset, and AWS options to boto3's own
chain (``AWS_REGION``, ``AWS_ENDPOINT_URL``, profiles, instance roles).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = ["SecretsSettings"]

VaultAuthMethod = Literal["token", "approle", "kubernetes"]


class SecretsSettings(BaseModel):
    """Where secrets come from, and how long a fetched value is trusted.

    Examples of ``sources`` (each source is named after its scheme, or after
    ``?name=`` in its URL; a secret reference ``<name>://...`` picks it)::

        env://                          process environment
        env://.env                      process environment, then a .env file (development)
        file:///run/secrets             a mounted directory, one file per secret
        vault://vault.internal:8200     HashiCorp Vault or OpenBao over HTTPS
        vault://                        the same, at VAULT_ADDR
        vault+http://127.0.0.1:8200     plain HTTP (a local dev server only)
        aws://                          AWS Secrets Manager (region and endpoint below)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Source URLs, in the order they are built; names must be unique.
    sources: list[str] = Field(default_factory=lambda: ["env://"])
    #: A mounted secrets directory (Docker or Kubernetes secrets); adds a ``file`` source.
    dir: Path | None = None
    #: Reference of the key-encryption key that protects keys at rest (see ``barbacana.crypto``).
    kek_ref: str = "file://kek"
    #: A cached value is fetched again once it is this old.
    ttl: timedelta = Field(timedelta(minutes=5), gt=timedelta(0))
    #: How often the background task wakes to refresh due values and renew Vault tokens.
    refresh_interval: timedelta = Field(timedelta(seconds=30), gt=timedelta(0))
    #: Bound on one call to a source (connect plus read).
    timeout: timedelta = Field(timedelta(seconds=10), gt=timedelta(0))

    #: Vault: how this service logs in.
    vault_auth: VaultAuthMethod = "token"
    #: Vault: the token for ``token`` auth (falls back to ``VAULT_TOKEN``).
    vault_token: SecretStr | None = None
    #: Vault: Enterprise/OpenBao namespace (falls back to ``VAULT_NAMESPACE``).
    vault_namespace: str | None = None
    #: Vault: CA bundle that signs the server certificate (falls back to ``VAULT_CACERT``).
    vault_cacert: Path | None = None
    #: Vault AppRole: role id (not secret on its own) and secret id.
    vault_role_id: str | None = None
    vault_secret_id: SecretStr | None = None
    vault_approle_mount: str = "approle"
    #: Vault Kubernetes auth: role, and the service-account token file presented as the JWT.
    vault_kubernetes_role: str | None = None
    vault_kubernetes_mount: str = "kubernetes"
    vault_kubernetes_token_path: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
    #: Vault: renew the token once this fraction of its time to live has passed.
    vault_renew_fraction: float = Field(2 / 3, gt=0.0, lt=1.0)

    #: AWS Secrets Manager: region (falls back to boto3's chain, e.g. ``AWS_REGION``).
    aws_region: str | None = None
    #: AWS Secrets Manager: endpoint (a VPC endpoint, LocalStack or moto); ``None`` for AWS itself.
    aws_endpoint_url: str | None = None

    @classmethod
    def from_env(cls, env_file: Path | str | None = None) -> SecretsSettings:
        """Read ``BARBACANA_SECRETS_<FIELD>`` variables (and ``env_file``) without ``Settings``.

        ``Settings().secrets`` gives the same result inside a Barbacana service.
        """
        from pydantic_settings import BaseSettings, SettingsConfigDict

        class _FromEnv(BaseSettings, SecretsSettings):
            model_config = SettingsConfigDict(
                env_prefix="BARBACANA_SECRETS_", extra="ignore", frozen=True
            )

        loaded = _FromEnv(_env_file=env_file)
        return cls.model_validate(dict(loaded))
