"""The webhook receiver: a Starlette app for the WhatsApp Cloud API.

- ``GET /webhook``: Meta's subscription check (hub.verify_token against
  ``$BIZCHAT_VERIFY_TOKEN``).
- ``POST /webhook``: checks ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with
  ``$BIZCHAT_APP_SECRET``), then makes the body durable in the spool and only then
  answers 200: a 200 is a promise that the body reaches the workspace (or is kept there as
  rejected). Concurrent requests share one fsync (group commit), so throughput does not
  stop at the disk's fsync rate. A body that is not UTF-8 JSON gets 400, never 500 (Meta
  retries 500s for days); a request head must arrive within ``header_timeout``
  (slow_headers.py) and a body within ``body_timeout``, its size checked as it streams
  in; a spool that cannot be written (disk full) gets 503, which Meta retries.
- Memory: the signature covers the whole body, so a body must be held whole before it
  can be told from a forgery. What bodies not yet verified may hold together is capped
  (``max_unverified``, see UnverifiedBudget); a request that would pass the cap gets 503
  at once (Meta retries it) instead of the receiver's memory growing with every forged
  upload.
- A separate ingest process moves spooled bodies into DuckDB (ingester.py, watched and
  restarted by ingest_process.py). While another process holds the workspace it waits
  and catches up, and the receiver keeps accepting meanwhile.
- ``GET /health``: counters as JSON; 503 when bodies are pending and ingestion has not
  advanced for ``stall_after`` seconds.

On SIGTERM/SIGINT uvicorn runs the shutdown: pending bodies are written, the ingest
process flushes the spool, and the process exits 0 (1 if the flush failed: the spool keeps
the rest for the next start). After SIGKILL the spool is replayed at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .. import store
from ..errors import BizchatError, FlushFailed, NoWorkspace, WorkspaceBusy, WorkspaceUnusable
from ..ingest.payloads import payload_id
from ..ingest.spool import Spool, encode_line
from .ingest_process import IngestProcess
from .slow_headers import HEADER_TIMEOUT, header_timeout_protocol

log = logging.getLogger("bizchat.webhook")

MAX_BODY = 4 * 1024 * 1024  # Meta's batches reach about 3 MB
MAX_UNVERIFIED = 32 * 1024 * 1024   # bytes all bodies not yet verified may hold together
BODY_TIMEOUT = 20.0         # seconds to receive a whole body
STALL_AFTER = 120.0         # seconds without progress while bodies wait: /health says 503

_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}\s*")


class SpoolWriter:
    """Group commit: requests waiting at the same time share one write + fsync, done on a
    thread of its own so the event loop keeps reading requests meanwhile."""

    def __init__(self, spool: Spool):
        self.spool = spool
        self.accepted = 0
        self._waiting: list[tuple[bytes, asyncio.Future]] = []
        self._wake = asyncio.Event()    # made anew by start(), in the server's loop
        self._task: asyncio.Task | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="bizchat-spool")
        self._task = asyncio.create_task(self._run())

    async def submit(self, line: bytes) -> None:
        """Returns once ``line`` is fsynced; raises OSError if it could not be written."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((line, future))
        self._wake.set()
        await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            await asyncio.sleep(0)   # let the requests that are ready now join this group
            self._wake.clear()
            batch, self._waiting = self._waiting, []
            if not batch:
                continue
            try:
                await loop.run_in_executor(self._thread, self.spool.append,
                                           [line for line, _ in batch])
            except Exception as exc:  # noqa: BLE001 - each waiting request answers for it
                for _, future in batch:
                    future.set_exception(exc)
                continue
            self.accepted += len(batch)
            for _, future in batch:
                future.set_result(None)

    async def stop(self) -> None:
        while self._waiting:
            await asyncio.sleep(0.01)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._thread:
            self._thread.shutdown(wait=True)


class UnverifiedBudget:
    """Bytes held by request bodies whose signature cannot be checked yet (all of them
    until their last byte). A body reserves its declared length before a byte is read,
    or, sent chunked, each chunk as it comes; ``release`` gives it back once the body is
    verified, refused or gone. One event loop, so no lock."""

    def __init__(self, limit: int):
        self.limit = limit
        self.held = 0
        self.peak = 0
        self.refused = 0

    def take(self, n: int) -> bool:
        if self.held + n > self.limit:
            self.refused += 1
            return False
        self.held += n
        self.peak = max(self.peak, self.held)
        return True

    def release(self, n: int) -> None:
        self.held -= n


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Meta signs the raw body: ``X-Hub-Signature-256: sha256=<hex hmac>``."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256="):].strip().lower())


