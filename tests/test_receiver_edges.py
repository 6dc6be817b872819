"""The receiver's edges (issue 13, item 5): a body it cannot read gets 400, never 500
(Meta retries 500s for days) and nothing is kept; a body must arrive in time; an unsigned
upload is refused before its body is read, so it costs no memory."""

from __future__ import annotations

import os
import socket
import time

import pytest
from receiver_helpers import SECRET, free_port, post, start_receiver, stop, wait_for
from starlette.testclient import TestClient
from webhook_samples import PNID, dumps, text_message

import bizchat
from bizchat.receiver.server import create_app, sign


@pytest.fixture
def workspace(tmp_path):
    ws = bizchat.open(tmp_path / "recv.duckdb")
    ws.accounts.add("+49 30 901820", name="Lindenblatt Verlag", phone_number_id=PNID)
    return ws


VALID = dumps(text_message("491701234567", "wamid.E1", "Grüße", 1_790_000_000))
UNREADABLE = {
    "UTF-16": VALID.decode().encode("utf-16"),
    "UTF-16 without BOM": VALID.decode().encode("utf-16-le"),
    "an encoded lone surrogate": dumps(text_message("491701234567", "wamid.E2", "SURR", 1_790_000_000)
                                       ).replace(b"SURR", b"Gr\xed\xa0\x80e"),
    "nested 100,000 levels deep": b'{"object":"whatsapp_business_account","entry":'
                                  + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "Latin-1": dumps(text_message("491701234567", "wamid.E3", "SURR", 1_790_000_000)
                     ).replace(b"SURR", "Grüße".encode("latin-1")),
}


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_a_signed_body_that_is_not_utf8_json_gets_400_and_nothing_is_kept(workspace, name):
    app = create_app(workspace.path, app_secret=SECRET)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = post(client, UNREADABLE[name])
        assert response.status_code == 400, response.text
        assert post(client, VALID).status_code == 200
        health = client.get("/health").json()
    assert health["accepted"] == 1
    assert workspace.sql("SELECT count(*) AS n FROM raw_payloads")["n"][0] == 1


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)
    return sock


