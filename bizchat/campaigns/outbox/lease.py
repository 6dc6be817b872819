"""The sender's lease: one process sends a broadcast at a time.

DuckDB's single-writer lock serialises transactions, but a send spans many of them with
transport calls in between. So the sender claims the broadcast (``broadcasts.sender`` =
``host:pid``, ``sender_until`` = wall clock + ``TTL``) in one transaction, renews the
claim after every batch and clears it at the end. Another process finding a live claim
steps aside (``run_due``) or is refused (``send``). A claim is free when it has expired or
when its process is gone (same host, pid no longer running: a killed sender), so
``resume`` after a crash does not wait for the TTL.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from ...errors import Conflict

TTL = timedelta(minutes=10)


def me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(owner: str | None) -> bool:
    """Whether the process named ``owner`` may still be sending."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True     # another machine: trust the expiry time only
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def take(ws, broadcast_id: int) -> None:
    """Claim the broadcast for this process, or raise Conflict naming the holder."""
    now = datetime.now(UTC)
    with ws.transaction() as con:
        row = con.execute("SELECT sender, sender_until FROM broadcasts WHERE broadcast_id = ?",
                          [broadcast_id]).fetchall()
        owner, until = row[0] if row else (None, None)
        if owner and owner != me() and until is not None and until > now and _alive(owner):
            raise Conflict(f"Broadcast {broadcast_id} is being sent by process {owner} "
                           f"(claimed until {until:%H:%M:%S} UTC); it is left to that process.",
                           input=broadcast_id, sender=owner)
        con.execute("UPDATE broadcasts SET sender = ?, sender_until = ? WHERE broadcast_id = ?",
                    [me(), now + TTL, broadcast_id])


def renew(ws, broadcast_id: int) -> None:
    with ws.transaction() as con:
        con.execute("UPDATE broadcasts SET sender_until = ? WHERE broadcast_id = ? AND sender = ?",
                    [datetime.now(UTC) + TTL, broadcast_id, me()])


def release(ws, broadcast_id: int) -> None:
    with ws.transaction() as con:
        con.execute("UPDATE broadcasts SET sender = NULL, sender_until = NULL "
                    "WHERE broadcast_id = ? AND sender = ?", [broadcast_id, me()])


@contextmanager
def held(ws, broadcast_id: int):
    """Hold the broadcast's lease for the block (a dead holder's claim is free)."""
    take(ws, broadcast_id)
    try:
        yield
    finally:
        try:
            release(ws, broadcast_id)
        except Exception:   # noqa: BLE001 - the lease expires on its own
            pass
