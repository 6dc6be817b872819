"""Files that must survive a crash: write beside, fsync, rename over, fsync the folder.

A reader never sees half a file, and after ``write_atomic`` returns the new content is
on disk (the spool offset, a rewritten spool, access exports, redacted report outputs).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import faults


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or a folder (a folder's fsync makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes | str, *, step: str = "") -> Path:
    """Replace ``path`` with ``data`` (str as UTF-8) in one step, durably.

    ``step`` names the fault points ``<step>.written`` (the new content is on disk
    beside the file) and ``<step>.renamed`` (swapped, folder not yet fsynced)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    if step:
        faults.point(f"{step}.written")
    os.replace(tmp, path)
    if step:
        faults.point(f"{step}.renamed")
    fsync_path(path.parent)
    return path
