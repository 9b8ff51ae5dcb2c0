"""Storage: one async engine per service, migrations per concern."""

from ._database import Database

__all__ = ["Database"]
