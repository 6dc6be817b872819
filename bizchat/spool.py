"""The webhook spool: accepted bodies made durable before the receiver answers 200.

A spool is an append-only JSON-lines file beside the workspace
(``<workspace>.spool``), one line per accepted body (see ``encode_line``), plus
``<workspace>.spool.offset`` with the byte offset up to which the lines are in DuckDB. Appends are fsynced; the
offset is advanced only after the DuckDB transaction committed. A crash between the two
replays a few lines, which ingestion skips as already stored (same sha256), so replay is
idempotent. When everything is ingested the file is emptied so it does not grow forever.

The receiver appends and a separate ingest process reads and empties the same file, so
appending and emptying take an exclusive ``flock`` on ``<workspace>.spool.lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

from .durable import write_atomic
from .webhook_ingest import payload_id

# A line holds the body itself, not as a JSON string, when the body has no line break:
# the receiver only spools valid JSON, so the line is JSON too, and reading it back is a
# slice instead of decoding an escaped string (that decode cost as much as the rest of
# reading a batch). Bodies with line breaks (pretty-printed) are stored as a string.
_RAW_LINE = re.compile(rb'\{"id":"([^"\\]*)","received_at":"([^"\\]*)","raw":')


def encode_line(pid: str, received_at: str, body: str) -> bytes:
    """One spool line: payload id, ISO time the receiver accepted it, body text."""
    if "\n" not in body and "\r" not in body:
        return (f'{{"id":"{pid}","received_at":"{received_at}","raw":'.encode("ascii")
                + body.encode("utf-8") + b"}\n")
    return (json.dumps({"id": pid, "received_at": received_at, "body": body},
                       ensure_ascii=False) + "\n").encode("utf-8")


def decode_line(line: bytes) -> tuple[str, str, str]:
    """(payload id, received_at as written, body text) of one line without its newline.
    Raises ValueError (or KeyError/TypeError for JSON of another shape) on a bad line."""
    match = _RAW_LINE.match(line)
    if match and line.endswith(b"}"):
        return (match[1].decode("ascii"), match[2].decode("ascii"),
                line[match.end():-1].decode("utf-8"))
    item = json.loads(line)
    return item["id"], item["received_at"], item["body"]


def spool_file(workspace_path: str | os.PathLike) -> Path:
    """Where the spool of a workspace lives (it may not exist yet)."""
    return Path(f"{workspace_path}.spool")


class Spool:
    def __init__(self, workspace_path: str | os.PathLike, *, repair: bool = True):
        self.path = spool_file(workspace_path)
        self.offset_path = Path(f"{workspace_path}.spool.offset")
        self.lock_path = Path(f"{workspace_path}.spool.lock")
        self._thread_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        if repair:  # only the writer may cut a torn tail; a reader would race the writer
            with self.locked():
                self._repair_tail()

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
        os.close(self._lock_fd)

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

    # --- writing ---------------------------------------------------------------------

    @staticmethod
    def record(body: bytes, received_at: datetime | None = None) -> bytes:
        """One spool line for a raw request body."""
        received_at = received_at or datetime.now(UTC)
        return encode_line(payload_id(body), received_at.isoformat(), body.decode("utf-8"))

    def append(self, lines: list[bytes]) -> None:
        """Append lines and fsync: when this returns, they survive a crash."""
        data = b"".join(lines)
        with self.locked(), open(self.path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    # --- reading ---------------------------------------------------------------------

    def offset(self) -> int:
        try:
            value = int(self.offset_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0
        # The file was emptied after the offset was written (crash between the two).
        return value if value <= self.size() else 0

    def size(self) -> int:
        return self.path.stat().st_size

    def pending_bytes(self) -> int:
        return max(0, self.size() - self.offset())

    def read(self, max_bytes: int = 16 << 20) -> tuple[list[tuple[str, datetime, str]], int]:
        """Records after the offset (whole lines, about ``max_bytes``) and the offset after them."""
        start = self.offset()
        with open(self.path, "rb") as f:
            f.seek(start)
            data = f.read(max_bytes)
            if len(data) == max_bytes:  # finish the last line, however long
                data += f.readline()
        end = data.rfind(b"\n") + 1
        records = []
        for line in data[:end].split(b"\n"):
            if not line.strip():
                continue
            pid, received_at, body = decode_line(line)
            records.append((pid, datetime.fromisoformat(received_at), body))
        return records, start + end

    def commit(self, offset: int) -> None:
        """Record that everything before ``offset`` is in DuckDB; empty the spool when all is."""
        write_atomic(self.offset_path, str(offset))
        with self.locked():
            if offset == self.size():
                with open(self.path, "rb+") as f:
                    f.truncate(0)
                    os.fsync(f.fileno())
                self.offset_path.write_text("0")
