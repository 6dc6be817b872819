"""The webhook receiver: a Starlette app for the WhatsApp Cloud API.

- ``GET /webhook``: Meta's subscription check (hub.verify_token against
  ``$BIZCHAT_VERIFY_TOKEN``).
- ``POST /webhook``: checks ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with
  ``$BIZCHAT_APP_SECRET``), then makes the body durable in the spool and only then
  answers 200. Concurrent requests share one fsync (group commit), so throughput does not
  stop at the disk's fsync rate.
- A separate ingest process moves spooled bodies into DuckDB in batches (a process, not
  a thread, so its parsing never holds the receiver's GIL). It connects only for a
  batch; while another process holds the workspace it waits and catches up, and the
  receiver keeps accepting meanwhile.
- ``GET /health``: counters as JSON.

On SIGTERM/SIGINT uvicorn runs the shutdown: pending bodies are written, one last batch
is ingested, and the process exits 0. After SIGKILL the spool is replayed at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from . import store
from .errors import BizchatError, WorkspaceBusy
from .spool import Spool
from .webhook_ingest import ingest_bodies

log = logging.getLogger("bizchat.webhook")

MAX_BODY = 4 * 1024 * 1024  # Meta's batches reach about 3 MB


class Ingester:
    """Moves spooled bodies into the workspace, one transaction per batch.

    A backlog of several batches is drained on one connection (one unit of work: it
    saves a connect and a checkpoint per batch), released as soon as the spool is empty
    or after ``hold`` seconds, so other processes get their turn; never across an idle wait.
    """

    def __init__(self, workspace_path: Path, spool: Spool, *, interval: float = 0.2,
                 busy_timeout: float = 0.5, batch_bytes: int = 16 << 20, hold: float = 1.0):
        self.workspace_path = workspace_path
        self.spool = spool
        self.interval = interval
        self.busy_timeout = busy_timeout
        self.batch_bytes = batch_bytes
        self.hold = hold
        self.ingested = 0
        self.batches = 0
        self.busy = False
        self.last_error: str | None = None
        self._ws = None

    def _workspace(self, timeout: float):
        from .workspace import Workspace

        if self._ws is None:
            self._ws = Workspace(self.workspace_path, timeout=timeout)
        self._ws.timeout = timeout
        return self._ws

    def run_once(self, timeout: float | None = None) -> int:
        """Ingest what is pending, batch after batch while the spool has a backlog (up to
        ``hold`` seconds); returns how many bodies were processed (0 if busy)."""
        if self.spool.pending_bytes() == 0:
            return 0
        done = 0
        try:
            ws = self._workspace(self.busy_timeout if timeout is None else timeout)
            # Connect before reading: while another process holds the file, waiting costs
            # nothing, instead of decoding the same backlog again and again.
            with ws.connect() as con:
                start = time.monotonic()
                while True:
                    with store.transaction(con):
                        records, end = self.spool.read(self.batch_bytes)
                        if not records:
                            break
                        report = ingest_bodies(con, records)
                    self.spool.commit(end)
                    done += len(records)
                    self.ingested += len(records)
                    self.batches += 1
                    log.info("batch %d: %d bodies ingested (%s); total ingested %d, pending %d bytes",
                             self.batches, len(records), report.summary(), self.ingested,
                             self.spool.pending_bytes())
                    if not self.spool.pending_bytes() or time.monotonic() - start >= self.hold:
                        break
        except WorkspaceBusy:
            if not self.busy:
                log.info("workspace busy (another process holds it); %d bytes pending, will catch up",
                         self.spool.pending_bytes())
            self.busy = True
            return 0
        self.busy = False
        return done

    def run(self, stop, *, alive=lambda: True, publish=lambda ingester: None) -> None:
        """Ingest batch after batch until ``stop`` (an Event) is set or ``alive()`` fails;
        when idle, wait ``interval``. ``publish`` sees the ingester after every round."""
        while not stop.is_set() and alive():
            try:
                done = self.run_once()
            except Exception as exc:  # keep receiving; the spool keeps the bodies
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("ingest batch failed; bodies stay in the spool")
                done = 0
            publish(self)
            if not done:
                stop.wait(self.interval)

    def flush(self, flush_timeout: float = store.DEFAULT_TIMEOUT) -> None:
        """Ingest everything still pending, waiting for the file if need be."""
        try:
            while self.run_once(timeout=flush_timeout):
                pass
        except BizchatError as exc:
            log.warning("could not flush at shutdown (%s); the spool keeps %d bytes for next start",
                        exc, self.spool.pending_bytes())


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this worker when the receiver dies (e.g. SIGKILL),
    so a crashed receiver leaves no orphan; the spool replays at the next start."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the getppid() check in the loop ends it


def _ingest_process(path: str, interval: float, stop, counters) -> None:
    """The ingest worker, in its own process so its Python work never holds the
    receiver's GIL. Stops when told (then flushes) or when the receiver is gone."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the receiver decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parent = os.getppid()
    ingester = Ingester(Path(path), Spool(path, repair=False), interval=interval)

    def publish(ing: Ingester) -> None:
        counters[0], counters[1], counters[2] = ing.ingested, ing.batches, int(ing.busy)

    ingester.run(stop, alive=lambda: os.getppid() == parent, publish=publish)
    if os.getppid() == parent:
        ingester.flush()
        publish(ingester)


