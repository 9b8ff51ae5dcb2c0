"""Response fields that tell clients their quota (pure functions, no I/O).

``RateLimit-Policy`` and ``RateLimit`` follow draft-ietf-httpapi-ratelimit-headers
(-09 and later): each is a Structured Field List (RFC 9651) with one item per
quota policy, the item being the policy's name as an sf-string::

    RateLimit-Policy: "token-1m";q=10;w=60, "token-1h";q=50;w=3600
    RateLimit: "token-1m";r=7;t=42, "token-1h";r=47;t=3530

``q`` is the quota, ``w`` the window in seconds, ``r`` what remains and ``t``
the seconds until the quota is whole again. The ``X-RateLimit-*`` trio that
most clients still read reports the meter closest to refusing. ``Retry-After``
(RFC 9110 §10.2.3) goes on refusals, in whole seconds.
"""

from __future__ import annotations

import math

from ._base import Decision

__all__ = ["quota_headers"]


def quota_headers(decision: Decision) -> list[tuple[str, str]]:
    """The quota fields for a decision, in order, ready to append to a response."""
    meters = decision.meters
    if not meters:
        return []
    headers = [
        (
            "RateLimit-Policy",
            ", ".join(
                f'"{m.name}";q={m.limit.amount};w={math.ceil(m.limit.window)}' for m in meters
            ),
        )
    ]
    if decision.remaining:  # absent when the store failed open: nothing is known
        resets = [max(0, math.ceil(r / 1000)) for r in decision.reset_ms]
        remaining = [max(0, r) for r in decision.remaining]
        headers.append(
            (
                "RateLimit",
                ", ".join(
                    f'"{m.name}";r={r};t={t}'
                    for m, r, t in zip(meters, remaining, resets, strict=True)
                ),
            )
        )
        # The binding meter: least remaining, then the longest wait.
        i = min(range(len(meters)), key=lambda j: (remaining[j], -resets[j]))
        headers += [
            ("X-RateLimit-Limit", str(meters[i].limit.amount)),
            ("X-RateLimit-Remaining", str(remaining[i])),
            ("X-RateLimit-Reset", str(resets[i])),
        ]
    if not decision.allowed:
        headers.append(("Retry-After", str(decision.retry_after)))
    return headers
