"""Publishing: write aside, then swap the manifest in one atomic step; clean up after.

An export writes its files under ``_staging/<tenant>/<run>/``, moves them to their final
paths (new, unique names: nothing published is ever overwritten), and only then replaces
the tenant's manifest entry. Until that swap readers see the lake as before; a run killed
at any point leaves files no manifest lists, which the next run of that tenant deletes.

Locks (``fcntl.flock`` on files in ``_staging``, released by the kernel when a process
dies): ``<tenant>.lock`` is held for a whole export of that tenant (a second export of the
same tenant is refused), ``_manifest.lock`` only around the read-modify-write of the
manifest, so exports of different tenants run side by side and never lose each other's
entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import LakeBusy, LakeError
from ..store import faults
from .manifest import NAME, FileEntry, Manifest, read_or_empty

STAGING = "_staging"


def staging(dir: Path) -> Path:
    return Path(dir) / STAGING


@contextlib.contextmanager
def _flock(path: Path, *, timeout: float, what: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LakeBusy(f"{what} ({path} is locked). Wait for it to finish and try "
                                   "again.", path=str(path)) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)   # closing releases the lock


def tenant_lock(dir: Path, tenant: str, *, timeout: float = 0.0):
    """Held for a whole export (or erasure pass) of ``tenant`` into the lake at ``dir``."""
    return _flock(staging(dir) / f"{tenant}.lock", timeout=timeout,
                  what=f"Another export of tenant {tenant!r} into {dir} is running")


def manifest_lock(dir: Path, *, timeout: float = 60.0):
    """Held while the manifest is read, changed and replaced."""
    return _flock(staging(dir) / "_manifest.lock", timeout=timeout,
                  what=f"Another export is publishing into the lake {dir}")


def prepare(dir: Path) -> Path:
    """The lake folder, made if missing (LakeError when it is a file or cannot be made)."""
    dir = Path(dir)
    if dir.exists() and not dir.is_dir():
        raise LakeError(f"The lake folder {dir} is a file. Give a folder (it is created if "
                        "missing).", path=str(dir))
    try:
        staging(dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LakeError(f"Cannot make the lake folder {dir}: {exc.strerror}. Choose a folder "
                        "you can write to.", path=str(dir)) from None
    return dir


def checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(dir: Path, path: Path, rows: int) -> FileEntry:
    """The manifest entry of a file inside the lake."""
    return FileEntry(path=path.relative_to(dir).as_posix(), rows=int(rows),
                     bytes=path.stat().st_size, sha256=checksum(path))


def place(staged: Path, final: Path) -> None:
    """Move a staged file to its final path (same file system: a rename) and make it durable."""
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(staged, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(staged, final)


def publish(dir: Path, tenant: str, entry: dict | None) -> Manifest:
    """Replace ``tenant``'s manifest entry (None removes it), keeping every other tenant's
    entry as it is now on disk. The one atomic step of an export."""
    with manifest_lock(dir):
        for stale in Path(dir).glob(f".{NAME}.*.tmp"):   # a swap that died half-way
            stale.unlink()
        current = read_or_empty(dir)
        faults.point("lake.before_publish")
        new = current.with_tenant(tenant, entry)
        new.write()
    faults.point("lake.published")
    return new


def tenant_files(dir: Path, tenant: str) -> list[Path]:
    """Every file on disk in ``tenant``'s table folders (listed or not)."""
    found = []
    for table_dir in Path(dir).iterdir():
        if not table_dir.is_dir() or table_dir.name.startswith(("_", ".")):
            continue
        folder = table_dir / f"tenant={tenant}"
        if folder.is_dir():
            found += [p for p in folder.rglob("*") if p.is_file()]
    return found


def clean(dir: Path, tenant: str, manifest: Manifest) -> int:
    """Delete what ``manifest`` does not list in ``tenant``'s folders (files of a run that
    died, or superseded by the one that just published), and the tenant's staging area.
    Call with the tenant lock held. Returns how many files were deleted."""
    listed = {e.path for e in manifest.all_entries()}
    gone = 0
    for path in tenant_files(dir, tenant):
        if path.relative_to(dir).as_posix() not in listed:
            path.unlink()
            gone += 1
    _remove_empty_dirs(dir, tenant)
    area = staging(dir) / tenant
    if area.exists():
        shutil.rmtree(area)
    return gone


def _remove_empty_dirs(dir: Path, tenant: str) -> None:
    for table_dir in Path(dir).iterdir():
        folder = table_dir / f"tenant={tenant}"
        if table_dir.name.startswith(("_", ".")) or not folder.is_dir():
            continue
        for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            folder.rmdir()
        with contextlib.suppress(OSError):
            table_dir.rmdir()