def _answer(sock: socket.socket) -> tuple[bytes, bool]:
    """(the response bytes, whether the server closed the connection after it)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        return data, True
    return data, True


def _head(port: int, length: int, signature: str | None) -> bytes:
    head = (f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n")
    if signature:
        head += f"X-Hub-Signature-256: {signature}\r\n"
    return (head + "\r\n").encode()


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_slow_bodies_are_cut_off_and_unsigned_uploads_cost_no_memory(workspace):
    port = free_port()
    proc, url = start_receiver(workspace.path, port, "--body-timeout", "2")
    try:
        # 1. Bodies trickled after the headers: answered 408 and closed within the limit.
        body = VALID
        trickled = []
        for _ in range(50):
            sock = _connect(port)
            sock.sendall(_head(port, len(body), sign(body, SECRET)) + body[:20])
            trickled.append(sock)
        started = time.monotonic()
        answers = [_answer(sock) for sock in trickled]
        assert time.monotonic() - started < 8
        assert all(data.startswith(b"HTTP/1.1 408") and closed for data, closed in answers)
        for sock in trickled:
            sock.close()
        # 2. 40 unsigned 3.9 MiB uploads, never finished: refused before the body is read.
        size = int(3.9 * 1024 * 1024)
        before = _rss_kib(proc.pid)
        uploads = []
        for _ in range(40):
            sock = _connect(port)
            sock.sendall(_head(port, size, None))
            try:
                sock.sendall(b"x" * (size - 1))     # all but the last byte
            except (BrokenPipeError, ConnectionResetError):
                pass                                # refused while sending: as it should
            uploads.append(sock)
        grown = _rss_kib(proc.pid) - before
        answers = [_answer(sock) for sock in uploads]
        assert all(data.startswith(b"HTTP/1.1 401") for data, _ in answers if data)
        assert grown < 30 * 1024, f"the receiver grew by {grown / 1024:.0f} MiB"
        for sock in uploads:
            sock.close()
        # 3. Declared too large: 413 at once.
        sock = _connect(port)
        sock.sendall(_head(port, 5 * 1024 * 1024, sign(b"", SECRET)))
        data, closed = _answer(sock)
        sock.close()
        assert data.startswith(b"HTTP/1.1 413") and closed
        # The receiver is fine afterwards.
        import httpx

        with httpx.Client(base_url=url, timeout=10) as client:
            assert post(client, VALID).status_code == 200
        assert wait_for(lambda: workspace_has(workspace, 1), 30)
    finally:
        code, log = stop(proc)
    assert code == 0, log


def workspace_has(workspace, n: int) -> bool:
    try:
        return workspace.sql("SELECT count(*) AS n FROM messages")["n"][0] == n
    except bizchat.WorkspaceBusy:
        return False


def _small_disk(limit: int):
    """For the receiver's process: files may not grow past ``limit`` bytes (a full disk);
    a write past it fails with EFBIG instead of killing the process."""
    import resource
    import signal

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_a_spool_that_cannot_be_written_answers_503_and_keeps_every_200(workspace):
    """The disk fills up: bodies that could not be made durable get 503 (Meta sends them
    again), not 500 and never 200; nothing half-written stays in the spool; every body
    answered 200 is in the workspace after a restart with room."""
    import httpx

    port = free_port()
    proc, url = start_receiver(workspace.path, port, preexec_fn=_small_disk(24_000))
    codes = {}
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            for i in range(80):
                body = dumps(text_message("491701234567", f"wamid.F{i}", f"Nachricht {i} " * 20,
                                          1_790_000_000 + i))
                codes[i] = post(client, body).status_code
    finally:
        stop(proc)
    assert set(codes.values()) == {200, 503}, codes
    ok = sorted(i for i, code in codes.items() if code == 200)
    proc, url = start_receiver(workspace.path, port)
    try:
        assert wait_for(lambda: workspace_has(workspace, len(ok)), 60)
    finally:
        code, log = stop(proc)
    assert code == 0, log
    stored = workspace.sql("SELECT message_id FROM messages ORDER BY created_at")["message_id"].tolist()
    assert stored == [f"wamid.F{i}" for i in ok]
    assert not os.path.exists(f"{workspace.path}.spool.quarantine")


@pytest.mark.slow
def test_a_client_trickling_its_headers_is_cut_off_at_the_header_timeout(workspace):
    """Slowloris: headers sent a byte at a time. uvicorn's keep-alive timer stops at the
    first byte, so without the receiver's own head timer these connections stay open."""
    import httpx

    port = free_port()
    proc, url = start_receiver(workspace.path, port, "--header-timeout", "1")
    try:
        head = _head(port, len(VALID), sign(VALID, SECRET))
        socks = [_connect(port) for _ in range(20)]
        started = time.monotonic()
        closed_at: dict[int, float] = {}
        for i in range(len(head)):           # one byte per socket every 0.1 s, for ~4 s
            if time.monotonic() - started > 4 or len(closed_at) == len(socks):
                break
            for n, sock in enumerate(socks):
                if n in closed_at:
                    continue
                try:
                    sock.sendall(head[i:i + 1])
                except (BrokenPipeError, ConnectionResetError):
                    closed_at[n] = time.monotonic() - started
            time.sleep(0.1)
        for n, sock in enumerate(socks):
            if n not in closed_at:
                sock.settimeout(max(0.1, 4 - (time.monotonic() - started)))
                data, closed = _answer(sock)
                if closed:
                    closed_at[n] = time.monotonic() - started
                    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:80]
            sock.close()
        assert len(closed_at) == len(socks), f"{len(socks) - len(closed_at)} connections still open"
        assert max(closed_at.values()) < 3.5, closed_at
        # A client that sends its request at once is served as before, keep-alive included.
        with httpx.Client(base_url=url, timeout=10) as client:
            assert post(client, VALID).status_code == 200
            time.sleep(0.5)
            assert client.get("/health").status_code == 200
    finally:
        code, log = stop(proc)
    assert code == 0, log


@pytest.mark.slow
def test_forged_uploads_hold_no_more_memory_than_the_unverified_budget(workspace):
    """A well-formed but wrong signature can only be told after the whole body: 40 such
    3.9 MiB uploads left unfinished raised the receiver from 126 to 309 MiB and held it.
    With an 8 MiB budget, two are read and the rest answered 503 at once; a real
    delivery still fits beside them."""
    import httpx

    port = free_port()
    proc, url = start_receiver(workspace.path, port, "--max-unverified-mb", "8",
                               "--body-timeout", "4")
    size = int(3.9 * 1024 * 1024)
    forged = "sha256=" + "0" * 64
    try:
        before = _rss_kib(proc.pid)
        uploads = []
        for _ in range(40):
            sock = _connect(port)
            sock.sendall(_head(port, size, forged))
            try:
                sock.sendall(b"x" * (size - 1))     # all but the last byte
            except (BrokenPipeError, ConnectionResetError):
                pass                                # refused while sending
            uploads.append(sock)
        time.sleep(0.5)
        grown = _rss_kib(proc.pid) - before
        with httpx.Client(base_url=url, timeout=10) as client:
            assert post(client, VALID).status_code == 200      # fits beside the two
            info = client.get("/health").json()
        assert info["unverified_refused"] >= 38
        assert info["unverified_bytes"] <= 8 * 1024 * 1024
        answers = [_answer(sock) for sock in uploads]
        codes = [data[9:12] for data, _ in answers if data]
        assert codes.count(b"503") >= 38, codes
        assert set(codes) <= {b"503", b"408"}, codes
        assert grown < 30 * 1024, f"the receiver grew by {grown / 1024:.0f} MiB"
        for sock in uploads:
            sock.close()
        assert wait_for(lambda: workspace_has(workspace, 1), 30)
    finally:
        code, log = stop(proc)
    assert code == 0, log
