"""The webhook spool: accepted bodies made durable before the receiver answers 200.

A spool is an append-only JSON-lines file beside the workspace (``<workspace>.spool``):
a header line naming the file's *generation* (a random token), then one line per
accepted body (see ``encode_line``). ``<workspace>.spool.offset`` holds
``<generation> <byte offset>``: the lines of that generation before the offset are in
DuckDB. Appends are fsynced before the 200.

Crash safety rests on three rules, each safe at every instant:

- the offset is written (atomically) only after the DuckDB transaction committed, so it
  never points past what was ingested; a kill in between replays a batch, which
  ingestion skips as already stored (same sha256);
- a spool is never cut or rewritten in place: when everything is ingested, or when
  erasure rewrites it, a new file with a new generation replaces it (rename). An offset
  naming another generation means "from the top", so it can never point into the
  middle of a line of another file; it is also checked to end a line;
- a line that cannot be read (a torn or hand-edited line) is moved to
  ``<workspace>.spool.quarantine`` with a log line, never skipped silently and never
  allowed to block the lines behind it.

The receiver appends and the ingest process reads and replaces the same file, so
appending and replacing take an exclusive ``flock`` on ``<workspace>.spool.lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..errors import InvalidValue
from ..store import faults
from ..store.durable import write_atomic
from .payloads import payload_id

log = logging.getLogger("bizchat.ingest.spool")

# A line holds the body itself, not as a JSON string, when the body has no line break:
# the receiver only spools valid JSON, so the line is JSON too, and reading it back is a
# slice instead of decoding an escaped string (that decode cost as much as the rest of
# reading a batch). Bodies with line breaks (pretty-printed) are stored as a string.
_RAW_LINE = re.compile(rb'\{"id":"([^"\\]*)","received_at":"([^"\\]*)","raw":')
_HEADER = re.compile(rb'\{"spool":"([0-9a-f]{16})"\}\n')
_BLANK = re.compile(rb"\s*")
_RECEIVED = re.compile(rb'"received_at": ?"([^"\\]{1,64})"')


def encode_line(pid: str, received_at: str, body: str) -> bytes:
    """One spool line: payload id, ISO time the receiver accepted it, body text."""
    if "\n" not in body and "\r" not in body:
        return (f'{{"id":"{pid}","received_at":"{received_at}","raw":'.encode("ascii")
                + body.encode("utf-8") + b"}\n")
    return (json.dumps({"id": pid, "received_at": received_at, "body": body},
                       ensure_ascii=False) + "\n").encode("utf-8")


def decode_line(line: bytes | memoryview) -> tuple[str, str, str]:
    """(payload id, received_at as written, body text) of one line without its newline.
    Raises ValueError (or KeyError/TypeError for JSON of another shape) on a bad line."""
    match = _RAW_LINE.match(line)
    if match and line[-1:] == b"}":
        # str() of a memoryview slice: the body is decoded without a copy of its bytes
        return (match[1].decode("ascii"), match[2].decode("ascii"),
                str(memoryview(line)[match.end():-1], "utf-8"))
    item = json.loads(bytes(line))
    fields = item["id"], item["received_at"], item["body"]
    if not all(isinstance(f, str) for f in fields):
        raise InvalidValue("id, received_at and body must be strings")
    return fields


def header_line(generation: str) -> bytes:
    """The first line of a spool file of ``generation``."""
    return b'{"spool":"%s"}\n' % generation.encode("ascii")


def new_generation() -> str:
    return secrets.token_hex(8)


def spool_file(workspace_path: str | os.PathLike) -> Path:
    """Where the spool of a workspace lives (it may not exist yet)."""
    return Path(f"{workspace_path}.spool")


def quarantine_file(workspace_path: str | os.PathLike) -> Path:
    """Where the damaged lines of a workspace's spool are kept (it may not exist)."""
    return Path(f"{workspace_path}.spool.quarantine")


