"""What a check reports: a finding (the kind of problem) and a message (one occurrence).

Modelled on Django's ``django/core/checks/messages.py``: every message has a
stable id an operator can search for, silence in a review, or quote in a
ticket. The id carries the severity in its letter (``BRB-E…`` errors,
``BRB-W…`` warnings, ``BRB-I…`` information) and its number never changes
meaning; numbers are unique across severities, so ``BRB-E010`` and
``BRB-W010`` never both exist.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from .errors import InvalidFindingError

__all__ = ["Finding", "Message", "Severity"]

_ID = re.compile(r"^BRB-(?P<letter>[EWI])(?P<number>\d{3})$")


class Severity(enum.IntEnum):
    """How bad a finding is; ``barbacana check`` fails on :attr:`ERROR` by default."""

    INFO = 20
    WARNING = 30
    ERROR = 40

    @property
    def letter(self) -> str:
        """The letter ids of this severity start with (``E``, ``W``, ``I``)."""
        return self.name[0]

    @classmethod
    def parse(cls, name: str) -> Severity:
        """``"error"``, ``"warning"`` or ``"info"`` (any case).

        Raises:
            InvalidFindingError: another name.
        """
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise InvalidFindingError(
                f"unknown severity {name!r}: use error, warning or info"
            ) from None


_LETTERS = {severity.letter: severity for severity in Severity}


@dataclass(frozen=True, slots=True)
class Message:
    """One finding about one deployment.

    Attributes:
        id: Stable id (``BRB-E001``).
        severity: Taken from the id's letter.
        title: What is wrong, in general terms (the same for every occurrence).
        detail: What is wrong here: which variable, file, URL or value. Never a secret.
        hint: How to fix it.
        target: The setting, environment variable, file or URL concerned.
    """

    id: str
    severity: Severity
    title: str
    hint: str
    detail: str | None = None
    target: str | None = None

    @property
    def is_error(self) -> bool:
        """Whether this message makes ``barbacana check`` exit non-zero by default."""
        return self.severity >= Severity.ERROR

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``barbacana check --json``)."""
        return {
            "id": self.id,
            "severity": self.severity.name.lower(),
            "title": self.title,
            "detail": self.detail,
            "hint": self.hint,
            "target": self.target,
        }

    def __str__(self) -> str:
        where = f" [{self.target}]" if self.target else ""
        what = f"{self.title}: {self.detail}" if self.detail else self.title
        return f"{self.id}{where} {what}. Fix: {self.hint}"


@dataclass(frozen=True, slots=True)
class Finding:
    """A kind of problem: its id, a one-line title and a fix-it hint.

    Call it to report one occurrence::

        HSTS_OFF = Finding("BRB-W012", "HSTS is off", "set BARBACANA_WEB_HSTS_MAX_AGE=63072000")
        yield HSTS_OFF(target="web.hsts_max_age")

    Raises:
        InvalidFindingError: ``id`` is not ``BRB-<E|W|I><three digits>``.
    """

    id: str
    title: str
    hint: str

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise InvalidFindingError(
                f"finding id {self.id!r} is not BRB-<E|W|I><three digits> (BRB-E001)"
            )

    @property
    def severity(self) -> Severity:
        """Given by the id's letter."""
        return _LETTERS[self.id[4]]

    @property
    def number(self) -> int:
        """The id's number, unique across severities."""
        return int(self.id[-3:])

    def __call__(
        self, detail: str | None = None, *, target: str | None = None, hint: str | None = None
    ) -> Message:
        """A message for one occurrence (``hint`` replaces the general one when given)."""
        return Message(
            id=self.id,
            severity=self.severity,
            title=self.title,
            hint=hint or self.hint,
            detail=detail,
            target=target,
        )
