"""Mailing the report's HTML: a real SMTP server (aiosmtpd) on 127.0.0.1 with STARTTLS and
a login; a failed mail is retried at the next run-due without running the notebook again
(issue 19, item 4)."""

from __future__ import annotations

import email
import socket
import ssl
import subprocess
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from schedule_helpers import SECRET, ensure_kernel, report_folder, schedule_file
from send_world import berlin

from bizchat.errors import DeliveryError
from bizchat.scheduling import delivery

PASSWORD = "smtp-pass-9c41d7e2b0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.mails = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append((envelope.rcpt_tos, envelope.content))
        return "250 OK"


def login(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"reports" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok)


@pytest.fixture
def certificate(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return key, cert


@pytest.mark.slow
def test_a_report_is_mailed_and_a_failed_mail_is_retried_without_rerunning(
        ws, tmp_path, monkeypatch, certificate):
    ensure_kernel()
    key, cert = certificate
    monkeypatch.setenv("BIZCHAT_REPORTS_DIR", str(report_folder(tmp_path / "my_reports")))
    monkeypatch.setenv("BIZCHAT_ACCESS_TOKEN", SECRET)
    port = free_port()
    monkeypatch.setenv("BIZCHAT_SMTP_URL", f"smtp+starttls://reports@127.0.0.1:{port}?from=bizchat@buchladen.example")
    monkeypatch.setenv("BIZCHAT_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("BIZCHAT_SMTP_CAFILE", str(cert))
    schedule_file(ws.path.parent / "schedule.toml",
                  {"name": "daily", "notebook": "hello", "cron": "0 7 * * *",
                   "timezone": "Europe/Berlin", "mail_to": ["chefin@buchladen.example", "it@buchladen.example"],
                   "params": {"day": "today"}})
    # The server is down: the report runs, the mail fails and is recorded.
    first = ws.schedule.run_due(now=berlin(2026, 12, 1, 9, 0), broadcasts=False)
    assert [r["status"] for r in first.reports] == ["ok"]
    assert [d["status"] for d in first.deliveries] == ["failed"] and first.failed == 1
    row = ws.sql("SELECT delivery, delivery_attempts, delivery_error FROM schedule_slots").iloc[0]
    assert row.delivery == "failed" and row.delivery_attempts == 1 and "127.0.0.1" in row.delivery_error
    assert PASSWORD not in row.delivery_error

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    inbox = Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context,
                        require_starttls=True, authenticator=login, auth_required=True)
    server.start()
    try:
        second = ws.schedule.run_due(now=berlin(2026, 12, 1, 9, 5), broadcasts=False)
        third = ws.schedule.run_due(now=berlin(2026, 12, 1, 9, 10), broadcasts=False)
    finally:
        server.stop()
    assert second.reports == [] and [d["status"] for d in second.deliveries] == ["sent"]
    assert third.deliveries == [] and second.failed == 0
    assert ws.sql("SELECT count(*) AS n FROM report_runs").n[0] == 1     # not run again
    (rcpts, raw), = inbox.mails
    assert sorted(rcpts) == ["chefin@buchladen.example", "it@buchladen.example"]
    mail = email.message_from_bytes(raw, policy=policy.default)
    assert mail["From"] == "bizchat@buchladen.example" and "daily" in mail["Subject"]
    (attachment,) = list(mail.iter_attachments())
    html = ws.sql("SELECT html_path FROM report_runs").html_path[0]
    assert attachment.get_content().replace("\r\n", "\n") == Path(html).read_text(encoding="utf-8")
    assert SECRET.encode() not in raw and PASSWORD.encode() not in raw
    row = ws.sql("SELECT delivery, delivery_attempts, delivered_at FROM schedule_slots").iloc[0]
    assert row.delivery == "sent" and row.delivery_attempts == 2 and row.delivered_at is not None


@pytest.mark.parametrize("url, match", [
    ("", "needs \\$BIZCHAT_SMTP_URL"),
    ("smtp://reports:hunter2@mail.example:587", "must not contain the password"),
    ("http://mail.example", "starts with smtp://"),
    ("smtp://:25", "names no host"),
])
def test_smtp_settings_refuse_what_would_leak_or_cannot_work(url, match):
    with pytest.raises(DeliveryError, match=match):
        delivery.settings(url)


def test_smtp_settings_read_the_url():
    cfg = delivery.settings("smtp://bot%40shop@mail.example?starttls=1&from=r@shop.example")
    assert (cfg.host, cfg.port, cfg.user, cfg.starttls, cfg.tls, cfg.sender) == (
        "mail.example", 587, "bot@shop", True, False, "r@shop.example")
    assert delivery.settings("smtps://mail.example").port == 465
    assert delivery.settings("smtp+starttls://mail.example").port == 587


@pytest.mark.slow
def test_delivery_gives_up_after_the_last_attempt_and_says_so(ws, tmp_path, monkeypatch):
    """A mail server that never comes back: ten passes try, the tenth marks the delivery
    given up (counted as a failure, with the report's path), and later passes leave it."""
    from bizchat.scheduling.runner import MAX_DELIVERY_ATTEMPTS

    ensure_kernel()
    monkeypatch.setenv("BIZCHAT_REPORTS_DIR", str(report_folder(tmp_path / "my_reports")))
    monkeypatch.setenv("BIZCHAT_SMTP_URL", f"smtp://127.0.0.1:{free_port()}?from=b@example.org")
    schedule_file(ws.path.parent / "schedule.toml",
                  {"name": "daily", "notebook": "hello", "cron": "0 7 * * *",
                   "timezone": "Europe/Berlin", "mail_to": ["chefin@buchladen.example"],
                   "params": {"day": "today"}})
    outcomes = []
    for minute in range(MAX_DELIVERY_ATTEMPTS + 1):
        done = ws.schedule.run_due(now=berlin(2026, 12, 1, 9, minute), broadcasts=False)
        outcomes.append([d["status"] for d in done.deliveries])
    assert outcomes == [["failed"]] * (MAX_DELIVERY_ATTEMPTS - 1) + [["gave_up"], []]
    assert ws.sql("SELECT count(*) AS n FROM report_runs").n[0] == 1     # ran once
    row = ws.sql("SELECT delivery, delivery_attempts, delivery_error FROM schedule_slots").iloc[0]
    assert row.delivery == "gave_up" and row.delivery_attempts == MAX_DELIVERY_ATTEMPTS
    html = ws.sql("SELECT html_path FROM report_runs").html_path[0]
    assert f"Gave up after {MAX_DELIVERY_ATTEMPTS} attempts" in row.delivery_error
    assert html in row.delivery_error