class IngestProcess:
    """Runs ``_ingest_process`` beside the receiver and reads its counters."""

    def __init__(self, path: Path, interval: float):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._counters = ctx.Array("q", 3, lock=False)
        self._process = ctx.Process(target=_ingest_process, name="bizchat-ingest", daemon=True,
                                    args=(str(path), interval, self._stop, self._counters))

    ingested = property(lambda self: self._counters[0])
    batches = property(lambda self: self._counters[1])
    busy = property(lambda self: bool(self._counters[2]))
    last_error = None  # the worker logs its errors to the receiver's stderr

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        self._stop.set()
        self._process.join()


class SpoolWriter:
    """Group commit: requests waiting at the same time share one write + fsync."""

    def __init__(self, spool: Spool):
        self.spool = spool
        self.accepted = 0
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def submit(self, line: bytes) -> None:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((line, future))
        await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await asyncio.to_thread(self.spool.append, [line for line, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    future.set_exception(exc)
                continue
            self.accepted += len(batch)
            for _, future in batch:
                future.set_result(None)

    async def stop(self) -> None:
        while self._queue is not None and not self._queue.empty():
            await asyncio.sleep(0.01)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Meta signs the raw body: ``X-Hub-Signature-256: sha256=<hex hmac>``."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256="):].strip().lower())


def sign(body: bytes, secret: str) -> str:
    """The signature header value for ``body`` (for tests and load generators)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def create_app(workspace: str | os.PathLike | None = None, *, app_secret: str | None = None,
               verify_token: str | None = None, max_body: int = MAX_BODY,
               interval: float = 0.2) -> Starlette:
    """The receiver app for the workspace at ``workspace``.

    Secrets default to ``$BIZCHAT_APP_SECRET`` and ``$BIZCHAT_VERIFY_TOKEN``; they are
    never logged. Without an app secret the receiver refuses to start, since it could
    not tell Meta's requests from forged ones.
    """
    app_secret = app_secret or os.environ.get("BIZCHAT_APP_SECRET")
    verify_token = verify_token or os.environ.get("BIZCHAT_VERIFY_TOKEN")
    if not app_secret:
        raise BizchatError("Set BIZCHAT_APP_SECRET to your Meta app secret before starting the "
                           "webhook receiver: without it no request can be verified.")
    path = store.resolve_path(workspace)
    spool = Spool(path)
    writer = SpoolWriter(spool)
    ingester = IngestProcess(path, interval)
    started = time.time()

    async def verify(request: Request) -> Response:
        q = request.query_params
        if (q.get("hub.mode") == "subscribe" and verify_token
                and hmac.compare_digest(q.get("hub.verify_token", ""), verify_token)):
            return PlainTextResponse(q.get("hub.challenge", ""))
        return PlainTextResponse("verification failed", status_code=403)

    async def receive(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body:
            return PlainTextResponse("payload too large", status_code=413)
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_body:
                    return PlainTextResponse("payload too large", status_code=413)
                chunks.append(chunk)
        except ClientDisconnect:
            return Response(status_code=400)
        body = b"".join(chunks)
        if not verify_signature(body, request.headers.get("x-hub-signature-256"), app_secret):
            return PlainTextResponse("invalid signature", status_code=401)
        try:
            json.loads(body)
        except ValueError:
            return PlainTextResponse("malformed JSON", status_code=400)
        await writer.submit(Spool.record(body))
        return PlainTextResponse("OK")

    async def health(request: Request) -> Response:
        return JSONResponse({
            "status": "ok",
            "workspace": str(path),
            "accepted": writer.accepted,
            "ingested": ingester.ingested,
            "batches": ingester.batches,
            "pending_bytes": spool.pending_bytes(),
            "workspace_busy": ingester.busy,
            "last_error": ingester.last_error,
            "uptime_s": round(time.time() - started, 1),
        })

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await writer.start()
        ingester.start()  # replays whatever an earlier run left in the spool
        log.info("receiving webhooks for %s (spool %s)", path, spool.path)
        try:
            yield
        finally:
            await writer.stop()
            await asyncio.to_thread(ingester.stop)
            log.info("stopped: accepted %d, ingested %d, pending %d bytes",
                     writer.accepted, ingester.ingested, spool.pending_bytes())

    app = Starlette(routes=[
        Route("/webhook", verify, methods=["GET"]),
        Route("/webhook", receive, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ], lifespan=lifespan)
    app.state.spool, app.state.ingester, app.state.writer = spool, ingester, writer
    return app


def serve(workspace=None, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the receiver until SIGTERM/SIGINT; a requested stop exits with status 0."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal after its graceful shutdown, which makes the
            # exit status "killed by SIGTERM"; a requested, clean stop should be 0.
            self._captured_signals.clear()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_app(workspace)
    server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                   access_log=False))
    server.run()
    if not server.started:
        raise BizchatError(f"The webhook receiver could not start on {host}:{port} "
                           "(is the port in use?).")
