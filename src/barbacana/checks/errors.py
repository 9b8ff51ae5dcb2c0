"""Errors of the deployment checks.

Findings about a deployment are :class:`~barbacana.checks.Message` values, not
exceptions; the only error here is a check definition that breaks the rules
every finding follows::

    ConfigurationError
     └── InvalidFindingError       a finding id is malformed or disagrees with its severity
"""

from __future__ import annotations

from ..errors import ConfigurationError

__all__ = ["InvalidFindingError"]


class InvalidFindingError(ConfigurationError):
    """A finding id is not ``BRB-<E|W|I><three digits>`` or is defined twice."""

    code = "invalid_finding"
    title = "Invalid check finding"
