"""Barbacana: defense in depth for FastAPI microservices.

>>> from barbacana import Settings, require, secure
"""

from .access import Principal, require, require_role
from .errors import BarbacanaError
from .settings import Settings
from .web import StrictModel, secure

__all__ = [
    "BarbacanaError",
    "Principal",
    "Settings",
    "StrictModel",
    "require",
    "require_role",
    "secure",
]
