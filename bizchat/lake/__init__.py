"""The lake: a pseudonymous Parquet copy of workspaces for analytics beyond one file.

``manifest`` (what is published), ``export`` (what is written), ``publish`` (staging and
the atomic manifest swap), ``erasure`` (erased people and purged rows leave the lake).
"""

from __future__ import annotations

from .manifest import Manifest, read_manifest

__all__ = ["Manifest", "read_manifest"]
