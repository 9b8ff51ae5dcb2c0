"""Storage: one async engine per service, migrations per concern."""

from ._database import Database, UnstorableValueError

__all__ = ["Database", "UnstorableValueError"]
