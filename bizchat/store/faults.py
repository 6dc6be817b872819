"""Fault points: named places where a test can have this process killed (SIGKILL).

The crash-safety tests run the receiver's spool, ingester and erasure in a subprocess
with ``BIZCHAT_FAULT=<point>`` (or ``<point>@<n>`` for the n-th time it is reached) and
check after a restart that no acknowledged body was lost. Without the variable a point
costs one comparison; nothing else reads it.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("BIZCHAT_FAULT") or ""
_NAME, _, _NTH = _SPEC.partition("@")
_left = int(_NTH or 1)


def point(name: str) -> None:
    """Kill this process here if ``$BIZCHAT_FAULT`` names this point (its n-th pass)."""
    global _left
    if not _NAME or name != _NAME:
        return
    _left -= 1
    if _left <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
