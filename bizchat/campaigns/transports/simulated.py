"""SimulatedTransport: a deterministic WhatsApp platform on a simulated clock.

It stands in for the Cloud API in tests, ``make demo`` and campaign rehearsals:

* **Deterministic per seed.** Every random draw is a hash of (seed, idempotency key,
  purpose), never a stateful generator, so the outcome of a message does not depend on
  batch sizes, order or a crash and resume in between.
* **It honours the idempotency key.** Its ledger lives in the workspace, in
  ``outbox_log`` (``event = 'simulated.accept'`` with the message id in ``detail``), and
  is written in its own transaction before ``send_batch`` returns, like a platform that
  has accepted the message. A key accepted once is answered with the same message id
  forever (``simulated.duplicate``) and never becomes a second message, also after the
  sending process was killed. Message ids are a hash of the key alone.
* **Synchronous errors** as the platform answers them: 130429 when the caller exceeds the
  number's throughput, 131056 for a second message to one user within 6 s, and for
  marketing 131049 (per-user marketing limit, redrawn per attempt) and 131050 (the user
  stopped marketing from this business; per user).
* **Receipts** (sent, delivered, read; failed with 131026 undeliverable or, for free-form
  text, 131047 re-engagement needed) after realistic delays. The read probability depends
  on the category, labels, local hour, weekday and variant. Receipts go through the
  webhook path (Cloud API status bodies into ``webhooks.ingest_bodies``, echoing the
  key as ``biz_opaque_callback_data``); ``ingest="bulk"`` hands the same rows straight to
  ``receipts.record_status_events`` for million-message runs, where building and parsing
  JSON would dominate.
* **Simulated clock.** Times come from the ``send_at`` the outbox paced; nothing sleeps
  (except ``batch_delay``, a real pause for crash tests). The platform never produces an
  event later than its clock's ``horizon`` (the campaign "now" the outbox sets): later
  receipts are drawn again, identically, by ``recover`` on a later run once their time
  has come.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ...errors import InvalidValue
from ...ingest import payloads
from ...messaging import receipts
from .base import (
    MESSAGE_FIELDS,
    RESULT_FIELDS,
    OutboundMessage,
    SendResult,
    SimClock,
    Transport,
    TransportError,
    _plain,
)

ERROR_TITLES = {
    130429: "Rate limit hit",
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131050: "Unable to deliver the message. This recipient has chosen to stop receiving "
            "marketing messages on WhatsApp from your business.",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
}

# Read-probability shifts on the logit scale by local hour of sending: nights are poor,
# evenings good.
DEFAULT_HOUR_EFFECTS = (-1.0, -1.2, -1.3, -1.3, -1.2, -0.9, -0.5, -0.2, 0.0, 0.05, 0.1, 0.1,
                        0.15, 0.1, 0.0, 0.0, 0.05, 0.15, 0.3, 0.35, 0.3, 0.1, -0.3, -0.7)


@dataclass(frozen=True)
class SimRates:
    """The simulated platform's behaviour. Probabilities per message unless noted."""

    stopped_marketing: float = 0.002     # 131050, per user (marketing only)
    marketing_limit: float = 0.01        # 131049, per attempt (marketing only)
    undeliverable: float = 0.015         # 131026 failed receipt
    reengagement: float = 0.12           # 131047 failed receipt, free-form text only
    delivered: float = 0.96
    read_marketing: float = 0.42
    read_utility: float = 0.72
    read_text: float = 0.8
    label_effects: dict = field(default_factory=dict)     # label name -> logit shift
    label_spread: float = 0.3            # other labels: a seeded shift in +-this
    variant_effects: dict | None = None  # variant -> logit shift; None: seeded +-0.25
    hour_effects: tuple = DEFAULT_HOUR_EFFECTS
    weekend_effect: float = 0.15
    pair_gap: float = 6.0                # seconds between two messages to one user
    max_rate: float | None = None        # msgs/s the number takes; None: the account's send_rate
    statuses_per_body: int = 500         # receipts per simulated webhook body


