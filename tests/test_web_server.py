"""`bizchat web` over real HTTP on 127.0.0.1, no browser: nothing without the token, the
token nowhere but the URL line, the kernel cap and culling, a clean stop on SIGTERM and
Ctrl-C with no kernel left behind."""

from __future__ import annotations

import base64
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
from conftest import copy_workspace
from web_server import WebServer, alive

import bizchat

KERNEL_ID = re.compile(r'"kernelId": "([0-9a-f-]{36})"')


def render(server: WebServer, name: str, client: httpx.Client | None = None,
           **params) -> httpx.Response:
    get = client.get if client else httpx.get
    return get(server.page(name), params=params, timeout=120, follow_redirects=False)


def contact_names(path) -> list[str]:
    ws = bizchat.open(path, read_only=True)
    account = int(ws.accounts.list()["account_id"].iloc[0])
    chats = ws.chats.inbox(account, limit=20)
    return [n for n in chats["name"].dropna() if len(n) > 4]


def websocket_handshake(server: WebServer, path: str, **params) -> int:
    key = base64.b64encode(os.urandom(16)).decode()
    response = httpx.get(server.base + path, params=params, timeout=30, headers={
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key})
    return response.status_code


@pytest.mark.slow
def test_without_the_token_no_page_kernel_or_file_is_served(web):
    names = contact_names(web.workspace)
    assert names
    page = render(web, "inbox.ipynb", token=web.token)        # with it: the page, a kernel
    assert page.status_code == 200
    kernel = KERNEL_ID.search(page.text).group(1)

    pages = ["/", "/voila/render/index.ipynb", "/voila/render/inbox.ipynb",
             "/voila/render/labels.ipynb", "/voila/tree"]
    endpoints = [f"/api/kernels/{kernel}", "/voila/api/contents", "/voila/api/contents/inbox.ipynb",
                 "/voila/files/inbox.ipynb", "/voila/files/index.ipynb"]
    for credentials in ({}, {"params": {"token": "wrong-token-wrong-token"}},
                        {"headers": {"Authorization": "token wrong-token-wrong-token"}}):
        for path in pages + endpoints:
            r = httpx.get(web.base + path, timeout=30, follow_redirects=False, **credentials)
            if path in pages:
                assert r.status_code == 302 and "/login" in r.headers["location"], (path, r)
            else:
                assert r.status_code in (401, 403), (path, r.status_code)
            assert kernel not in r.text and not any(n in r.text for n in names), path
    # the kernel's websocket refuses the handshake without the token
    assert websocket_handshake(web, f"/api/kernels/{kernel}/channels") == 403
    assert websocket_handshake(web, f"/api/kernels/{kernel}/channels",
                               token="wrong-token-wrong-token") == 403
    assert httpx.post(f"{web.base}/voila/api/shutdown/{kernel}", timeout=30).status_code == 403
    # /api/kernels (the kernel list) is no route of the web app at all
    assert httpx.get(web.base + "/api/kernels", params={"token": web.token},
                     timeout=30).status_code == 404


@pytest.mark.slow
def test_the_token_is_only_in_the_url_line(web):
    render(web, "index.ipynb", token=web.token)
    httpx.get(web.base + "/no/such/page", params={"token": web.token}, timeout=30)   # logged
    logs = web.logs()
    assert logs.count(web.token) == 1 and f"?token={web.token}" in logs.splitlines()[0]
    for pid in web.kernel_pids():                            # the kernels never get it
        for part in ("environ", "cmdline"):
            try:
                held = Path(f"/proc/{pid}/{part}").read_bytes()
            except OSError:   # gone meanwhile
                continue
            assert web.token.encode() not in held, (pid, part)
    for path in web.workspace.parent.iterdir():              # nor the workspace (or its key)
        assert web.token.encode() not in path.read_bytes(), path.name
    ws = bizchat.open(web.workspace, read_only=True)
    hits = ws.sql("SELECT count(*) AS n FROM audit_log WHERE strpos(CAST(details AS VARCHAR), ?) > 0"
                  " OR strpos(actor, ?) > 0", params=[web.token, web.token])
    assert int(hits["n"].iloc[0]) == 0


@pytest.mark.slow
def test_the_kernel_cap_culling_and_sigterm(demo_template, tmp_path):
    server = WebServer(copy_workspace(demo_template, tmp_path), tmp_path,
                       "--max-kernels", "1", "--cull-idle", "2").start()
    try:
        with httpx.Client() as client:
            assert render(server, "index.ipynb", client, token=server.token).status_code == 200
            full = render(server, "index.ipynb", client)   # the cookie carries the token
            assert full.status_code == 503
            assert "All 1 page slots are in use" in full.text and "try again" in full.text
            # the first page's kernel is idle with no browser attached: culled, a slot frees
            deadline = time.monotonic() + 60
            while (again := render(server, "index.ipynb", client)).status_code == 503:
                assert time.monotonic() < deadline, "the idle kernel was never culled"
                time.sleep(1)
            assert again.status_code == 200
        kernels = server.kernel_pids()
        assert kernels
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.logs()[-2000:]
    time.sleep(0.5)
    assert [pid for pid in kernels if alive(pid)] == []


@pytest.mark.slow
def test_ctrl_c_stops_the_server_and_its_kernels(tiny_template, tmp_path):
    path, _ = tiny_template
    server = WebServer(copy_workspace(path, tmp_path), tmp_path).start()
    try:
        assert render(server, "labels.ipynb", token=server.token).status_code == 200
        kernels = server.kernel_pids()
        assert kernels
    finally:
        code = server.stop(signal.SIGINT)
    assert code == 0, server.logs()[-2000:]
    time.sleep(0.5)
    assert [pid for pid in kernels if alive(pid)] == []
