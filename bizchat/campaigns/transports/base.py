"""The transport interface: how the outbox hands messages to a platform.

A transport takes a batch of ``OutboundMessage`` and answers one ``SendResult`` per
message, in order. Two implementations exist: ``SimulatedTransport`` (a deterministic
platform on a simulated clock) and ``CloudApiTransport`` (the WhatsApp Cloud API).

The outbox never sleeps on its own: it asks the transport's clock. The simulated clock
only moves a number forward (pacing shapes the simulated send and receipt times, not the
wall time); the wall clock really sleeps.

The columnar ``send_frame`` exists for the million-recipient path: the simulated
transport answers a whole DataFrame at once, while the base class falls back to
``send_batch`` over ``OutboundMessage`` objects, so a transport only has to implement
``send_batch``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta

import pandas as pd

from ...errors import TransportError  # noqa: F401 - re-exported: transports raise it


@dataclass(frozen=True)
class OutboundMessage:
    """One message for the platform.

    ``idempotency_key`` travels with the message (Cloud API: ``biz_opaque_callback_data``,
    echoed by every status webhook). ``kind`` is ``template`` (name, language and the
    named ``params``) or ``text`` (``body``). ``body`` is always the rendered text, also
    for templates, so it can be stored as sent. The remaining fields describe the
    recipient for the outbox and the simulation; the Cloud API ignores them.
    """

    idempotency_key: str
    phone_number_id: str | None
    to: str
    kind: str = "template"
    template_name: str | None = None
    language: str | None = None
    params: dict | None = None
    body: str | None = None
    # context (not sent to the Cloud API)
    send_at: datetime | None = None      # the paced send time (simulated or wall clock)
    attempt: int = 1
    account_id: int | None = None
    contact_id: int | None = None
    broadcast_id: int | None = None
    variant: str | None = None
    category: str | None = None          # marketing, utility
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendResult:
    """The platform's answer for one message.

    ``ok`` with ``message_id`` when accepted. Otherwise ``error_code``/``error_title``
    (Cloud API codes, e.g. 130429 throughput, 131049 per-user marketing limit) and
    ``retry_after`` in seconds when the platform said when to try again. ``unknown`` is
    set when the request may or may not have reached the platform (a timeout after the
    request was written): the outbox must then not resend blindly.
    """

    idempotency_key: str
    ok: bool
    message_id: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    retry_after: float | None = None
    unknown: bool = False
    sent_at: datetime | None = None


MESSAGE_FIELDS = [f.name for f in fields(OutboundMessage)]
RESULT_FIELDS = [f.name for f in fields(SendResult)]


# --- clocks ----------------------------------------------------------------------------

class WallClock:
    """Real time; ``sleep`` really sleeps."""

    simulated = False

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def sleep_until(self, at: datetime) -> None:
        self.sleep((at - self.now()).total_seconds())


@dataclass
class SimClock:
    """A simulated clock: ``sleep`` moves time forward at once."""

    current: datetime = field(default_factory=lambda: datetime.now(UTC))
    simulated = True

    def now(self) -> datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and math.isfinite(seconds):
            self.current += timedelta(seconds=seconds)

    def sleep_until(self, at: datetime) -> None:
        if at > self.current:
            self.current = at

    def start_at(self, at: datetime) -> None:
        """Place the clock (used when a send starts or resumes)."""
        self.current = at


# --- the interface ---------------------------------------------------------------------

class Transport:
    """Base class. Subclasses implement ``send_batch``; the rest has defaults."""

    name = "transport"
    # True when resending the same idempotency key can never produce a second message.
    honours_idempotency_key = False
    # Whether the transport uses ``params`` (the outbox then splits them into the
    # template's header, body and button parameters) or only the rendered ``body``.
    needs_params = True
    # Whether the outbox should look up each recipient's label names (the simulation's
    # read rates depend on them).
    wants_labels = False

    def __init__(self) -> None:
        self.clock: WallClock | SimClock = WallClock()
        self.ws = None
        self.account: dict | None = None
        self.rate: float | None = None

    def attach(self, ws, *, account: dict, rate: float | None = None) -> None:
        """Called by the outbox before sending a broadcast of ``account``."""
        self.ws = ws
        self.account = account
        self.rate = rate

    def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        raise NotImplementedError

    def send_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The columnar form: one row per message (columns of OutboundMessage) in, one
        row per result (columns of SendResult) out, same order."""
        messages = []
        for row in frame.to_dict("records"):
            values = {k: _plain(v) for k, v in row.items() if k in MESSAGE_FIELDS}
            if isinstance(values.get("params"), str):
                values["params"] = json.loads(values["params"])
            messages.append(OutboundMessage(**values))
        results = self.send_batch(messages)
        return pd.DataFrame([r.__dict__ for r in results], columns=RESULT_FIELDS)

    def take_receipts(self) -> tuple[list, object]:
        """Status receipts the transport produced itself (simulation), for the outbox to
        ingest through the public ingest API: ``(webhook bodies, rows or None)``. A real
        platform posts them to the webhook receiver instead."""
        return [], None

    def recover(self, con, broadcast_id: int) -> int:
        """After a crash: re-deliver the receipts of messages the platform accepted but
        whose receipts never arrived, so their idempotency keys settle ``unknown``
        recipients (handed back by ``take_receipts``). Returns how many were found."""
        return 0

    def close(self) -> None:
        pass


def _plain(value):
    """pandas/numpy values as plain Python: missing as None, arrays as tuples."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
        return tuple(value) if isinstance(value, list) else value
    return value
