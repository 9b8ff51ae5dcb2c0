"""A registry of check functions: an instance, filled by whoever builds it.

Modelled on ``django/core/checks/registry.py``, without its global: a
registry is built (:func:`~barbacana.checks.default_registry` builds
Barbacana's) and passed to whoever runs it, so a service can add its own
checks or leave some out without changing anything at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._messages import Message

if TYPE_CHECKING:
    from ._context import CheckContext

__all__ = ["Check", "Registry"]

#: A check: reads the context, yields one message per problem found.
Check = Callable[["CheckContext"], Iterable[Message]]


@dataclass(frozen=True, slots=True)
class _Entry:
    check: Check
    tags: frozenset[str]


class Registry:
    """Check functions with tags (``tokens``, ``files``, ``live``...)."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def __repr__(self) -> str:
        return f"Registry({len(self._entries)} checks)"

    def register(self, check: Check, *tags: str) -> Check:
        """Add ``check`` with ``tags``; registering the same function again replaces its tags."""
        self._entries = [e for e in self._entries if e.check is not check]
        self._entries.append(_Entry(check, frozenset(tags)))
        return check

    @property
    def tags(self) -> frozenset[str]:
        """Every tag some check carries."""
        return frozenset(tag for entry in self._entries for tag in entry.tags)

    def checks(self, tags: Iterable[str] | None = None) -> list[Check]:
        """The checks carrying at least one of ``tags`` (every check when ``None``)."""
        wanted = None if tags is None else frozenset(tags)
        return [e.check for e in self._entries if wanted is None or e.tags & wanted]

    def run(self, context: CheckContext, *, tags: Iterable[str] | None = None) -> list[Message]:
        """Run the checks and return their messages, errors first, then by id."""
        found: list[Message] = []
        for check in self.checks(tags):
            found.extend(check(context))
        return sorted(set(found), key=lambda m: (-m.severity, m.id, m.target or "", m.detail or ""))
