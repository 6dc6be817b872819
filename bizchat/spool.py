"""The webhook spool: accepted bodies made durable before the receiver answers 200.

A spool is an append-only JSON-lines file beside the workspace
(``<workspace>.spool``), one line per accepted body, plus ``<workspace>.spool.offset``
with the byte offset up to which the lines are in DuckDB. Appends are fsynced; the
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
import threading
from datetime import UTC, datetime
from pathlib import Path

from .durable import write_atomic
from .webhook_ingest import payload_id


class Spool:
    def __init__(self, workspace_path: str | os.PathLike, *, repair: bool = True):
        self.path = Path(f"{workspace_path}.spool")
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
        return (json.dumps({"id": payload_id(body), "received_at": received_at.isoformat(),
                            "body": body.decode("utf-8")}, ensure_ascii=False) + "\n").encode("utf-8")

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
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            records.append((item["id"], datetime.fromisoformat(item["received_at"]), item["body"]))
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
