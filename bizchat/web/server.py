"""The web server: Voilà on the page notebooks, always behind a token.

``serve`` resolves the token (``--token``, else ``$BIZCHAT_WEB_TOKEN``, else a new random
one), refuses a non-loopback address without an explicit token, prints the one URL line
and runs Voilà until SIGTERM or Ctrl-C, which stop the server and its kernels. The token
goes to Voilà's configuration only: the kernels' environment carries the workspace path,
never the token, and the URL line is the only place it is printed.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidValue

PAGES_DIR = Path(__file__).with_name("pages")
TOKEN_ENV = "BIZCHAT_WEB_TOKEN"
TIMEOUT_ENV = "BIZCHAT_WEB_TIMEOUT"   # seconds a page waits for a busy workspace
START_PAGE = "index.ipynb"
TLS_NOTE = ("bizchat web speaks plain HTTP: on a network, put a reverse proxy with TLS "
            "(nginx, Caddy) in front of it.")


@dataclass(frozen=True)
class WebSettings:
    """What ``bizchat web`` runs with (the token is kept out of ``repr``)."""

    workspace: Path
    host: str = "127.0.0.1"
    port: int = 8866
    token: str = ""
    token_given: bool = False
    max_kernels: int = 10
    cull_idle: float = 600.0
    busy_timeout: float = 30.0

    def __repr__(self) -> str:
        return (f"WebSettings(workspace={str(self.workspace)!r}, host={self.host!r}, "
                f"port={self.port}, max_kernels={self.max_kernels}, cull_idle={self.cull_idle})")

    @property
    def url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/voila/render/{START_PAGE}?token={self.token}"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; every other address is public."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:   # a host name: what it resolves to is not ours to trust
        return False


def settings(workspace: Path, *, host: str = "127.0.0.1", port: int = 8866,
             token: str | None = None, max_kernels: int = 10,
             cull_idle: float = 600.0, busy_timeout: float = 30.0) -> WebSettings:
    """The settings for one run: the token resolved, the address and limits checked.

    Raises InvalidValue for a public address without an explicit token (``--token`` or
    ``$BIZCHAT_WEB_TOKEN``), an empty or short token, or limits below 1."""
    given = token if token is not None else os.environ.get(TOKEN_ENV)
    if given is not None and len(given.strip()) < 16:
        raise InvalidValue("The web token must have at least 16 characters (a generated one "
                           "has 43): pass --token, set $BIZCHAT_WEB_TOKEN, or leave both "
                           "out for a new random token.", value="<token>")
    if not is_loopback(host) and given is None:
        raise InvalidValue(f"Listening on {host} (not this machine only) needs a token you "
                           "chose: pass --token or set $BIZCHAT_WEB_TOKEN. " + TLS_NOTE,
                           value=host)
    if max_kernels < 1:
        raise InvalidValue(f"--max-kernels must be at least 1, not {max_kernels}.",
                           value=max_kernels)
    if cull_idle <= 0:
        raise InvalidValue(f"--cull-idle must be a positive number of seconds, not {cull_idle}.",
                           value=cull_idle)
    return WebSettings(workspace=Path(workspace).resolve(), host=host, port=port,
                       token=(given or secrets.token_urlsafe(32)).strip(),
                       token_given=given is not None, max_kernels=max_kernels,
                       cull_idle=cull_idle, busy_timeout=busy_timeout)


def voila_config(s: WebSettings):
    """Voilà's configuration for ``s`` (a traitlets Config)."""
    from jupyter_server.log import log_request
    from traitlets.config import Config

    from .kernels import CappedKernelManager

    c = Config()
    c.Voila.ip = s.host
    c.Voila.port = s.port
    c.Voila.port_retries = 0          # the printed URL must be the one served
    c.Voila.open_browser = False
    c.Voila.token = s.token
    # the tab's unload beacon shuts its kernel down at once (else only culling frees it);
    # it is a POST without an XSRF header. Cost: no XSRF check on Voilà's POST/DELETE,
    # which still need the token cookie and name a random kernel id. The request log is
    # jupyter_server's, which scrubs ?token= from URLs (tornado's own logs them whole).
    c.Voila.tornado_settings = {"disable_check_xsrf": True, "log_function": log_request}
    # no voila.json/voila.py from the current folder or Jupyter's config path may change
    # the token or the limits: this configuration is the whole configuration
    c.Voila.config_file_paths = []
    c.VoilaConfiguration.multi_kernel_manager_class = CappedKernelManager
    c.CappedKernelManager.max_kernels = s.max_kernels
    c.MappingKernelManager.cull_idle_timeout = int(max(1, round(s.cull_idle)))
    c.MappingKernelManager.cull_interval = int(max(1, min(60, round(s.cull_idle / 2))))
    # a page left open keeps its websocket; it is culled only when idle and disconnected
    c.MappingKernelManager.cull_connected = False
    # nothing but the pages: no file (not even images) from the pages folder
    c.VoilaConfiguration.file_allowlist = []
    c.VoilaConfiguration.file_denylist = [".*"]
    c.VoilaConfiguration.show_tracebacks = False
    return c


def _kernel_environment(s: WebSettings) -> None:
    """Kernels inherit the server's environment: the workspace in, every token out."""
    os.environ["BIZCHAT_WORKSPACE"] = str(s.workspace)
    os.environ[TIMEOUT_ENV] = str(s.busy_timeout)
    for name in (TOKEN_ENV, "JUPYTER_TOKEN", "JPY_API_TOKEN"):
        os.environ.pop(name, None)


def _check_port(s: WebSettings) -> None:
    """A port in use is one clear error before the URL line, not a log line after it."""
    family = socket.AF_INET6 if ":" in s.host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((s.host, s.port))
        except OSError as exc:
            raise InvalidValue(f"Cannot listen on {s.host}:{s.port} ({exc.strerror}): choose "
                               "another --port or --host.", value=s.port) from None


class ScrubTokens(logging.Filter):
    """Removes ``token=...`` from every record of tornado's loggers: its warnings and
    errors name the request's URL whole (a 503 at the kernel cap did, token included)."""

    PATTERN = re.compile(r"(token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "token=" in text:
            record.msg, record.args = self.PATTERN.sub(r"\1[secret]", text), None
        return True


def _scrub_tornado_logs() -> None:
    scrub = ScrubTokens()
    for name in ("tornado.access", "tornado.application", "tornado.general"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, ScrubTokens) for f in logger.filters):
            logger.addFilter(scrub)


def serve(s: WebSettings, *, echo=print) -> int:
    """Run Voilà with ``s`` until SIGTERM or Ctrl-C; returns 0 once it and its kernels
    stopped. Main thread only (Voilà installs its signal handlers there)."""
    from voila.app import Voila

    _check_port(s)
    _kernel_environment(s)
    _scrub_tornado_logs()
    if not is_loopback(s.host):
        echo(TLS_NOTE)
    echo(f"bizchat web: open {s.url}")
    sys.stdout.flush()
    Voila.launch_instance(argv=[str(PAGES_DIR), "--Voila.log_level=WARN"],
                          config=voila_config(s))
    Voila.clear_instance()
    return 0

