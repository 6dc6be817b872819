"""The page kernels' manager: at most ``max_kernels`` at once, and no token in them.

Every page a browser opens starts its own kernel (a Python process holding widgets); a
cap keeps a shared machine responsive (Voilà has none). The page over the cap gets
Voilà's error page with a sentence saying why and what to do (HTTP 503). Voilà hands each
kernel the request's URL and query string as environment variables; the token is taken
out of them, so no kernel (and no page code) ever holds it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import HTTPError
from traitlets import Integer


def cap_reason(limit: int) -> str:
    """The sentence the page over the cap shows (an HTTP reason: one line, ASCII)."""
    return (f"All {limit} page slots are in use: close a bizchat tab you no longer need, "
            "or try again in a few minutes")


# the variables Voilà fills from the request (rfc3875 names and its own)
_URL_VARIABLES = ("VOILA_REQUEST_URL",)
_QUERY_VARIABLES = ("QUERY_STRING",)


def without_token(query: str) -> str:
    """A query string without its ``token`` parameter."""
    return urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True)
                      if k != "token"])


def scrubbed(env: dict | None) -> dict | None:
    """The kernel's environment with the token taken out of the request variables."""
    if not env:
        return env
    env = dict(env)
    for name in _QUERY_VARIABLES:
        if name in env:
            env[name] = without_token(env[name])
    for name in _URL_VARIABLES:
        if name in env:
            parts = urlsplit(env[name])
            env[name] = urlunsplit(parts._replace(query=without_token(parts.query)))
    return env


class CappedKernelManager(AsyncMappingKernelManager):
    """A kernel manager that refuses a new kernel beyond ``max_kernels`` (0: no cap)."""

    max_kernels = Integer(0, config=True, help="Most kernels at once; 0 for no cap.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._starting = 0   # kernels being started count too: two tabs may open at once

    async def start_kernel(self, *, kernel_id=None, path=None, **kwargs):
        if "env" in kwargs:
            kwargs["env"] = scrubbed(kwargs["env"])
        if not self.max_kernels or (kernel_id is not None and kernel_id in self):
            return await super().start_kernel(kernel_id=kernel_id, path=path, **kwargs)
        if len(self.list_kernel_ids()) + self._starting >= self.max_kernels:
            raise HTTPError(503, "kernel cap %d reached", self.max_kernels,
                            reason=cap_reason(self.max_kernels))
        self._starting += 1
        try:
            return await super().start_kernel(kernel_id=kernel_id, path=path, **kwargs)
        finally:
            self._starting -= 1
