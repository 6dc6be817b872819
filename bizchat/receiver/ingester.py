"""The receiver's ingest process: spooled bodies into the workspace, batch after batch.

It runs as its own process (``python -m bizchat.receiver.ingester WORKSPACE``), started and
watched by the receiver (ingest_process.py), so its parsing never holds the receiver's
GIL; it runs at a lower CPU priority with one DuckDB thread, so under load the receiver's
200s come first and ingestion catches up in the gaps.

Talking to the receiver is two pipes: the receiver writes ``stop`` to our stdin (flush,
then exit 0, or 1 if bodies could not be flushed); end of file on stdin means the receiver
is gone, and we exit at once (the spool keeps everything for the next start). After every
round we write one JSON line of counters to stdout for ``/health``. SIGINT and SIGTERM
are ignored: the receiver decides when we stop.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import store
from ..errors import WorkspaceBusy
from ..ingest.batches import ingest_isolated
from ..ingest.spool import Spool

if TYPE_CHECKING:
    from ..workspace import Workspace

log = logging.getLogger("bizchat.webhook")

NICE = 10             # below the receiver: its answers come first when both want the CPU
MAX_BACKOFF = 30.0    # longest wait between tries after a failed round
LOG_EVERY = 10.0      # seconds between progress lines while batches keep coming
CHECKPOINT_AT = "1MB" # a commit bigger than this is written to the file, not the WAL
# Spool bytes per batch while a backlog lasts. Every batch ends in a checkpoint, and a
# checkpoint rewrites the whole last row group of raw_payloads (up to 122,880 bodies), so
# its cost grows with the bodies already stored: fewer, larger batches drain a backlog
# faster (1M status events: 15 s instead of 22 s at 16 MiB), for about 160 MiB more
# peak memory while one is read (about +390 MiB in all, measured).
BATCH_BYTES = 64 << 20


class Ingester:
    """Moves spooled bodies into the workspace, one transaction per batch (split further
    when a body fails it, see webhook_batches).

    A backlog of several batches is drained on one connection (one unit of work: it
    saves a connect and a checkpoint per batch), released as soon as the spool is empty
    or after ``hold`` seconds, so other processes get their turn; never across an idle wait.
    """

    def __init__(self, workspace_path: Path, spool: Spool, *, interval: float = 0.2,
                 busy_timeout: float = 0.5, batch_bytes: int = BATCH_BYTES, hold: float = 1.0,
                 threads: int | None = None):
        self.workspace_path = workspace_path
        self.spool = spool
        self.interval = interval
        self.busy_timeout = busy_timeout
        self.batch_bytes = batch_bytes
        self.hold = hold
        self.threads = threads          # DuckDB threads (None: DuckDB's default, all cores)
        self.ingested = 0               # bodies stored (new or seen before)
        self.rejected = 0               # of them kept as rejected
        self.rejected_total: int | None = None   # rejected bodies in the workspace
        self.quarantined = 0            # damaged spool lines moved aside
        self.batches = 0
        self.busy = False
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.advanced_at: float | None = None     # when the spool offset last moved
        self.failures = 0               # rounds failed in a row
        self._ws: Workspace | None = None
        self._logged_at = 0.0

    def _workspace(self, timeout: float) -> Workspace:
        from ..workspace import Workspace

        if self._ws is None:
            self._ws = Workspace(self.workspace_path, timeout=timeout)
        self._ws.timeout = timeout
        return self._ws

    def run_once(self, timeout: float | None = None) -> int:
        """Ingest what is pending, batch after batch while the spool has a backlog (up to
        ``hold`` seconds); returns how many lines were processed (0 if busy).

        Transient errors (see batches.is_transient) propagate; the spool keeps
        the bodies of the batch that failed."""
        if self.spool.pending_bytes() == 0:
            return 0
        done = 0
        try:
            ws = self._workspace(self.busy_timeout if timeout is None else timeout)
            # Connect before reading: while another process holds the file, waiting costs
            # nothing, instead of decoding the same backlog again and again.
            with ws.connect() as con:
                if self.threads:
                    con.execute(f"SET threads = {int(self.threads)}")
                # A batch of megabytes goes straight into the file at its commit (DuckDB
                # checkpoints instead of writing the WAL when a commit is over this size),
                # rather than into the WAL first and again into the file at the close.
                con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_AT}'")
                if self.rejected_total is None:
                    self.rejected_total = con.execute(
                        "SELECT count(*) FROM raw_payloads WHERE state = 'rejected'").fetchall()[0][0]
                start = time.monotonic()
                while True:
                    batch = self.spool.read(self.batch_bytes)
                    if batch.end == batch.start:
                        break
                    self.quarantined += self.spool.quarantine(batch.damaged)
                    report = ingest_isolated(con, batch.records)
                    self.spool.commit(batch)
                    self.advanced_at = time.time()
                    done += len(batch.records) + len(batch.damaged)
                    self.ingested += len(batch.records)
                    self.rejected += len(report.rejected)
                    self.rejected_total += len(report.rejected)
                    self.batches += 1
                    self._note(report)
                    if not self.spool.pending_bytes() or time.monotonic() - start >= self.hold:
                        break
        except WorkspaceBusy:
            if not self.busy:
                log.info("workspace busy (another process holds it); %d bytes pending, will catch up",
                         self.spool.pending_bytes())
            self.busy = True
            return done
        self.busy = False
        self.failures = 0
        return done

    def _note(self, report) -> None:
        """A log line for a batch with rejected or unknown-account bodies at once; for the
        others one line per ``LOG_EVERY`` seconds, so that a busy receiver does not flood
        its log (nor block on it)."""
        now = time.monotonic()
        if report.rejected or report.unknown_account or now - self._logged_at >= LOG_EVERY:
            log.info("%d bodies ingested in %d batches so far (last batch: %s); pending %d bytes",
                     self.ingested, self.batches, report.summary(), self.spool.pending_bytes())
            self._logged_at = now

    def failed(self, exc: BaseException) -> None:
        """Note a failed round: /health shows it, and the next try waits longer."""
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:1000]
        self.last_error_at = time.time()
        log.error("ingest round failed (%s); the bodies stay in the spool, next try in %.1f s",
                  self.last_error, self.next_wait())

    def next_wait(self) -> float:
        """How long to wait before the next round when the last one did nothing."""
        if not self.failures:
            return self.interval
        return min(MAX_BACKOFF, self.interval * 2 ** min(self.failures, 10))

    def run_round(self) -> int:
        """One ``run_once``, with its failure noted instead of raised."""
        try:
            return self.run_once()
        except Exception as exc:  # noqa: BLE001 - keep going; the spool keeps the bodies
            self.failed(exc)
            return 0

    def flush(self, flush_timeout: float = store.DEFAULT_TIMEOUT) -> bool:
        """Ingest everything still pending, waiting up to ``flush_timeout`` for the file;
        returns whether no complete line is left in the spool."""
        deadline = time.monotonic() + flush_timeout
        while True:
            try:
                done = self.run_once(timeout=max(0.1, deadline - time.monotonic()))
            except Exception as exc:  # noqa: BLE001 - reported, and the exit status says it
                self.failed(exc)
                break
            if not done or time.monotonic() >= deadline:
                break
        batch = self.spool.read(1)
        if batch.end != batch.start:
            log.error("could not flush at shutdown (%s); the spool keeps %d bytes for the next start",
                      "workspace busy" if self.busy else self.last_error, self.spool.pending_bytes())
            return False
        return True

    def status(self) -> dict:
        """The counters the receiver shows in /health."""
        return {"pid": os.getpid(), "ingested": self.ingested, "rejected": self.rejected,
                "rejected_total": self.rejected_total, "quarantined": self.quarantined,
                "batches": self.batches, "busy": self.busy, "last_error": self.last_error,
                "last_error_at": self.last_error_at, "advanced_at": self.advanced_at}


# --- the process ------------------------------------------------------------------------

def _command(timeout: float) -> str | None:
    """A line from the receiver within ``timeout`` seconds: "stop", "eof" (it is gone)."""
    ready, _, _ = select.select([sys.stdin.buffer], [], [], max(0.0, timeout))
    if not ready:
        return None
    line = sys.stdin.buffer.readline()
    return line.decode("ascii", "replace").strip() if line else "eof"


def _publish(ingester: Ingester) -> bool:
    try:
        os.write(sys.stdout.fileno(), (json.dumps(ingester.status()) + "\n").encode())
        return True
    except BrokenPipeError:
        return False                                   # the receiver is gone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bizchat.receiver.ingester")
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--flush-timeout", type=float, default=store.DEFAULT_TIMEOUT)
    parser.add_argument("--flush-only", action="store_true",
                        help="flush what is pending and exit (the receiver's last resort)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the receiver decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.nice(NICE)
    except OSError:
        pass
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ingester = Ingester(args.workspace, Spool(args.workspace, repair=False),
                        interval=args.interval, threads=1)
    if args.flush_only:
        flushed = ingester.flush(args.flush_timeout)
        _publish(ingester)
        return 0 if flushed else 1
    while True:
        done = ingester.run_round()
        if not _publish(ingester):
            return 0
        command = _command(0 if done else ingester.next_wait())
        if command == "eof":
            log.warning("the receiver is gone; the ingest process stops (the spool keeps "
                        "%d bytes for the next start)", ingester.spool.pending_bytes())
            return 0
        if command == "stop":
            flushed = ingester.flush(args.flush_timeout)
            _publish(ingester)
            return 0 if flushed else 1


if __name__ == "__main__":
    sys.exit(main())
