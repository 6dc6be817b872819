"""Retention of the spool's quarantine file (``<workspace>.spool.quarantine``).

The quarantine holds spool lines that could not be read (torn or edited by hand): raw
webhook bodies, so personal data, under the same retention as ``raw_payloads``. A damaged
line cannot be tied to an account for sure, so the strictest raw-body period of all
accounts applies (the shortest; see retention.plan for how message_bodies shortens it).

A line's age: the ``received_at`` it carries, when it can still be read, but never later
than the file's last change (a line was quarantined before that, and a torn date must not
keep a line longer); a line without a readable date counts from the file's last change,
which errs on keeping it a little longer, never on removing it early.

The file is rewritten without the lines due (temporary file, fsync, rename) while the
spool's lock is held, so the ingester's quarantine appends wait for it; the file keeps its
time of last change, from which undated lines are counted.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pandas as pd

from ..ingest.spool import Spool, quarantine_file, received_at_of
from ..store.durable import write_atomic

WHAT = "damaged spool lines (quarantine)"
ACCOUNT = "(spool quarantine)"


def _due(data: bytes, changed: datetime, cutoff: datetime) -> tuple[list[bytes], int]:
    """(the lines to keep, how many are due) of the file's ``data``."""
    keep, due = [], 0
    for line in data.split(b"\n"):
        if not line:
            continue
        at = received_at_of(line)
        when = changed if at is None else min(at, changed)
        if when < cutoff:
            due += 1
        else:
            keep.append(line + b"\n")
    return keep, due


def _changed(path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def cutoff(the_plan: pd.DataFrame) -> datetime | None:
    """The strictest raw-body cutoff of a retention plan (None: raw bodies are kept forever)."""
    raw = the_plan[(the_plan["kind"] == "raw_payloads") & the_plan["cutoff"].notna()]
    return None if raw.empty else max(pd.Timestamp(c).to_pydatetime() for c in raw["cutoff"])


def with_quarantine(the_plan: pd.DataFrame, workspace_path, as_of: datetime) -> pd.DataFrame:
    """``the_plan`` with a row for the quarantine lines due (when there is a quarantine file)."""
    path = quarantine_file(workspace_path)
    if not path.exists():
        return the_plan
    limit = cutoff(the_plan)
    due = 0 if limit is None else _due(path.read_bytes(), _changed(path), limit)[1]
    days = None if limit is None else (as_of - limit).days
    row = pd.DataFrame([{"account_id": pd.NA, "account": ACCOUNT, "kind": "raw_payloads",
                         "days": days, "cutoff": limit, "what": WHAT, "rows": due}])
    row = row.astype({"account_id": "Int64", "days": "Int64"})
    return pd.concat([the_plan, row], ignore_index=True)


def purge(workspace_path, the_plan: pd.DataFrame) -> int:
    """Remove the quarantine lines the plan finds due; returns how many went."""
    path = quarantine_file(workspace_path)
    limit = cutoff(the_plan)
    if limit is None or not path.exists():
        return 0
    spool = Spool(workspace_path, repair=False)
    try:
        with spool.locked():
            stat = path.stat()
            keep, due = _due(path.read_bytes(), _changed(path), limit)
            if due:
                write_atomic(path, b"".join(keep))
                # What is left is no newer than before: keep the time lines without a
                # date of their own are counted from, or every purge would reset it.
                os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            return due
    finally:
        spool.close()
