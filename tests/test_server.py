"""The webhook receiver: verification, signatures, limits, durability before the 200,
and catching up while another process holds the workspace. In-process for the HTTP
rules, over a real socket with real signals for the process behaviour."""

from __future__ import annotations

import signal

import httpx
import pytest
from receiver_helpers import (
    SECRET,
    TOKEN,
    Holder,
    alive,
    free_port,
    post,
    start_receiver,
    wait_for,
)
from starlette.testclient import TestClient
from webhook_samples import PNID, dumps, status, text_message

import bizchat
from bizchat.receiver.server import create_app, sign

T0 = 1_790_000_000


@pytest.fixture
def workspace(tmp_path):
    ws = bizchat.open(tmp_path / "recv.duckdb")
    ws.accounts.add("+49 30 901820", name="Lindenblatt Verlag", phone_number_id=PNID)
    return ws


def test_subscription_check(workspace):
    app = create_app(workspace.path, app_secret=SECRET, verify_token=TOKEN)
    with TestClient(app) as client:
        ok = client.get("/webhook", params={"hub.mode": "subscribe", "hub.verify_token": TOKEN,
                                            "hub.challenge": "1158201444"})
        assert (ok.status_code, ok.text) == (200, "1158201444")
        bad = client.get("/webhook", params={"hub.mode": "subscribe", "hub.verify_token": "nope",
                                             "hub.challenge": "1"})
        assert bad.status_code == 403


def test_signed_post_is_stored_forged_and_malformed_are_not(workspace):
    app = create_app(workspace.path, app_secret=SECRET, verify_token=TOKEN, interval=0.05)
    body = dumps(text_message("491701234567", "wamid.S1", "Hallo", T0))
    with TestClient(app) as client:
        assert post(client, body).status_code == 200
        assert post(client, body, signature=None).status_code == 401
        assert post(client, body, signature="sha256=" + "0" * 64).status_code == 401
        assert post(client, body, signature=sign(body, "other-secret")).status_code == 401
        tampered = body.replace(b"Hallo", b"Hallx")
        assert post(client, tampered, signature=sign(body, SECRET)).status_code == 401
        malformed = b'{"object": "whatsapp_business_account", '
        assert post(client, malformed).status_code == 400
        assert wait_for(lambda: client.get("/health").json()["ingested"] == 1)
        health = client.get("/health").json()
        assert health["accepted"] == 1 and health["pending_bytes"] == 0
    assert workspace.sql("SELECT body FROM messages")["body"].tolist() == ["Hallo"]
    assert len(workspace.sql("SELECT * FROM raw_payloads")) == 1


def test_oversize_bodies_are_refused(workspace):
    app = create_app(workspace.path, app_secret=SECRET, max_body=1024)
    big = b'{"x": "' + b"a" * 2000 + b'"}'
    with TestClient(app) as client:
        assert post(client, big).status_code == 413

        def chunks():  # no content-length: the limit applies while streaming
            for i in range(0, len(big), 256):
                yield big[i:i + 256]
        response = client.post("/webhook", content=chunks(),
                               headers={"x-hub-signature-256": sign(big, SECRET)})
        assert response.status_code == 413
        assert client.get("/health").json()["accepted"] == 0


def test_the_receiver_refuses_to_start_without_a_secret(workspace, monkeypatch):
    monkeypatch.delenv("BIZCHAT_APP_SECRET", raising=False)
    with pytest.raises(bizchat.BizchatError, match="BIZCHAT_APP_SECRET"):
        create_app(workspace.path)


# --- over a real socket, as its own process -------------------------------------------

@pytest.mark.slow
def test_killed_after_200_loses_nothing_and_accepts_while_the_workspace_is_held(workspace):
    """Another process holds the workspace, so nothing can reach DuckDB; the receiver
    still answers 200 (spooled). SIGKILL it, release the file, start again: the spool is
    replayed and every accepted body is in the workspace, once."""
    path, port = workspace.path, free_port()
    proc, url = start_receiver(path, port)
    holder = Holder(path)
    try:
        bodies = [dumps(text_message("491701234567", f"wamid.K{i}", f"Nachricht {i}", T0 + i))
                  for i in range(20)]
        bodies += [dumps(status(f"wamid.K{i}", "read", T0 + 100 + i)) for i in range(20)]
        with httpx.Client(base_url=url, timeout=10) as client:
            codes = [post(client, b).status_code for b in bodies]
            assert codes == [200] * len(bodies)
            health = client.get("/health").json()
        assert health["accepted"] == 40 and health["ingested"] == 0
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stderr.close()
        # Its ingest process dies with it, a moment later: only then is the file let go.
        assert wait_for(lambda: not alive(health["ingest_pid"]), 10)
    finally:
        holder.release()
    assert workspace.sql("SELECT count(*) AS n FROM messages")["n"][0] == 0

    proc, url = start_receiver(path, port)
    try:
        assert wait_for(lambda: httpx.get(url + "/health").json()["pending_bytes"] == 0, 30)
        # Replaying the same bodies again (Meta retries) changes nothing.
        with httpx.Client(base_url=url, timeout=10) as client:
            assert all(post(client, b).status_code == 200 for b in bodies[:5])
        assert wait_for(lambda: httpx.get(url + "/health").json()["pending_bytes"] == 0, 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        proc.stderr.close()
    counts = workspace.sql("""SELECT (SELECT count(*) FROM messages) AS m,
                                     (SELECT count(*) FROM message_status WHERE status = 'read') AS r""")
    assert counts.values.tolist() == [[20, 20]]


@pytest.mark.slow
def test_sigterm_flushes_and_exits_zero(workspace):
    path, port = workspace.path, free_port()
    proc, url = start_receiver(path, port)
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(10):
            assert post(client, dumps(text_message("491701234567", f"wamid.T{i}", "x", T0 + i))).status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    log = proc.stderr.read()
    proc.stderr.close()
    assert "stopped: accepted 10" in log
    assert workspace.sql("SELECT count(*) AS n FROM messages")["n"][0] == 10
