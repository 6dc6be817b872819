"""The receiver's side of its ingest process: start it, watch it, restart it, stop it.

The ingest process (ingester.py) holds the only pipe to its stdin, so it sees end of file
the moment the receiver dies, however it dies, and exits: a killed receiver leaves no
orphan behind. The other way round, when the ingest process dies (SIGKILL, a crash), a
watcher thread here restarts it after a pause that doubles with each death in a row (up
to 30 s), and ``/health`` reports the restarts and why. Stopping always ends: the process
is told to flush and given ``flush_timeout`` (plus a grace period); a dead one is replaced
by a flush-only run; one that does not finish is killed, and the flush counts as failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

from .. import store

log = logging.getLogger("bizchat.webhook")

GRACE = 30.0          # beyond flush_timeout, for the last batch and the checkpoint
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
STEADY = 60.0         # a process that ran this long resets the backoff

_TOTALS = ("ingested", "rejected", "quarantined", "batches")


class IngestProcess:
    """Runs ``python -m bizchat.receiver.ingester`` beside the receiver and reads its counters."""

    def __init__(self, path: Path, interval: float, *,
                 flush_timeout: float = store.DEFAULT_TIMEOUT):
        self.path = Path(path)
        self.interval = interval
        self.flush_timeout = flush_timeout
        self.restarts = 0
        self.flushed: bool | None = None        # after stop(): did the final flush succeed
        self._status: dict = {}                 # the running process's last line
        self._done = dict.fromkeys(_TOTALS, 0)  # counters of processes that ended
        self._error: tuple[float, str] | None = None   # our own last error (a death)
        self._proc: subprocess.Popen | None = None
        self._started_at = 0.0
        self._lock = threading.Lock()            # spawning
        self._counts = threading.Lock()          # _status and _done
        self._reader: threading.Thread | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    # --- what /health shows -----------------------------------------------------------

    def health(self) -> dict:
        with self._counts:
            status, done = dict(self._status), dict(self._done)
        child_error = (status.get("last_error_at") or 0, status.get("last_error"))
        error = max([e for e in (child_error, self._error) if e and e[1]], default=None,
                    key=lambda e: e[0])
        return {
            **{k: done[k] + (status.get(k) or 0) for k in _TOTALS},
            "rejected_total": status.get("rejected_total"),
            "busy": bool(status.get("busy")),
            "alive": self.alive(),
            "pid": self._proc.pid if self._proc is not None else None,
            "restarts": self.restarts,
            "last_error": error[1] if error else None,
            "last_error_at": error[0] if error else None,
            "advanced_at": status.get("advanced_at") or done.get("advanced_at"),
        }

    # keep the names the receiver's health and tests used before
    ingested = property(lambda self: self.health()["ingested"])
    batches = property(lambda self: self.health()["batches"])
    busy = property(lambda self: self.health()["busy"])
    last_error = property(lambda self: self.health()["last_error"])

    def alive(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    # --- running ----------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="bizchat-ingest-watch",
                                         daemon=True)
        self._watcher.start()

    def _spawn(self, *extra: str) -> subprocess.Popen:
        """Start an ingest process (call with the lock held)."""
        if self._reader is not None:     # the last one's counters are banked first
            self._reader.join(timeout=5)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bizchat.receiver.ingester", str(self.path),
             "--interval", str(self.interval), "--flush-timeout", str(self.flush_timeout), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        with self._counts:
            self._proc, self._started_at = proc, time.monotonic()
        self._reader = threading.Thread(target=self._read, args=(proc,),
                                        name="bizchat-ingest-status", daemon=True)
        self._reader.start()
        return proc

    def _read(self, proc: subprocess.Popen) -> None:
        """Keep the last status line of ``proc``; when it ends, bank its counters."""
        last: dict = {}
        assert proc.stdout is not None   # started with stdout=PIPE
        for line in proc.stdout:
            with contextlib.suppress(ValueError), self._counts:
                last = json.loads(line)
                if proc is self._proc:
                    self._status = last
        proc.stdout.close()
        with self._counts:
            for key in _TOTALS:
                self._done[key] += last.get(key) or 0
            if last.get("advanced_at"):
                self._done["advanced_at"] = last["advanced_at"]
            if proc is self._proc:
                self._status = {k: v for k, v in last.items() if k not in _TOTALS}

    def _watch(self) -> None:
        """Restart the ingest process whenever it dies unasked, with a growing pause."""
        backoff = FIRST_BACKOFF
        while not self._stopping.is_set():
            proc = self._proc
            assert proc is not None          # started before the watcher
            code = proc.wait()
            if self._stopping.is_set():
                return
            with contextlib.suppress(OSError):
                _close(proc.stdin)
            ran = time.monotonic() - self._started_at
            backoff = FIRST_BACKOFF if ran >= STEADY else backoff
            self.restarts += 1
            message = (f"the ingest process (pid {proc.pid}) exited with status {code}; "
                       f"restart {self.restarts} in {backoff:g} s")
            self._error = (time.time(), message)
            log.error("%s (the spool keeps every accepted body)", message)
            if self._stopping.wait(backoff):
                return
            backoff = min(MAX_BACKOFF, backoff * 2)
            with self._lock:
                if self._stopping.is_set():
                    return
                self._spawn()

    def stop(self) -> bool:
        """Flush and stop; returns whether everything pending reached the workspace."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                log.info("the ingest process is not running; a last one flushes the spool")
                proc = self._spawn("--flush-only")
            else:
                try:
                    assert proc.stdin is not None    # started with stdin=PIPE
                    proc.stdin.write(b"stop\n")
                    proc.stdin.flush()
                except (BrokenPipeError, ValueError):
                    pass                     # it just died: wait() below tells how
        try:
            code = proc.wait(timeout=self.flush_timeout + GRACE)
        except subprocess.TimeoutExpired:
            log.error("the ingest process did not finish its flush in %g s; stopped it",
                      self.flush_timeout + GRACE)
            proc.kill()
            code = proc.wait()
        if code not in (0, 1):           # killed or crashed during the flush: one more try
            log.warning("the ingest process exited with status %s while flushing; trying once more", code)
            with self._lock:
                proc = self._spawn("--flush-only")
            try:
                code = proc.wait(timeout=self.flush_timeout + GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        with contextlib.suppress(OSError):
            _close(proc.stdin)
        if self._watcher:
            self._watcher.join(timeout=5)
        if self._reader:
            self._reader.join(timeout=5)
        self.flushed = code == 0
        return self.flushed


def _close(stream) -> None:
    if stream is not None:
        stream.close()
