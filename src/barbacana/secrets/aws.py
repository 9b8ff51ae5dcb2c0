"""Secrets from AWS Secrets Manager, through boto3.

References name a secret (its name or ARN), optionally a version stage, and
optionally a field of a JSON secret::

    aws://prod/orders/db#password               field of a JSON secret, stage AWSCURRENT
    aws://prod/orders/api-key                   a plain string secret
    aws://prod/orders/db?stage=AWSPREVIOUS#password   the previous version, during a rotation

The version stage is always sent explicitly (``AWSCURRENT`` unless given):
that is the documented way to ask for the current version, and some
implementations answer a request without a stage from a stale version after
``UpdateSecretVersionStage``. Credentials come from boto3's own chain
(environment, profile, instance or task role); none are accepted in URLs.
boto3 is synchronous: every call runs in a worker thread. botocore logs whole
response bodies at DEBUG level, which for ``GetSecretValue`` is the secret; a
filter on the ``botocore.parsers`` logger drops those records.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self

from .._clock import Clock, system_clock
from ..errors import SecretsError
from ._base import SecretSource, SourceURL
from ._value import SecretValue, SourceHealth, json_field, split_field
from .errors import (
    SecretAccessDeniedError,
    SecretMalformedError,
    SecretNotFoundError,
    SecretsConfigurationError,
    SecretSourceUnavailableError,
)

if TYPE_CHECKING:
    from ._settings import SecretsSettings

__all__ = ["AwsSecretsManagerSource"]

_INSTALL_HINT = "AWS Secrets Manager support needs boto3: pip install barbacana[aws]"
# Secret names: letters, digits and /_+=.@- (AWS); ARNs add ':'.
_SECRET_ID = re.compile(r"^[A-Za-z0-9/_+=.@:-]{1,2048}$")
_STAGE = re.compile(r"^[A-Za-z0-9_+=.@-]{1,256}$")

_NOT_FOUND = {"ResourceNotFoundException"}
_DENIED = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "UnauthorizedOperation",
}
_BAD_REQUEST = {"InvalidParameterException", "InvalidRequestException", "ValidationException"}


class _DropResponseBodies(logging.Filter):
    """Drop botocore's DEBUG dump of response bodies: for GetSecretValue it is the secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Response body")


def _keep_bodies_out_of_logs() -> None:
    """Install the filter once on ``botocore.parsers``, the logger that dumps bodies."""
    parsers = logging.getLogger("botocore.parsers")
    if not any(isinstance(f, _DropResponseBodies) for f in parsers.filters):
        parsers.addFilter(_DropResponseBodies())


def _import_boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise SecretsConfigurationError(_INSTALL_HINT) from None
    return boto3


def parse_aws_name(name: str) -> tuple[str, str, str | None]:
    """Split a reference name into secret id, version stage and field.

    Raises:
        SecretsConfigurationError: a bad secret id, option or stage.
    """
    location, fieldname = split_field(name)
    secret_id, _, query = location.partition("?")
    stage = "AWSCURRENT"
    if query:
        key, _, value = query.partition("=")
        if key != "stage" or not _STAGE.match(value):
            raise SecretsConfigurationError(
                f"aws://{name}: the only option is ?stage=<version stage>, e.g. AWSPREVIOUS"
            )
        stage = value
    if not _SECRET_ID.match(secret_id):
        raise SecretsConfigurationError(
            f"aws://{name} does not name a secret (letters, digits and /_+=.@-, or an ARN)"
        )
    return secret_id, stage, fieldname