# --- seeded hashing (vectorised) -------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _hash(values: pd.Series, salt: str) -> np.ndarray:
    """A stable uint64 per value, different for every salt."""
    key = hashlib.sha256(salt.encode()).hexdigest()[:16]
    array = np.asarray(values, dtype=object)
    missing = pd.isna(array)
    if missing.any():
        array = np.where(missing, "", array).astype(object)
    return pd.util.hash_array(array, hash_key=key, categorize=False)


def _mix(h: np.ndarray, stream: int) -> np.ndarray:
    """splitmix64 of ``h`` and a stream number: independent draws from one hash."""
    with np.errstate(over="ignore"):
        x = h + _GOLDEN * np.uint64(stream + 1)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _unit(h: np.ndarray, stream: int) -> np.ndarray:
    return (_mix(h, stream) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def _normal(h: np.ndarray, stream: int) -> np.ndarray:
    u1 = np.maximum(_unit(h, stream), 1e-12)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * _unit(h, stream + 100))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _message_ids(keys: pd.Series) -> pd.Series:
    """``wamid.SIM`` + 16 hex digits of a hash of the key (not of the seed): the same key
    is the same message whichever seed or process sends it."""
    h = _hash(keys, "bizchat-simulated-wamid")
    nibbles = ((h[:, None] >> np.arange(60, -4, -4, dtype=np.uint64)) & np.uint64(0xF)).astype(np.uint8)
    raw = np.ascontiguousarray(np.frombuffer(b"0123456789abcdef", np.uint8)[nibbles]).view("S16").ravel()
    ids = pc.binary_join_element_wise("wamid.SIM", pa.array(raw, pa.binary(16)).cast(pa.string()), "")
    return pd.Series(ids.to_numpy(zero_copy_only=False), index=keys.index, dtype=object)


def _seconds(stamps: pd.Series) -> np.ndarray:
    """UTC timestamps as float Unix seconds."""
    return pd.to_datetime(stamps, utc=True).astype("datetime64[us, UTC]").astype("int64").to_numpy() / 1e6


def _stamps(seconds: np.ndarray) -> pd.Series:
    """Float Unix seconds as UTC timestamps, floored to whole seconds like webhook times."""
    return pd.Series(pd.to_datetime(np.floor(seconds).astype("int64"), unit="s", utc=True))


# --- the transport -----------------------------------------------------------------------