def received_at_of(line: bytes) -> datetime | None:
    """When the receiver accepted the body of ``line`` (UTC), read without decoding the
    line, so also from a damaged one; None when no readable time is in it."""
    match = _RECEIVED.search(line[:256])
    if not match:
        return None
    try:
        at = datetime.fromisoformat(match[1].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@dataclass
class SpoolBatch:
    """What ``Spool.read`` found after the offset: give it back to ``Spool.commit``."""

    records: list[tuple[str, datetime, str]]      # (payload id, received_at, body)
    generation: str
    start: int
    end: int                                      # the offset after these lines
    damaged: list[tuple[int, bytes, str]] = field(default_factory=list)  # (at, line, why)


class Spool:
    def __init__(self, workspace_path: str | os.PathLike, *, repair: bool = True):
        self.path = spool_file(workspace_path)
        self.offset_path = Path(f"{workspace_path}.spool.offset")
        self.lock_path = Path(f"{workspace_path}.spool.lock")
        self.quarantine_path = quarantine_file(workspace_path)
        self._thread_lock = threading.Lock()
        self._quarantine_count: tuple[tuple[int, int], int] | None = None
        self._fd: int | None = None                # kept open by the appender
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        if repair:  # only the writer may cut a torn tail; a reader would race the writer
            with self.locked():
                self._repair_tail()
                self._ensure_header()

    @contextlib.contextmanager
    def locked(self):
        """Exclusive against other threads (threading lock) and processes (flock)."""
        with self._thread_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        os.close(self._lock_fd)

    # --- the file's generation ------------------------------------------------------------

    def head(self) -> tuple[str, int]:
        """(generation, where the body lines start); ("", 0) for a spool of an earlier
        bizchat, which had no header."""
        with open(self.path, "rb") as f:
            match = _HEADER.match(f.read(64))
        return (match[1].decode("ascii"), match.end()) if match else ("", 0)

    def _ensure_header(self) -> None:
        """Give a spool without a header (new, or from an earlier bizchat) one. Call locked."""
        generation, _ = self.head()
        if generation:
            return
        old = self.path.read_bytes()
        legacy = self._offset_in("", 0, len(old))   # an earlier bizchat's plain offset
        generation = new_generation()
        write_atomic(self.path, header_line(generation) + old)
        if legacy:
            write_atomic(self.offset_path, f"{generation} {legacy + len(header_line(generation))}")

    def _repair_tail(self) -> None:
        """Drop a torn last line: a crash mid-append was never acknowledged with 200."""
        with open(self.path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(max(0, size - 1))
            if f.read(1) == b"\n":
                return
            # Find the last newline; everything after it is the torn record.
            pos = size
            while pos > 0:
                step = min(65536, pos)
                f.seek(pos - step)
                chunk = f.read(step)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    f.truncate(pos - step + cut + 1)
                    break
                pos -= step
            else:
                f.truncate(0)
            f.flush()
            os.fsync(f.fileno())
            log.warning("dropped %d bytes of a torn last spool line (never acknowledged)",
                        size - f.tell())

    # --- writing ---------------------------------------------------------------------

    @staticmethod
    def record(body: bytes, received_at: datetime | None = None) -> bytes:
        """One spool line for a raw request body (UTF-8; UnicodeDecodeError otherwise)."""
        received_at = received_at or datetime.now(UTC)
        return encode_line(payload_id(body), received_at.isoformat(), body.decode("utf-8"))

    def append(self, lines: list[bytes]) -> None:
        """Append lines and fsync: when this returns, they survive a crash. If the write
        fails (disk full), the file is cut back, so no half line stays to glue itself to
        the next append."""
        data = b"".join(lines)
        with self.locked():
            fd = self._append_fd()
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
                faults.point("spool.append.written")
                os.fsync(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                    os.fsync(fd)
                raise
        faults.point("spool.append.synced")

    def _append_fd(self) -> int:
        """The file to append to, kept open between appends; reopened when the ingester
        or erasure has put a new file in its place (call locked)."""
        fd = self._fd
        if fd is not None and os.fstat(fd).st_ino == os.stat(self.path).st_ino:
            return fd
        if fd is not None:
            os.close(fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd

    # --- reading ---------------------------------------------------------------------

    def _offset_in(self, generation: str, start: int, size: int) -> int:
        """The stored offset if it belongs to ``generation`` and ends a line, else ``start``."""
        try:
            parts = self.offset_path.read_text().split()
        except (FileNotFoundError, UnicodeDecodeError):
            return start
        if len(parts) == 2 and parts[0] == generation and parts[1].isdigit():
            value = int(parts[1])
        elif len(parts) == 1 and not generation and parts[0].isdigit():
            value = int(parts[0])                   # an earlier bizchat's plain offset
        else:
            return start                            # another file's offset: from the top
        if value == start:
            return start
        if not start < value <= size or self._byte_at(value - 1) != b"\n":
            log.warning("spool offset %d does not end a line of %s (%d bytes); reading "
                        "from the top (replaying is idempotent)", value, self.path, size)
            return start
        return value

    def _byte_at(self, pos: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(pos)
            return f.read(1)

    def offset(self) -> int:
        """Where the lines not yet in DuckDB start."""
        generation, start = self.head()
        return self._offset_in(generation, start, self.size())

    def size(self) -> int:
        return self.path.stat().st_size

    def pending_bytes(self) -> int:
        return max(0, self.size() - self.offset())

    def read(self, max_bytes: int = 16 << 20) -> SpoolBatch:
        """Records after the offset (whole lines, about ``max_bytes``); damaged lines are
        listed apart (``quarantine`` them before ``commit``)."""
        generation, first = self.head()
        start = self._offset_in(generation, first, self.size())
        with open(self.path, "rb") as f:
            f.seek(start)
            data = f.read(max_bytes)
            if len(data) == max_bytes:  # finish the last line, however long
                data += f.readline()
        end = data.rfind(b"\n") + 1
        batch = SpoolBatch([], generation, start, start + end)
        position, view = start, memoryview(data)
        parsed: dict[str, datetime] = {}      # a batch's lines share few distinct times
        at = 0
        while at < end:                       # line by line without copying the batch
            stop = data.index(b"\n", at)
            line = view[at:stop]
            if not _BLANK.fullmatch(line):
                try:
                    pid, received_at, body = decode_line(line)
                    when = parsed.get(received_at)
                    if when is None:
                        when = parsed[received_at] = datetime.fromisoformat(received_at)
                    batch.records.append((pid, when, body))
                except (ValueError, KeyError, TypeError) as exc:
                    batch.damaged.append((position, line.tobytes(), f"{type(exc).__name__}: {exc}"))
            position += stop - at + 1
            at = stop + 1
        return batch

    def oldest_pending(self) -> datetime | None:
        """When the receiver accepted the oldest body not yet in DuckDB (None: none)."""
        start = self.offset()
        with open(self.path, "rb") as f:
            f.seek(start)
            head = f.read(256)
        return received_at_of(head.split(b"\n", 1)[0])

    # --- after a batch ----------------------------------------------------------------

    def quarantine(self, damaged: list[tuple[int, bytes, str]]) -> int:
        """Move damaged lines aside (append + fsync to the quarantine file, each line once
        even when a crash makes us see it again); returns how many were new there."""
        if not damaged:
            return 0
        with self.locked():
            try:
                known = set(map(_digest, self.quarantine_path.read_bytes().split(b"\n")))
            except FileNotFoundError:
                known = set()
            new = []
            for position, line, reason in damaged:
                log.warning("spool line at byte %d of %s cannot be read (%s); moved to %s",
                            position, self.path, reason, self.quarantine_path)
                if _digest(line) not in known:
                    known.add(_digest(line))
                    new.append(line + b"\n")
            if new:
                with open(self.quarantine_path, "ab") as f:
                    f.write(b"".join(new))
                    f.flush()
                    os.fsync(f.fileno())
        faults.point("spool.quarantined")
        return len(new)

    def quarantined(self) -> int:
        """How many lines the quarantine file holds (cached while the file is unchanged)."""
        try:
            stat = self.quarantine_path.stat()
        except FileNotFoundError:
            return 0
        key = (stat.st_size, stat.st_mtime_ns)
        if self._quarantine_count is None or self._quarantine_count[0] != key:
            self._quarantine_count = (key, self.quarantine_path.read_bytes().count(b"\n"))
        return self._quarantine_count[1]

    def commit(self, batch: SpoolBatch) -> None:
        """Record that ``batch`` is in DuckDB (call after its transaction committed). When
        that is everything, a fresh empty spool of a new generation replaces the file."""
        faults.point("spool.commit")
        with self.locked():
            generation, _ = self.head()
            if generation != batch.generation:     # replaced meanwhile: its offset is moot
                return
            if batch.end == self.size():
                write_atomic(self.path, header_line(new_generation()), step="spool.rotate")
                return
        write_atomic(self.offset_path, f"{batch.generation} {batch.end}", step="spool.offset")


def _digest(line: bytes) -> bytes:
    return hashlib.sha256(line).digest()
