"""Erasure in report outputs: executed notebooks and the files reports wrote.

Reports live in ``reports/`` beside the workspace (bizchat.reports) or wherever a run was
told to write (``report_runs.output_path``). A contact-level report can show a person's
number or name; after erasure those files must not. Text files (notebooks, CSV, HTML,
JSON, Markdown ...) are rewritten with every mention replaced by ``[erased]`` (temporary
file + os.replace, so a reader never sees half a file); a binary file that mentions the
person (an Excel sheet, a zip) cannot be edited safely and is deleted. The caller records
which files changed in the audit log, by name.

Old access exports are a copy of everything about the person, not a mention: they are
deleted whole, both the files the audit log says were written for the person and any file
in ``exports/`` beside the workspace that mentions them.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import duckdb

from ..store.durable import write_atomic
from .payloads import Redaction

MAX_BYTES = 256 << 20    # larger files are not reports; they are left alone


def report_folders(con: duckdb.DuckDBPyConnection, workspace_path: Path) -> list[Path]:
    folders = {workspace_path.parent / "reports"}
    for (output,) in con.execute(
            "SELECT DISTINCT output_path FROM report_runs WHERE output_path IS NOT NULL").fetchall():
        folders.add(Path(output).parent)
    return sorted(f for f in folders if f.is_dir())


def _zip_mentions(path: Path, redaction: Redaction) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.file_size > MAX_BYTES:
                    continue
                text = archive.read(info).decode("utf-8", errors="ignore")
                if redaction.mentions(text):
                    return True
    except zipfile.BadZipFile:
        return False
    return False


def _skipped(path: Path) -> bool:
    """Workspaces, their logs and spools are never report outputs (erasure handles them)."""
    name = path.name
    return (name.startswith(".") or ".duckdb" in name or name.endswith((".wal", ".spool", ".offset"))
            or path.stat().st_size > MAX_BYTES)


def redact_files(folders: list[Path], redaction: Redaction) -> list[str]:
    """Rewrite every text file under ``folders`` that mentions the person, and delete
    such zip-based files (xlsx); returns the paths changed (as text). Other binary files
    (images) are left alone."""
    if redaction.pattern is None:
        return []
    changed = []
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if _skipped(path):
                continue
            data = path.read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None:
                new = redaction.text(text)
                if new != text:
                    write_atomic(path, new)
                    changed.append(str(path))
                continue
            if zipfile.is_zipfile(path) and _zip_mentions(path, redaction):
                path.unlink()
                changed.append(str(path))
    return changed


def _mentions(path: Path, redaction: Redaction) -> bool:
    data = path.read_bytes()
    try:
        return redaction.mentions(data.decode("utf-8"))
    except UnicodeDecodeError:
        return zipfile.is_zipfile(path) and _zip_mentions(path, redaction)


def remove_exports(con: duckdb.DuckDBPyConnection, workspace_path: Path, subject_keys: list[str],
                   redaction: Redaction) -> list[str]:
    """Delete the person's earlier access exports; returns the paths deleted."""
    written = set()
    for (details,) in con.execute("""
            SELECT details FROM audit_log WHERE action = 'privacy.export'
               AND list_contains(?::VARCHAR[], subject_key)""", [subject_keys]).fetchall():
        written |= set(json.loads(details or "{}").get("files") or [])
    candidates = {Path(p) for p in written}
    folder = workspace_path.parent / "exports"
    if folder.is_dir() and redaction.pattern is not None:
        candidates |= {p for p in folder.rglob("*") if p.is_file() and not _skipped(p)
                       and _mentions(p, redaction)}
    removed = []
    for path in sorted(candidates):
        if path.is_file():
            path.unlink()
            removed.append(str(path))
    for parent in sorted({p.parent for p in candidates}, reverse=True):
        if parent.is_dir() and parent != folder and not any(parent.iterdir()):
            parent.rmdir()
    return removed