def sign(body: bytes, secret: str) -> str:
    """The signature header value for ``body`` (for tests and load generators)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def check_workspace(path, *, create: bool = True) -> None:
    """Refuse a workspace the ingester could never write (a newer schema, a file that is
    not a DuckDB database), with one line; a busy one is fine (the spool waits). With
    ``create=False`` a missing workspace is refused too (``NoWorkspace``), as every
    command but ``init`` and ``demo`` does."""
    import duckdb

    from ..workspace import Workspace

    try:
        Workspace(path, timeout=2.0, create=create)
    except NoWorkspace:
        raise
    except WorkspaceBusy:
        log.info("the workspace %s is busy; bodies are spooled and ingested when it is free", path)
    except (BizchatError, duckdb.Error) as exc:
        reason = " ".join(str(exc).split())
        raise WorkspaceUnusable(
            f"The webhook receiver cannot store into {path}: {reason} "
            "It did not start, so it accepted nothing it could not keep.", path=str(path)) from exc


def _closing(status: int, text: str) -> Response:
    """An answer after which the connection is closed (the rest of the body is unread)."""
    return PlainTextResponse(text, status_code=status, headers={"connection": "close"})


def _unverified_full(budget: UnverifiedBudget) -> Response:
    """503 (Meta retries it) when bodies not yet verified hold the whole budget."""
    if budget.refused in (1, 10, 100) or budget.refused % 1000 == 0:
        log.warning("refused a request with 503: bodies not yet verified hold %d of %d bytes "
                    "(%d refused so far; forged uploads, or more concurrent deliveries than "
                    "--max-unverified-mb allows)", budget.held, budget.limit, budget.refused)
    return PlainTextResponse("too many unverified uploads at once; try again", status_code=503,
                             headers={"connection": "close", "retry-after": "5"})


def create_app(workspace: str | os.PathLike | None = None, *, app_secret: str | None = None,
               verify_token: str | None = None, max_body: int = MAX_BODY,
               interval: float = 0.2, body_timeout: float = BODY_TIMEOUT,
               stall_after: float = STALL_AFTER,
               flush_timeout: float = store.DEFAULT_TIMEOUT, create: bool = True,
               max_unverified: int = MAX_UNVERIFIED) -> Starlette:
    """The receiver app for the workspace at ``workspace``.

    Secrets default to ``$BIZCHAT_APP_SECRET`` and ``$BIZCHAT_VERIFY_TOKEN``; they are
    never logged. Without an app secret the receiver refuses to start, since it could
    not tell Meta's requests from forged ones; so it does for a workspace it could never
    write (``WorkspaceUnusable``).
    """
    app_secret = app_secret or os.environ.get("BIZCHAT_APP_SECRET")
    verify_token = verify_token or os.environ.get("BIZCHAT_VERIFY_TOKEN")
    if not app_secret:
        raise BizchatError("Set BIZCHAT_APP_SECRET to your Meta app secret before starting the "
                           "webhook receiver: without it no request can be verified.")
    path = store.resolve_path(workspace)
    check_workspace(path, create=create)
    spool = Spool(path)
    writer = SpoolWriter(spool)
    ingester = IngestProcess(path, interval, flush_timeout=flush_timeout)
    budget = UnverifiedBudget(max_unverified)
    started = time.time()

    async def verify(request: Request) -> Response:
        q = request.query_params
        if (q.get("hub.mode") == "subscribe" and verify_token
                and hmac.compare_digest(q.get("hub.verify_token", ""), verify_token)):
            return PlainTextResponse(q.get("hub.challenge", ""))
        return PlainTextResponse("verification failed", status_code=403)

    async def _read_body(request: Request, reserved: int) -> bytes | Response:
        """The whole body within ``body_timeout`` and ``max_body``; bytes past the
        ``reserved`` ones (a chunked body, a short Content-Length) take budget as they come
        and are released here."""
        chunks, size, extra = [], 0, 0
        try:
            async with asyncio.timeout(body_timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_body:
                        return _closing(413, "payload too large")
                    if size > reserved + extra:
                        more = size - reserved - extra
                        if not budget.take(more):
                            return _unverified_full(budget)
                        extra += more
                    chunks.append(chunk)
        except TimeoutError:
            return _closing(408, "body not received in time")
        except ClientDisconnect:
            return Response(status_code=400)
        finally:
            budget.release(extra)
        return b"".join(chunks)

    async def receive(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body:
            return _closing(413, "payload too large")
        signature = request.headers.get("x-hub-signature-256")
        if not signature or not _SIGNATURE.fullmatch(signature):
            return _closing(401, "invalid signature")     # no body read for a request unsigned
        reserved = int(declared) if declared and declared.isdigit() else 0
        if not budget.take(reserved):
            return _unverified_full(budget)
        try:
            body = await _read_body(request, reserved)
        finally:
            budget.release(reserved)
        if isinstance(body, Response):
            return body
        if not verify_signature(body, signature, app_secret):
            return PlainTextResponse("invalid signature", status_code=401)
        try:
            text = body.decode("utf-8")      # strict: no UTF-16, no encoded lone surrogates
            json.loads(text)
        except UnicodeDecodeError:
            return PlainTextResponse("the body is not UTF-8", status_code=400)
        except (ValueError, RecursionError):
            return PlainTextResponse("malformed JSON", status_code=400)
        line = encode_line(payload_id(body), datetime.now(UTC).isoformat(), text)
        try:
            await writer.submit(line)
        except OSError as exc:
            log.error("could not spool a body (%s); answered 503 so that Meta sends it again", exc)
            return PlainTextResponse("could not store the body now; try again", status_code=503)
        return PlainTextResponse("OK")

    def _safely(read, default=None):
        """A file-derived figure; /health must answer even when a file cannot be read."""
        try:
            return read()
        except OSError:
            return default

    async def health(request: Request) -> Response:
        info = ingester.health()
        now = time.time()
        pending = _safely(spool.pending_bytes, 0)
        oldest = _safely(spool.oldest_pending) if pending else None
        since = max(info["advanced_at"] or started, oldest.timestamp() if oldest else 0)
        stalled = pending > 0 and now - since > stall_after
        error_at = info["last_error_at"]
        return JSONResponse({
            "status": "stalled" if stalled else "ok",
            "workspace": str(path),
            "accepted": writer.accepted,
            "ingested": info["ingested"],
            "rejected": info["rejected_total"] if info["rejected_total"] is not None
            else info["rejected"],
            "quarantined": _safely(spool.quarantined),
            "batches": info["batches"],
            "pending_bytes": pending,
            "oldest_pending_age_s": round(now - oldest.timestamp(), 1) if oldest else None,
            "stalled_for_s": round(now - since, 1) if pending else 0.0,
            "stall_after_s": stall_after,
            "workspace_busy": info["busy"],
            "ingest_running": info["alive"],
            "ingest_pid": info["pid"],
            "ingest_restarts": info["restarts"],
            "last_error": info["last_error"],
            "last_error_at": (datetime.fromtimestamp(error_at, UTC).isoformat(timespec="seconds")
                              if error_at else None),
            "unverified_bytes": budget.held,
            "unverified_refused": budget.refused,
            "uptime_s": round(now - started, 1),
        }, status_code=503 if stalled else 200)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await writer.start()
        ingester.start()  # replays whatever an earlier run left in the spool
        log.info("receiving webhooks for %s (spool %s)", path, spool.path)
        try:
            yield
        finally:
            await writer.stop()
            flushed = await asyncio.to_thread(ingester.stop)
            log.info("stopped: accepted %d, ingested %d, pending %d bytes%s",
                     writer.accepted, ingester.ingested, spool.pending_bytes(),
                     "" if flushed else " (the final flush failed; they stay in the spool)")

    app = Starlette(routes=[
        Route("/webhook", verify, methods=["GET"]),
        Route("/webhook", receive, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ], lifespan=lifespan)
    app.state.spool, app.state.ingester, app.state.writer = spool, ingester, writer
    app.state.budget = budget
    return app


def serve(workspace=None, host: str = "127.0.0.1", port: int = 8080, *,
          header_timeout: float = HEADER_TIMEOUT, **options) -> None:
    """Run the receiver until SIGTERM/SIGINT; a requested stop exits with status 0, and
    raises FlushFailed (status 1) if bodies could not be flushed into the workspace.
    A request head must arrive within ``header_timeout`` seconds (slow_headers.py).
    ``options`` go to ``create_app`` (stall_after, flush_timeout, body_timeout, ...)."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal after its graceful shutdown, which makes the
            # exit status "killed by SIGTERM"; a requested, clean stop should be 0.
            self._captured_signals.clear()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_app(workspace, **{"create": False, **options})  # like every command but init
    server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                   access_log=False, http=header_timeout_protocol(header_timeout)))
    server.run()
    if not server.started:
        raise BizchatError(f"The webhook receiver could not start on {host}:{port} "
                           "(is the port in use?).")
    if app.state.ingester.flushed is False:
        spool = app.state.spool
        raise FlushFailed(f"The receiver stopped, but {spool.pending_bytes()} bytes of accepted "
                          f"bodies could not be flushed into the workspace; they stay in "
                          f"{spool.path} and are ingested at the next start.",
                          path=str(spool.path))
