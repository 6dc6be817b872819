"""The lake: a pseudonymous Parquet copy of workspaces for analytics beyond one file.

``manifest`` (what is published), ``tables`` (what each table holds), ``export`` (writing
a workspace's tenant), ``publish`` (staging, locks and the atomic manifest swap),
``erasure`` (erased people leave the lake), ``inspect`` (show and verify a lake).
"""

from __future__ import annotations

import os

from .manifest import Manifest, read_manifest


class Lake:
    """The workspace's side of the lake (``ws.lake``): export it, erase from it, look."""

    def __init__(self, ws):
        self.ws = ws

    def export(self, out: str | os.PathLike, tenant: str | None = None, bodies: bool = False,
               progress=None, replace: bool = False):
        """Export this workspace into the lake folder ``out`` as ``tenant`` (default: the
        workspace file's stem). Incremental: only partitions that changed are written;
        published in one atomic manifest swap. ``bodies=True`` also exports message
        texts (personal data). A tenant another workspace exported (another key) is
        refused unless ``replace``. ``progress`` gets log lines. Returns an ExportResult."""
        from .export import export

        return export(self.ws, out, tenant=tenant, bodies=bodies, replace=replace,
                      progress=progress)

    def erase_pending(self, out: str | os.PathLike, tenant: str | None = None, progress=None) -> dict:
        """Rewrite every file of this workspace's tenant in ``out`` that still holds a
        person the workspace erased (by the audit log's ``privacy.erase`` keys)."""
        from .erasure import erase_pending

        return erase_pending(self.ws, out, tenant=tenant, progress=progress)

    @staticmethod
    def show(out: str | os.PathLike):
        """Tenants and tables of the lake at ``out``: rows, files, bytes, last export."""
        from .inspect import show

        return show(out)

    @staticmethod
    def verify(out: str | os.PathLike):
        """Check every listed file of the lake: present, same size, same sha256, same rows."""
        from .inspect import verify

        return verify(out)


__all__ = ["Lake", "Manifest", "read_manifest"]
