"""A fake Graph API (WhatsApp Cloud API send endpoint) on 127.0.0.1, for tests.

A real HTTP server (``http.server`` in a thread) on a free port, so the transport is
tested over a real socket with httpx. It answers ``POST /{version}/{phone_number_id}/
messages`` from a script: responses queued for one recipient (``to``) come first, then
the shared queue, else success with a fresh ``wamid.FAKE...``. Every request is recorded
(path, Authorization header, JSON body, arrival time).

    with FakeGraph(token="t") as graph:
        graph.script(FakeGraph.error(130429, status=429, retry_after=0.1), FakeGraph.ok())
        CloudApiTransport(base_url=graph.url, token="t") ...
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERROR_TEXTS = {
    130429: ("Rate limit hit", "Cloud API message throughput has been reached."),
    131026: ("Message Undeliverable.", "Message Undeliverable."),
    131047: ("Re-engagement message", "More than 24 hours have passed since the recipient "
             "last replied to the sender number."),
    131049: ("This message was not delivered to maintain healthy ecosystem engagement.",
             "In order to maintain a healthy ecosystem engagement, the message failed to be "
             "delivered."),
    131050: ("Unable to deliver the message. This recipient has chosen to stop receiving "
             "marketing messages on WhatsApp from your business.", "User stopped marketing."),
    131056: ("(Business Account, Consumer Account) pair rate limit hit",
             "Message failed to send because there were too many messages sent from this "
             "phone number to the same phone number in a short period of time."),
    132000: ("Number of parameters does not match the expected number of params",
             "body: number of localizable_params (1) does not match the expected number of "
             "params (2)"),
    131000: ("Something went wrong", "Something went wrong."),
    190: ("Invalid OAuth access token - Cannot parse access token", "Invalid token."),
}


class FakeGraph:
    def __init__(self, token: str = "test-token"):
        self.token = token
        self.requests: list[dict] = []
        self._queue: deque = deque()
        self._by_to: dict[str, deque] = defaultdict(deque)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- responses ------------------------------------------------------------------

    @staticmethod
    def ok(message_id: str | None = None, delay: float = 0.0) -> dict:
        return {"kind": "ok", "message_id": message_id, "delay": delay}

    @staticmethod
    def error(code: int, *, status: int = 400, retry_after: str | float | None = None,
              delay: float = 0.0) -> dict:
        title, details = ERROR_TEXTS.get(code, ("Error", "Error."))
        body = {"error": {"message": f"(#{code}) {title}", "type": "OAuthException",
                          "code": code, "error_data": {"messaging_product": "whatsapp",
                                                       "details": details},
                          "fbtrace_id": "AfakeTrace"}}
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return {"kind": "raw", "status": status, "body": body, "headers": headers, "delay": delay}

    @staticmethod
    def raw(status: int, body, headers: dict | None = None, delay: float = 0.0) -> dict:
        return {"kind": "raw", "status": status, "body": body, "headers": headers or {},
                "delay": delay}

    def script(self, *responses: dict, to: str | None = None) -> None:
        """Queue responses for the next requests (to one recipient, or to anyone)."""
        with self._lock:
            (self._by_to[to] if to else self._queue).extend(responses)

    def _next(self, to: str | None) -> dict:
        with self._lock:
            if to in self._by_to and self._by_to[to]:
                return self._by_to[to].popleft()
            if self._queue:
                return self._queue.popleft()
            return self.ok()

    # --- server ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "use FakeGraph as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def sent_to(self, to: str) -> list[dict]:
        return [r for r in self.requests if (r["json"] or {}).get("to") == to]

    def __enter__(self) -> FakeGraph:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                auth = self.headers.get("Authorization")
                with fake._lock:
                    fake.requests.append({"path": self.path, "authorization": auth,
                                          "json": body, "at": time.monotonic()})
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[2] != "messages":
                    return self._answer(404, {"error": {"message": "Unknown path", "code": 100}})
                if auth != f"Bearer {fake.token}":
                    return self._answer(401, FakeGraph.error(190)["body"])
                to = (body or {}).get("to")
                response = fake._next(to)
                if response["delay"]:
                    time.sleep(response["delay"])
                if response["kind"] == "ok":
                    message_id = response["message_id"] or f"wamid.FAKE{next(fake._ids):08d}"
                    return self._answer(200, {
                        "messaging_product": "whatsapp",
                        "contacts": [{"input": to, "wa_id": "".join(c for c in str(to) if c.isdigit())}],
                        "messages": [{"id": message_id, "message_status": "accepted"}]})
                return self._answer(response["status"], response["body"], response["headers"])

            def _answer(self, status: int, body, headers: dict | None = None):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    # One request per connection: nothing stays open when the test ends.
                    self.send_header("Connection", "close")
                    self.close_connection = True
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