class SimulatedTransport(Transport):
    """A simulated platform; see the module docstring.

    ``seed`` fixes every outcome. ``ingest`` is ``"webhook"`` (default) or ``"bulk"``.
    ``batch_delay`` pauses each call in real seconds (crash tests kill the process during
    it). ``after_send(results)`` runs after the ledger is durable and before the caller
    sees the results (crash tests kill the process there).
    """

    name = "simulated"
    honours_idempotency_key = True
    needs_params = False
    wants_labels = True

    def __init__(self, seed: int | None = 0, *, rates: SimRates | None = None,
                 ingest: str = "webhook", batch_delay: float = 0.0,
                 after_send: Callable[[pd.DataFrame], None] | None = None,
                 start: datetime | None = None):
        super().__init__()
        if ingest not in ("webhook", "bulk"):
            raise InvalidValue(f"ingest={ingest!r}: use 'webhook' or 'bulk'.")
        self.seed = int(seed or 0)
        self.rates = rates or SimRates()
        self.ingest = ingest
        self.batch_delay = float(batch_delay)
        self.after_send = after_send
        self.clock = SimClock(start or datetime.now(UTC))
        self.horizon: datetime | None = None     # no event later than this
        self._pending: list[pd.DataFrame] = []
        self._last_to = pd.Series(dtype="float64")     # to -> last accepted send (s)
        self._recent = np.empty(0)                     # accepted send times of the last second

    def __repr__(self) -> str:
        return f"SimulatedTransport(seed={self.seed}, ingest={self.ingest!r})"

    # --- sending ---------------------------------------------------------------------

    def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        frame = pd.DataFrame([m.__dict__ for m in messages], columns=MESSAGE_FIELDS)
        out = self.send_frame(frame)
        return [SendResult(**{k: _plain(v) for k, v in row.items()}) for row in out.to_dict("records")]

    def send_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.ws is None:
            raise TransportError("The simulated transport keeps its ledger in the workspace: "
                                 "call attach(ws, account=...) first (the outbox does this).")
        if self.batch_delay:
            time.sleep(self.batch_delay)
        frame = frame.reset_index(drop=True)
        n = len(frame)
        keys = frame["idempotency_key"].astype(str)
        to = frame["to"].astype(str)
        at = frame["send_at"] if "send_at" in frame else pd.Series([None] * n)
        at = pd.to_datetime(at, utc=True).astype("datetime64[us, UTC]")
        at = at.fillna(pd.Timestamp(self.clock.now()))
        t = _seconds(at)
        kind = frame["kind"].fillna("template") if "kind" in frame else pd.Series(["template"] * n)
        category = frame["category"].fillna("utility")
        marketing = (category.eq("marketing") & kind.eq("template")).to_numpy(dtype=bool)
        attempt = frame["attempt"].fillna(1).astype("int64") if "attempt" in frame else pd.Series(np.ones(n, "int64"))
        broadcast = (pd.to_numeric(frame["broadcast_id"], errors="coerce").fillna(0)
                     .astype("int64").to_numpy() if "broadcast_id" in frame else np.zeros(n, "int64"))

        with self.ws.transaction() as con:
            known = self._accepted(con, keys)
            seen = keys.isin(known.index).to_numpy() | keys.duplicated().to_numpy()
            code = np.zeros(n, dtype="int64")
            new = ~seen
            code[new & self._over_rate(t, new)] = 130429
            code[new & (code == 0) & self._too_soon(to, t, new & (code == 0))] = 131056
            stopped = _unit(_hash(to, f"stopped/{self.seed}"), 0) < self.rates.stopped_marketing
            code[new & (code == 0) & marketing & stopped] = 131050
            h_try = _hash(_draw_ids(keys, broadcast, to) + "#" + attempt.astype(str),
                          f"limit/{self.seed}")
            limited = _unit(h_try, 0) < self.rates.marketing_limit
            code[new & (code == 0) & marketing & limited] = 131049
            accepted = new & (code == 0)

            message_id = np.full(n, None, dtype=object)
            message_id[accepted] = _message_ids(keys[accepted]).to_numpy()
            sent_at = at.copy()
            if seen.any():
                dup = pd.DataFrame({"key": keys[seen]}).join(known, on="key")
                first = pd.Series(message_id[accepted], index=keys[accepted].to_numpy())
                first = first[~first.index.duplicated()]
                message_id[seen] = dup["message_id"].fillna(dup["key"].map(first)).to_numpy()
                sent_at[seen] = pd.to_datetime(dup["at"], utc=True).fillna(at[seen]).to_numpy()
            self._remember(to, t, accepted)

            codes = pd.array(np.where(code > 0, code, None), "Int64")
            ledger = pd.DataFrame({
                "broadcast_id": broadcast, "idempotency_key": keys,
                "event": np.where(accepted, "simulated.accept",
                                  np.where(seen, "simulated.duplicate", "simulated.reject")),
                "at": at, "message_id": message_id, "code": codes,
                "attempt": attempt, "kind": kind, "category": category,
                "variant": frame["variant"] if "variant" in frame else None,
                "labels": _labels(frame, n),
            })
            self._log(con, ledger)
        if accepted.any():
            self._pending.append(self._receipts(ledger[accepted].assign(to=to[accepted])))

        ok = ~new | accepted
        results = pd.DataFrame({
            "idempotency_key": keys, "ok": ok,
            "message_id": pd.Series(np.where(ok, message_id, None), dtype=object),
            "error_code": codes, "error_title": pd.Series(code).map(ERROR_TITLES).astype(object),
            "retry_after": np.where(code == 130429, 1.0,
                                    np.where(code == 131056, self.rates.pair_gap, np.nan)),
            "unknown": False, "sent_at": sent_at.where(ok, pd.NaT),
        }, columns=RESULT_FIELDS)
        results["error_title"] = results["error_title"].where(results["error_title"].notna(), None)
        if self.after_send is not None:
            self.after_send(results)
        return results

    def _accepted(self, con, keys: pd.Series) -> pd.DataFrame:
        """The ledger's answer for keys accepted before: key -> message_id, at."""
        con.register("_sim_keys", pd.DataFrame({"key": keys.drop_duplicates()}))
        try:
            found = con.execute("""
                SELECT l.idempotency_key AS key, l.detail->>'message_id' AS message_id,
                       min(l."at") AS "at"
                FROM outbox_log l JOIN _sim_keys k ON k.key = l.idempotency_key
                WHERE l.event = 'simulated.accept' GROUP BY ALL""").df()
        finally:
            con.unregister("_sim_keys")
        return found.set_index("key")

    def _over_rate(self, t: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """130429: more messages in any trailing second than the number's throughput."""
        limit = self.rates.max_rate or self.rate
        over = np.zeros(len(t), dtype=bool)
        if not limit or not candidates.any():
            return over
        idx = np.flatnonzero(candidates)
        order = idx[np.argsort(t[idx], kind="stable")]
        times = np.concatenate([self._recent, t[order]])
        # Sends in (t - 1 s, t]; 2 us of slack absorb the rounding of exact pacing.
        counts = np.arange(len(times)) - np.searchsorted(times, times - 1.0 + 2e-6, side="left") + 1
        over[order] = counts[len(self._recent):] > limit
        return over

    def _too_soon(self, to: pd.Series, t: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """131056: a message to the same user less than ``pair_gap`` seconds after the last."""
        soon = np.zeros(len(t), dtype=bool)
        # Only users with two messages in the batch, or one just before it, can be too soon.
        repeated = (to.duplicated(keep=False) | to.isin(self._last_to.index)).to_numpy()
        candidates = candidates & repeated
        if not candidates.any():
            return soon
        frame = pd.DataFrame({"to": to, "t": t})[candidates].sort_values(["to", "t"], kind="stable")
        previous = frame.groupby("to", sort=False)["t"].shift()
        previous = previous.fillna(frame["to"].map(self._last_to))
        soon[frame.index[(frame["t"] - previous) < self.rates.pair_gap - 1e-9]] = True
        return soon

    def _remember(self, to: pd.Series, t: np.ndarray, accepted: np.ndarray) -> None:
        """Keep only what the next batch's rate checks need: the last pair_gap seconds."""
        if not accepted.any():
            return
        end = t[accepted].max()
        accepted = accepted & (t > end - self.rates.pair_gap)
        latest = pd.Series(t[accepted], index=to[accepted].to_numpy())
        last = pd.concat([self._last_to, latest])
        last = last.groupby(level=0).max()
        self._last_to = last[last > end - self.rates.pair_gap]
        recent = np.sort(np.concatenate([self._recent, t[accepted]]))
        self._recent = recent[recent > recent[-1] - 1.0]

    def _log(self, con, ledger: pd.DataFrame) -> None:
        con.register("_sim_ledger", pa.Table.from_pandas(ledger, preserve_index=False))
        try:
            con.execute("""
                INSERT INTO outbox_log (broadcast_id, idempotency_key, event, "at", detail)
                SELECT broadcast_id, idempotency_key, event, "at",
                       json_object('message_id', message_id, 'code', code, 'attempt', attempt,
                                   'kind', kind, 'category', category, 'variant', variant,
                                   'labels', labels, 'seed', ?::BIGINT)
                FROM _sim_ledger""", [self.seed])
        finally:
            con.unregister("_sim_ledger")

    # --- receipts ----------------------------------------------------------------------

    def _receipts(self, sent: pd.DataFrame) -> pa.Table:
        """The receipts of newly accepted messages (message_events' columns), drawn from
        (seed, broadcast, recipient); an Arrow table, so a million cost no Python rows."""
        r = self.rates
        sent = sent.reset_index(drop=True)
        h = _hash(_draw_ids(sent["idempotency_key"], sent["broadcast_id"].to_numpy(), sent["to"]),
                  f"receipts/{self.seed}")
        t0 = _seconds(sent["at"])
        text = sent["kind"].eq("text").to_numpy(dtype=bool)
        failed = _unit(h, 1) < np.where(text, r.reengagement, r.undeliverable)
        sent_t = t0 + 0.2 + 1.5 * _unit(h, 2)
        delivered = ~failed & (_unit(h, 3) < r.delivered)
        delivered_t = sent_t + np.minimum(np.exp(math.log(4.0) + 1.4 * _normal(h, 4)), 2 * 86400)
        read = delivered & (_unit(h, 6) < self._read_probability(sent, text))
        read_t = delivered_t + np.minimum(np.exp(math.log(1500.0) + 1.5 * _normal(h, 7)), 3 * 86400)
        failed_t = t0 + 1.0 + 5.0 * _unit(h, 8)
        code = np.where(text, 131047, 131026)
        pricing = np.where(text, "service", sent["category"].astype(object).to_numpy())
        message_id = pa.array(sent["message_id"], pa.string())
        recipient = pa.array(sent["to"], pa.string())
        key = pa.array(sent["idempotency_key"], pa.string())
        received = int(datetime.now(UTC).timestamp() * 1e6)

        parts = []
        for status, mask, at in (("sent", ~failed, sent_t), ("delivered", delivered, delivered_t),
                                 ("read", read, read_t), ("failed", failed, failed_t)):
            rows = np.flatnonzero(mask)
            if not len(rows):
                continue
            k = len(rows)
            columns = {
                "message_id": message_id.take(rows), "status": pa.repeat(status, k),
                "at": pa.array(np.floor(at[rows]).astype("int64") * 1_000_000, pa.int64()).cast(_TS),
                "recipient_id": recipient.take(rows), "callback_data": key.take(rows),
                "received_at": pa.array(np.full(k, received), pa.int64()).cast(_TS),
            }
            if status == "sent":
                columns.update(pricing_category=pa.array(pricing[rows], pa.string()),
                               pricing_model=pa.repeat("PMP", k),
                               billable=pa.array(~text[rows], pa.bool_()))
            if status == "failed":
                codes = code[rows]
                columns.update(error_code=pa.array(codes, pa.int32()),
                               error_title=pa.array([ERROR_TITLES[c] for c in codes], pa.string()),
                               errors=pa.array([_ERRORS_JSON[c] for c in codes], pa.string()))
            parts.append(pa.table(columns))
        return receipts.as_event_table(pa.concat_tables(parts, promote_options="default"))

    def _read_probability(self, sent: pd.DataFrame, text: np.ndarray) -> np.ndarray:
        r = self.rates
        base = np.where(text, _logit(r.read_text),
                        np.where(sent["category"].to_numpy() == "marketing",
                                 _logit(r.read_marketing), _logit(r.read_utility)))
        zone = (self.account or {}).get("timezone") or "UTC"
        local = pd.to_datetime(sent["at"], utc=True).dt.tz_convert(zone)
        shift = np.asarray(r.hour_effects, dtype=float)[local.dt.hour.to_numpy()]
        shift += np.where(local.dt.day_of_week.to_numpy() >= 5, r.weekend_effect, 0.0)
        variants = sent["variant"].fillna("").astype(str)
        effects = {v: self._effect(v, r.variant_effects, 0.25, "variant") for v in variants.unique()}
        shift += variants.map(effects).to_numpy(dtype=float)
        labels = sent["labels"].explode().dropna()
        if len(labels):
            names = {v: self._effect(v, r.label_effects, r.label_spread, "label") for v in labels.unique()}
            shift += labels.map(names).astype(float).groupby(level=0).sum().reindex(
                sent.index, fill_value=0.0).to_numpy()
        return 1.0 / (1.0 + np.exp(-(base + shift)))

    def _effect(self, name: str, given: dict | None, spread: float, what: str) -> float:
        if given is not None and name in given:
            return float(given[name])
        if not name or (what == "variant" and given is not None):
            return 0.0
        return (float(_unit(_hash(pd.Series([name]), f"{what}/{self.seed}"), 0)[0]) - 0.5) * 2 * spread

    def take_receipts(self) -> tuple[list, pa.Table | None]:
        """The receipts of everything accepted since the last call, for the caller to
        ingest through the public ingest API: ``(webhook bodies, None)``, or with
        ``ingest="bulk"`` ``([], the same receipts as rows)``."""
        if not self._pending:
            return [], None
        events = pa.concat_tables(self._pending)
        self._pending = []
        if self.horizon is not None and events.num_rows:
            # Later receipts do not exist yet; recover() draws them again when due.
            limit = pa.scalar(pd.Timestamp(self.horizon).to_pydatetime(), _TS)
            events = events.filter(pc.less_equal(events.column("at"), limit))
        if events.num_rows == 0:
            return [], None
        if self.ingest == "bulk":
            return [], events
        return self.webhook_bodies(events.to_pandas()), None

    def recover(self, con, broadcast_id: int) -> int:
        """Receipts of messages in the ledger that have none yet (a crash lost them, or
        their time had not come) or that may still come (not yet read or failed, accepted
        within the longest receipt delay before the last release); drawn with the seed
        that sent them. Ingestion keeps only what is new. With a horizon, the release is
        noted in the ledger (``simulated.receipts``), so the next run knows where to
        continue."""
        horizon = self.horizon
        released = con.execute("""
            SELECT max("at") FROM outbox_log
            WHERE broadcast_id = ? AND event = 'simulated.receipts'""",
                               [broadcast_id]).fetchall()[0][0]
        if horizon is not None:
            con.execute("""INSERT INTO outbox_log (broadcast_id, idempotency_key, event, "at",
                                                   detail)
                           VALUES (?, NULL, 'simulated.receipts', ?,
                                   json_object('released_until', ?::VARCHAR))""",
                        [broadcast_id, horizon, horizon.isoformat()])
        lost = con.execute("""
            SELECT l.idempotency_key, any_value(l.broadcast_id) AS broadcast_id, min(l."at") AS "at",
                   any_value(l.detail->>'message_id') AS message_id,
                   any_value(l.detail->>'kind') AS kind,
                   any_value(l.detail->>'category') AS category,
                   any_value(l.detail->>'variant') AS variant,
                   any_value(CAST(l.detail->'labels' AS VARCHAR[])) AS labels,
                   any_value(r.wa_id) AS "to",
                   any_value(l.detail->>'seed') AS seed
            FROM outbox_log l
            LEFT JOIN broadcast_recipients r
                   ON r.broadcast_id = l.broadcast_id AND r.idempotency_key = l.idempotency_key
            WHERE l.broadcast_id = ? AND l.event = 'simulated.accept'
              AND (NOT EXISTS (SELECT 1 FROM message_status s
                               WHERE s.message_id = l.detail->>'message_id')
                   OR (?::TIMESTAMPTZ IS NOT NULL
                       AND (?::TIMESTAMPTZ IS NULL OR l."at" > ?::TIMESTAMPTZ - INTERVAL 6 DAYS)
                       AND EXISTS (SELECT 1 FROM message_status s
                                   WHERE s.message_id = l.detail->>'message_id'
                                     AND s.status NOT IN ('read', 'failed'))))
            GROUP BY l.idempotency_key""", [broadcast_id, horizon, released, released]).df()
        if lost.empty:
            return 0
        lost["labels"] = lost["labels"].map(lambda v: list(v) if isinstance(v, (list, tuple, np.ndarray)) else None)
        rows = 0
        seeds = pd.to_numeric(lost["seed"], errors="coerce").fillna(self.seed).astype("int64")
        mine = self.seed
        try:
            for seed, part in lost.groupby(seeds.to_numpy()):
                self.seed = int(seed)
                again = self._receipts(part.drop(columns="seed"))
                self._pending.append(again)   # handed back by the next take_receipts
                rows += again.num_rows
        finally:
            self.seed = mine
        return rows

    def webhook_bodies(self, events: pd.DataFrame) -> list[tuple[str, datetime, str]]:
        """Cloud API status webhooks carrying ``events``: ``[(payload_id, received_at,
        body)]`` as the receiver hands them to ``ingest_bodies``."""
        account = self.account or {}
        digits = "".join(c for c in str(account.get("phone_e164") or "") if c.isdigit())
        metadata = {"display_phone_number": digits, "phone_number_id": account.get("phone_number_id")}
        if isinstance(events, pa.Table):
            events = events.to_pandas()
        # Missing values as null: a float NaN in a body would not be JSON at all.
        events = events.astype(object).where(events.notna(), None)
        statuses = []
        for row in events.to_dict("records"):
            status = {"id": row["message_id"], "status": row["status"],
                      "timestamp": str(int(row["at"].timestamp())),
                      "recipient_id": row["recipient_id"],
                      "biz_opaque_callback_data": row["callback_data"]}
            if row["status"] == "sent":
                status["pricing"] = {"billable": row["billable"], "pricing_model": "PMP",
                                     "type": "regular", "category": row["pricing_category"]}
            if row["status"] == "failed":
                status["errors"] = _errors(int(row["error_code"]))
            statuses.append(status)
        now = datetime.now(UTC)
        step = max(1, self.rates.statuses_per_body)
        items = []
        for i in range(0, len(statuses), step):
            body = {"object": "whatsapp_business_account", "entry": [{
                "id": str(account.get("waba_id") or "0"),
                "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp", "metadata": metadata,
                    "statuses": statuses[i:i + step]}}]}]}
            text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            items.append((payloads.payload_id(text), now, text))
        return items


