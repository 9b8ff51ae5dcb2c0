"""Storage: one async engine per service, migrations per concern, rotating credentials."""

from ._credentials import Credentials, SecretCredentials, parse_credentials
from ._database import Database, UnstorableValueError

__all__ = [
    "Credentials",
    "Database",
    "SecretCredentials",
    "UnstorableValueError",
    "parse_credentials",
]