class AwsSecretsManagerSource(SecretSource):
    """AWS Secrets Manager.

    Args:
        region: AWS region (boto3's chain when ``None``).
        endpoint_url: A VPC endpoint, LocalStack or moto; ``None`` for AWS itself.
        timeout: Seconds to connect and to read.
        max_attempts: Attempts per call in botocore's ``standard`` retry mode.
        client: An existing ``secretsmanager`` client (its settings are used as they are).
        name: The source name references use (``aws`` by default).
    """

    scheme = "aws"

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        timeout: float = 10.0,
        max_attempts: int = 2,
        client: Any = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.region = region
        self.endpoint_url = endpoint_url
        self.timeout = timeout
        self.max_attempts = max_attempts
        self._client = client
        self._lock = threading.Lock()
        if client is None:
            _import_boto3()  # fail at configuration time, not at the first read

    @classmethod
    def from_url(
        cls, url: SourceURL, settings: SecretsSettings, *, clock: Clock = system_clock
    ) -> Self:
        """``aws://`` with optional ``?region=...&endpoint_url=...`` overriding the settings."""
        if url.location:
            raise SecretsConfigurationError(
                "an aws:// source URL takes options only (aws://?region=eu-west-1); "
                "secret names go in references"
            )
        region = url.pop("region") or settings.aws_region
        endpoint_url = url.pop("endpoint_url") or settings.aws_endpoint_url
        url.finish()
        return cls(
            region=region, endpoint_url=endpoint_url, timeout=settings.timeout.total_seconds()
        )

    @property
    def location(self) -> str:
        where = f"secretsmanager ({self.region or 'default region'})"
        if self.endpoint_url:
            where += f" at {self.endpoint_url}"
        return where

    def validate_name(self, name: str) -> None:
        parse_aws_name(name)

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                boto3 = _import_boto3()
                from botocore.config import Config

                config = Config(
                    connect_timeout=self.timeout,
                    read_timeout=self.timeout,
                    retries={"max_attempts": self.max_attempts, "mode": "standard"},
                )
                _keep_bodies_out_of_logs()
                # A session of our own: boto3's default session is not thread-safe.
                session = boto3.session.Session()
                with self._translate(None, "create a client"):
                    self._client = session.client(
                        "secretsmanager",
                        region_name=self.region,
                        endpoint_url=self.endpoint_url,
                        config=config,
                    )
            return self._client

    @contextmanager
    def _translate(self, secret: str | None, action: str) -> Iterator[None]:
        """Turn botocore errors into ours; AWS's own message is not echoed."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            NoRegionError,
        )

        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND:
                raise SecretNotFoundError(
                    f"Secrets Manager has no such secret or version stage ({code})",
                    secret=secret,
                    source=self.description,
                ) from exc
            if code in _DENIED:
                raise SecretAccessDeniedError(
                    f"Secrets Manager refused to {action} ({code})",
                    secret=secret,
                    source=self.description,
                ) from exc
            if code in _BAD_REQUEST:
                raise SecretNotFoundError(
                    f"Secrets Manager cannot {action} ({code}; deleted or scheduled for deletion?)",
                    secret=secret,
                    source=self.description,
                ) from exc
            raise SecretSourceUnavailableError(
                f"Secrets Manager failed to {action} ({code or 'unknown error'})",
                secret=secret,
                source=self.description,
            ) from exc
        except NoCredentialsError as exc:
            raise SecretAccessDeniedError(
                "no AWS credentials found (environment, profile or instance role)",
                secret=secret,
                source=self.description,
            ) from exc
        except NoRegionError as exc:
            raise SecretsConfigurationError(
                "no AWS region: set BARBACANA_SECRETS_AWS_REGION or AWS_REGION"
            ) from exc
        except BotoCoreError as exc:
            raise SecretSourceUnavailableError(
                f"Secrets Manager could not be reached to {action} ({type(exc).__name__})",
                secret=secret,
                source=self.description,
            ) from exc

    def _read(self, name: str) -> SecretValue:
        secret_id, stage, fieldname = parse_aws_name(name)
        ref = f"{self.name}://{name}"
        client = self._get_client()
        with self._translate(ref, f"read {secret_id}"):
            response = client.get_secret_value(SecretId=secret_id, VersionStage=stage)
        text = response.get("SecretString")
        if text is None:
            binary = response.get("SecretBinary")
            try:
                text = bytes(binary).decode("utf-8") if binary is not None else None
            except (UnicodeDecodeError, TypeError):
                raise SecretMalformedError(
                    "the binary secret is not UTF-8 text", secret=ref, source=self.description
                ) from None
        if text is None:
            raise SecretMalformedError(
                "the secret has neither a string nor a binary value",
                secret=ref,
                source=self.description,
            )
        if fieldname is not None:
            text = json_field(text, fieldname, secret=ref, source=self.description)
        if not text:
            raise SecretMalformedError("the secret is empty", secret=ref, source=self.description)
        return SecretValue(text, version=response.get("VersionId"))

    async def get(self, name: str) -> SecretValue:
        return await asyncio.to_thread(self._read, name)

    def _probe(self) -> SourceHealth:
        from botocore.exceptions import ClientError

        try:
            client = self._get_client()
            with self._translate(None, "list secrets"):
                try:
                    client.list_secrets(MaxResults=1)
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code in ("AccessDeniedException", "AccessDenied"):
                        # A signed request refused by policy: endpoint and credentials work.
                        return SourceHealth(
                            self.description,
                            True,
                            "reachable; ListSecrets is not allowed (expected with least privilege)",
                        )
                    raise
        except (SecretsError, SecretsConfigurationError) as exc:
            return SourceHealth(self.description, False, exc.detail)
        warnings: list[str] = []
        if self.endpoint_url and self.endpoint_url.startswith("http://"):
            warnings.append(f"endpoint {self.endpoint_url} is plain HTTP; use HTTPS outside tests")
        return SourceHealth(self.description, True, "ok", tuple(warnings))

    async def check(self) -> SourceHealth:
        return await asyncio.to_thread(self._probe)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
