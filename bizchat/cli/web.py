"""`bizchat web`: the workbench as browser pages for staff who don't code."""

from __future__ import annotations

import sys

import click

from ._common import cli_state, workspace_mode, workspace_option


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; another than loopback needs an explicit token.")
@click.option("--port", default=8866, show_default=True, help="Port to listen on.")
@click.option("--token", default=None, metavar="TOKEN",
              help="The access token (default: $BIZCHAT_WEB_TOKEN, else a new random one, "
                   "printed in the URL).")
@click.option("--max-kernels", default=10, show_default=True, metavar="N",
              help="Most pages open at once (each has its own kernel); one more gets a "
                   "'try again' page.")
@click.option("--cull-idle", default=600.0, show_default=True, metavar="SECONDS",
              help="Stop a page's kernel after it has been idle and closed this long.")
@workspace_option
@workspace_mode("write")   # opens it itself: an existing workspace, upgraded if needed
def web(host: str, port: int, token: str | None, max_kernels: int, cull_idle: float) -> None:
    """Serve the inbox, broadcast composer, label manager and dashboard as web pages.

    A page waits --timeout seconds (the global option) for a busy workspace, then says
    so. Prints the URL to open (with the token) and runs until SIGTERM or Ctrl-C, which stop
    the server and its page kernels (exit 0). Every request needs the token; TLS belongs
    in a reverse proxy in front of it.
    """
    from ..web.server import serve, settings

    state = cli_state()
    ws = state.open(create=False)   # fail here, in one line, not in every page
    chosen = settings(ws.path, host=host, port=port, token=token, max_kernels=max_kernels,
                      cull_idle=cull_idle, busy_timeout=state.timeout)
    sys.exit(serve(chosen, echo=click.echo))


COMMANDS = [web]
