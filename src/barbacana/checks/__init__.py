"""Deployment checks: ``barbacana check``, like Django's ``check --deploy``.

A check is a function from a :class:`CheckContext` (settings, environment,
facts read from the database and from a running service) to
:class:`Message` values. Each message has a stable id (``BRB-E…`` errors,
``BRB-W…`` warnings, ``BRB-I…`` information; :data:`CATALOGUE` lists them),
what is wrong, and how to fix it::

    from barbacana.checks import default_registry, gather

    context = await gather(settings, url="https://api.example.com")
    for message in default_registry().run(context):
        print(message)

Registries are instances: build one with :func:`default_registry`, add your
own checks with :meth:`Registry.register`, and pass it to whoever runs it.
"""

from ._catalogue import CATALOGUE
from ._context import CheckContext, Probe, SigningKeyRecord, describe_error, settings_error
from ._default import default_registry, deployment_warnings
from ._gather import DOC_PATHS, gather, probe, read_signing_keys, verify_context
from ._messages import Finding, Message, Severity
from ._registry import Check, Registry
from .errors import InvalidFindingError

__all__ = [
    "CATALOGUE",
    "DOC_PATHS",
    "Check",
    "CheckContext",
    "Finding",
    "InvalidFindingError",
    "Message",
    "Probe",
    "Registry",
    "Severity",
    "SigningKeyRecord",
    "default_registry",
    "deployment_warnings",
    "describe_error",
    "gather",
    "probe",
    "read_signing_keys",
    "settings_error",
    "verify_context",
]
