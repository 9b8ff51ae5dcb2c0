"""Time, injected: everything that reads the time takes a :data:`Clock`."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "system_clock"]

#: A function returning the current UNIX time in seconds.
Clock = Callable[[], float]


def system_clock() -> float:
    """The wall clock, as UNIX seconds."""
    return time.time()
