"""The kernel cap: at most ``max_kernels`` page kernels at once (Voilà has no limit).

Every page a browser opens starts its own kernel (a Python process holding widgets); a
cap keeps a shared machine responsive. The page over the cap gets Voilà's error page with
a sentence saying why and what to do (HTTP 503).
"""

from __future__ import annotations

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import HTTPError
from traitlets import Integer


def cap_reason(limit: int) -> str:
    """The sentence the page over the cap shows (an HTTP reason: one line, ASCII)."""
    return (f"All {limit} page slots are in use: close a bizchat tab you no longer need, "
            "or try again in a few minutes")


class CappedKernelManager(AsyncMappingKernelManager):
    """A kernel manager that refuses a new kernel beyond ``max_kernels`` (0: no cap)."""

    max_kernels = Integer(0, config=True, help="Most kernels at once; 0 for no cap.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._starting = 0   # kernels being started count too: two tabs may open at once

    async def start_kernel(self, *, kernel_id=None, path=None, **kwargs):
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
