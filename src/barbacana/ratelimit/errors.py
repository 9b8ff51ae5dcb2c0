"""Errors of the rate limiter.

::

    RateLimitError (barbacana.errors)   429
     ├── QuotaExceeded                    429  a limit refused the request
     └── LimiterUnavailable               503  the shared store is down, the policy fails closed

Bad limits or policies raise :class:`~barbacana.errors.ConfigurationError`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import RateLimitError

__all__ = ["QUOTA_EXCEEDED_TYPE", "LimiterUnavailable", "QuotaExceeded"]

#: The problem type registered by draft-ietf-httpapi-ratelimit-headers for a 429.
QUOTA_EXCEEDED_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"


class QuotaExceeded(RateLimitError):
    """A rate limit refused the request; retry after ``retry_after`` seconds."""

    code = "quota_exceeded"
    status = 429
    title = "Request cannot be satisfied as assigned quota has been exceeded"
    type: ClassVar[str] = QUOTA_EXCEEDED_TYPE

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: int,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail, **extra)
        #: Whole seconds until the request may succeed (``Retry-After``, RFC 9110 §10.2.3).
        self.retry_after = retry_after
        #: Response fields the 429 must carry (``Retry-After``, ``RateLimit``...).
        self.headers = dict(headers or {})


class LimiterUnavailable(RateLimitError):
    """The rate-limit store is unreachable and the policy fails closed."""

    code = "rate_limiter_unavailable"
    status = 503
    title = "Rate limiter unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}
