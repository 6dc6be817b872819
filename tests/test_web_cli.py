"""`bizchat web` without a browser: the token, the address, the limits, the pages.

Fast: nothing here starts a server (tests/test_web_server.py does)."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys

import nbformat
import pytest
from click.testing import CliRunner

from bizchat.cli import main
from bizchat.errors import InvalidValue
from bizchat.web import PAGES, show
from bizchat.web.server import (
    PAGES_DIR,
    TOKEN_ENV,
    _kernel_environment,
    _scrub_tornado_logs,
    settings,
    voila_config,
)
from bizchat.widgets import WIDGETS

HOLD = "import duckdb, sys\ncon = duckdb.connect(sys.argv[1])\nprint('held', flush=True)\nsys.stdin.readline()\n"


@pytest.fixture(autouse=True)
def no_token_in_env(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def test_a_token_is_generated_when_none_is_given(tmp_path):
    one, two = settings(tmp_path / "w.duckdb"), settings(tmp_path / "w.duckdb")
    assert len(one.token) >= 40 and one.token != two.token and not one.token_given
    assert one.url.endswith(f"/voila/render/index.ipynb?token={one.token}")
    assert one.token not in repr(one)


def test_the_option_beats_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment-123")
    assert settings(tmp_path / "w").token == "from-the-environment-123"
    chosen = settings(tmp_path / "w", token="from-the-option-12345")
    assert chosen.token == "from-the-option-12345" and chosen.token_given


@pytest.mark.parametrize("token", ["", "   ", "short"])
def test_a_short_token_is_refused(tmp_path, token):
    with pytest.raises(InvalidValue, match="at least 16 characters") as caught:
        settings(tmp_path / "w", token=token)
    assert token not in str(caught.value) or not token.strip()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.org"])
def test_a_public_address_needs_a_chosen_token(tmp_path, monkeypatch, host):
    with pytest.raises(InvalidValue, match="needs a token you chose") as caught:
        settings(tmp_path / "w", host=host)
    assert "TLS" in str(caught.value)
    assert settings(tmp_path / "w", host=host, token="x" * 20).host == host
    monkeypatch.setenv(TOKEN_ENV, "y" * 20)
    assert settings(tmp_path / "w", host=host).token == "y" * 20


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.5", "localhost", "::1"])
def test_loopback_gets_a_generated_token(tmp_path, host):
    assert len(settings(tmp_path / "w", host=host).token) >= 40


@pytest.mark.parametrize("option", [{"max_kernels": 0}, {"cull_idle": 0}, {"cull_idle": -5}])
def test_limits_below_one_are_refused(tmp_path, option):
    with pytest.raises(InvalidValue):
        settings(tmp_path / "w", **option)


def test_voila_gets_the_token_the_cap_and_no_config_files(tmp_path):
    s = settings(tmp_path / "w", token="t" * 20, max_kernels=3, cull_idle=90)
    c = voila_config(s)
    assert c.Voila.token == "t" * 20 and c.Voila.config_file_paths == []
    assert c.CappedKernelManager.max_kernels == 3
    assert c.MappingKernelManager.cull_idle_timeout == 90
    assert c.VoilaConfiguration.file_allowlist == []


def test_kernels_inherit_the_workspace_not_the_token(tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "secret-secret-secret")
    monkeypatch.setenv("JUPYTER_TOKEN", "another-secret")
    monkeypatch.setenv("BIZCHAT_WORKSPACE", "elsewhere")
    import os

    _kernel_environment(settings(tmp_path / "w.duckdb"))
    assert TOKEN_ENV not in os.environ and "JUPYTER_TOKEN" not in os.environ
    assert os.environ["BIZCHAT_WORKSPACE"] == str((tmp_path / "w.duckdb").resolve())


def run(*args, env=None):
    result = CliRunner().invoke(main, list(args), env=env or {})
    return result.exit_code, result.output


def test_the_command_refuses_a_public_address_without_a_token(ws):
    code, out = run("--workspace", str(ws.path), "web", "--host", "0.0.0.0")
    assert code == 1
    assert out.startswith("Error: Listening on 0.0.0.0") and out.count("\n") == 1
    assert "--token" in out and "reverse proxy with TLS" in out


def test_the_command_refuses_a_missing_workspace(tmp_path):
    code, out = run("--workspace", str(tmp_path / "none.duckdb"), "web")
    assert code == 1 and out.startswith("Error: ") and not (tmp_path / "none.duckdb").exists()


def test_the_command_refuses_a_port_in_use(ws):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out = run("--workspace", str(ws.path), "web", "--port", str(port),
                        "--token", "z" * 20)
    assert code == 1 and out.startswith(f"Error: Cannot listen on 127.0.0.1:{port}")
    assert "z" * 20 not in out


# --- the pages ----------------------------------------------------------------------------

def test_each_page_is_one_cell_showing_a_widget():
    files = {p.stem for p in PAGES_DIR.glob("*.ipynb")}
    assert files == set(PAGES) | {"index"}
    for name, (widget, _title) in PAGES.items():
        assert widget in WIDGETS
        nb = nbformat.read(PAGES_DIR / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert [c.source for c in code] == [f'from bizchat.web import show\n\nshow("{widget}")']
        assert all(not c.outputs and c.execution_count is None for c in code), name
    index = json.dumps(nbformat.read(PAGES_DIR / "index.ipynb", as_version=4).cells)
    assert all(f"({name}.ipynb)" in index for name in PAGES)


def test_a_page_shows_its_widget_acting_as_web(tiny, monkeypatch):
    ws, _ = tiny
    monkeypatch.setenv("BIZCHAT_WORKSPACE", str(ws.path))
    inbox = show("Inbox")
    assert type(inbox).__name__ == "Inbox" and inbox.actor == "web"
    with pytest.raises(ValueError, match="no widget 'Nope'"):
        show("Nope")


def test_a_page_on_a_missing_workspace_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("BIZCHAT_WORKSPACE", str(tmp_path / "gone.duckdb"))
    line = show("Inbox")
    assert line.kind == "error" and "gone.duckdb" in line.text
    assert not (tmp_path / "gone.duckdb").exists()


def test_a_page_on_a_held_workspace_says_busy(tiny, monkeypatch):
    ws, _ = tiny
    monkeypatch.setenv("BIZCHAT_WORKSPACE", str(ws.path))
    monkeypatch.setenv("BIZCHAT_WEB_TIMEOUT", "0.5")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(ws.path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        widget = show("LabelManager")
    finally:
        holder.communicate("\n", timeout=10)
    status = getattr(widget, "status", widget)
    assert status.kind == "error" and status.text.startswith("The workspace is busy")


def test_the_kernel_environment_loses_the_token():
    from bizchat.web.kernels import scrubbed

    env = scrubbed({"QUERY_STRING": "token=abc&x=1",
                    "VOILA_REQUEST_URL": "http://h:1/voila/render/inbox.ipynb?x=1&token=abc",
                    "BIZCHAT_WORKSPACE": "/w.duckdb"})
    assert env == {"QUERY_STRING": "x=1", "VOILA_REQUEST_URL": "http://h:1/voila/render/inbox.ipynb?x=1",
                   "BIZCHAT_WORKSPACE": "/w.duckdb"}


def test_tornado_warnings_lose_the_token(caplog):
    # tornado names the whole URL in its warnings: the 503 at the kernel cap did, token included
    _scrub_tornado_logs()
    with caplog.at_level(logging.WARNING, logger="tornado.general"):
        logging.getLogger("tornado.general").warning(
            "%d %s: kernel cap %d reached", 503,
            "GET /voila/render/index.ipynb?token=Sup3r-s3cret_token&x=1 (127.0.0.1)", 6)
    assert caplog.records, "the warning was not logged"
    text = caplog.text
    assert "Sup3r-s3cret_token" not in text
    assert "token=[secret]&x=1" in text and "kernel cap 6 reached" in text