_TS = pa.timestamp("us", tz="UTC")


def _errors(code: int) -> list[dict]:
    """A failed status's ``errors`` array, as the Cloud API sends it."""
    title = ERROR_TITLES[code]
    return [{"code": code, "title": title, "message": title, "error_data": {"details": title}}]


# message_events.errors as the webhook path stores it (json.dumps of the parsed array).
_ERRORS_JSON = {c: json.dumps(_errors(c), ensure_ascii=False) for c in (131026, 131047, 131050)}


def _draw_ids(keys: pd.Series, broadcast: np.ndarray, to: pd.Series) -> pd.Series:
    """What the random draws of a message hang on: broadcast and recipient for broadcast
    messages (so a re-frozen audience with fresh keys plays out the same), else the key."""
    keys = keys.reset_index(drop=True).astype(str)
    per = pd.Series("b" + pd.Series(broadcast).astype(str) + ":" + to.reset_index(drop=True).astype(str))
    return per.where((pd.Series(broadcast) > 0) & to.reset_index(drop=True).notna(), keys)


def _labels(frame: pd.DataFrame, n: int) -> pd.Series:
    """Label names per message as lists (None where there are none: the common case of a
    broadcast without labels costs no per-row conversion)."""
    if "labels" not in frame:
        return pd.Series([None] * n, dtype=object)
    labels = frame["labels"].reset_index(drop=True)
    if labels.isna().all():
        return pd.Series([None] * n, dtype=object)
    return labels.map(lambda v: list(v) if isinstance(v, (list, tuple, np.ndarray)) and len(v)
                      else None)
