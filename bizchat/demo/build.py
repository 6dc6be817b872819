"""The demo workspace: a year in the life of a publisher on WhatsApp Business.

``build()`` writes a synthetic but realistic scenario: the "Lindenblatt Verlag", a
Berlin children's-book and crime-fiction house, with two business numbers (a mobile for
the publisher, a Berlin landline for its bookshop and readings), German, Austrian and
Swiss customers, their consent histories, labels, service chats, and twelve months of
marketing broadcasts with receipts, replies and opt-outs.

Deterministic per seed: everything is drawn from one ``numpy.random.default_rng(seed)``
against a fixed reference time (``clock.NOW``), so the same seed gives the same data on any
day. Everything is generated as whole numpy arrays and written through Arrow in one
transaction; receipts go through ``ingest.webhooks.record_receipts`` exactly like webhooks.
The scenario's words and names live in ``demo_content``.
"""

from __future__ import annotations

import base64
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import store
from ..errors import BizchatError, Conflict, NotAWorkspace
from ..ingest import webhooks
from . import clock
from . import content as C

STAGES = ("contacts", "consent", "broadcasts", "replies", "service chats", "messages",
          "writing", "receipts", "live campaigns")

# The latest campaigns go through the real composer and outbox with the SimulatedTransport
# (receipts through the webhook ingestion path), the way a user sends one. Their outcomes
# are seeded; their ids and bookkeeping times are fresh on every build.
LIVE_CAMPAIGNS = (
    dict(account=0, name="Herbstlese: neue Bilderbücher", labels_any=["Kinderbuch"],
         body="Hallo {first_name}, die neuen Bilderbücher für den Herbst sind da! "
              "Jetzt bei {business_name} stöbern.",
         variants=["{first_name}, unsere Herbst-Bilderbücher sind eingetroffen – "
                   "reinschauen lohnt sich!"],
         control=0.1, at=datetime(2026, 10, 31, 16, 0, tzinfo=UTC)),
    dict(account=1, name="Krimi-Lesung im November", labels_any=["Krimi", "Lesung"],
         body="Hallo {first_name}, am 20. November liest Jana Falk aus ihrem neuen Krimi. "
              "Antworten Sie mit JA, und wir halten Ihnen einen Platz frei.",
         variants=[], control=0.0, at=datetime(2026, 10, 30, 17, 0, tzinfo=UTC)),
)


def build(path=None, *, contacts: int = 20000, seed: int = 7, replace: bool = False,
          progress: bool = False) -> dict:
    """Write the demo workspace to ``path`` and return a summary (see format_summary).

    The summary holds path, accounts, contacts, opted_in_share, messages, broadcasts,
    delivery_rate, open_rate, seconds, and stage_seconds (per generation stage).

    ``path`` defaults to the workspace path ($BIZCHAT_WORKSPACE, else data/bizchat.duckdb).
    An existing workspace that already holds data is only overwritten with ``replace``.
    About 50 messages per contact: 20,000 contacts give about a million messages.
    """
    from ..workspace import Workspace

    if contacts < 50:
        raise BizchatError(f"--contacts {contacts} is too few for the demo; use 50 or more.",
                           input=contacts)
    started = time.perf_counter()
    path = store.resolve_path(path)
    _make_room(path, replace)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(STAGES), desc="demo", file=sys.stderr, disable=not progress, leave=False,
               bar_format="{desc:<26} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]")
    try:
        scenario = _Scenario(np.random.default_rng(seed), contacts, bar)
        scenario.generate()
        ws = Workspace(path)
        with ws.transaction() as con:
            scenario.write(con, seed)
        bar.set_description_str("demo: live campaigns")
        live_started = time.perf_counter()
        _live_campaigns(ws, seed)
        # The analyst views carry pseudonymous keys from the start.
        ws.privacy.refresh_keys()
        scenario.stage_seconds["live campaigns"] = round(time.perf_counter() - live_started, 2)
        bar.update(1)
        with ws.connect() as con:
            summary = _summarise(con, path)
            found = con.execute("SELECT max(broadcast_id) FROM broadcasts WHERE name = ?",
                                [LIVE_CAMPAIGNS[0]["name"]]).fetchall()
            summary["lift_broadcast"] = found[0][0] if found else None
    finally:
        bar.close()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    summary["stage_seconds"] = scenario.stage_seconds   # where the time went (benchmarks)
    return summary


def _live_campaigns(ws, seed: int) -> None:
    """Compose and schedule the latest campaigns like a marketer would, then let them go
    out through ``run_due`` on the demo's clock, the way cron sends them."""
    import logging

    # The demo shows one progress bar; the outbox's per-batch lines would bury it.
    quiet = logging.getLogger("bizchat.campaigns.outbox")
    level, quiet.level = quiet.level, max(quiet.getEffectiveLevel(), logging.WARNING)
    try:
        _send_live(ws, seed)
    finally:
        quiet.setLevel(level)


def _send_live(ws, seed: int) -> None:
    accounts = ws.sql("SELECT account_id FROM accounts ORDER BY account_id")["account_id"].tolist()
    for i, spec in enumerate(LIVE_CAMPAIGNS):
        created = ws.broadcasts.create(
            accounts[spec["account"]], spec["name"], category="marketing", body=spec["body"],
            labels_any=spec["labels_any"], variants=spec["variants"] or None,
            control=spec["control"], seed=seed + i, missing="fallback",
            fallbacks={"first_name": "liebe Leserin, lieber Leser"}, actor="demo")
        # Scheduled the day before; frozen at the send time, not before.
        at = cast(datetime, spec["at"])
        ws.broadcasts.schedule(created["broadcast_id"], at=at, now=at - timedelta(days=1),
                               actor="demo")
    # Cron's run-due at each send time, and once more at the demo's "now": quiet hours
    # and the frequency cap are decided at hand-off, receipts arrive up to that clock.
    for when in sorted(cast(datetime, spec["at"]) for spec in LIVE_CAMPAIGNS):
        ws.broadcasts.run_due(now=when, transport="simulated", actor="demo")
    ws.broadcasts.run_due(now=clock.NOW, transport="simulated", actor="demo")


def format_summary(summary: dict) -> str:
    """A few aligned lines for the terminal, ending with the workspace path."""
    lines = [
        ("accounts", f"{summary['accounts']:,}"),
        ("contacts", f"{summary['contacts']:,}"),
        ("opted in (marketing)", f"{summary['opted_in_share']:.1%}"),
        ("messages", f"{summary['messages']:,}"),
        ("broadcasts", f"{summary['broadcasts']:,}"),
        ("delivery rate", f"{summary['delivery_rate']:.1%}"),
        ("open rate", f"{summary['open_rate']:.1%}"),
        ("built in", f"{summary['seconds']:.1f} s"),
        ("workspace", str(summary["path"])),
    ]
    width = max(len(k) for k, _ in lines) + 2
    return "\n".join(f"{k:<{width}}{v}" for k, v in lines)


def next_steps(summary: dict) -> str:
    """What to try after building the demo (printed by ``bizchat demo``)."""
    path = summary["path"]
    lift = summary.get("lift_broadcast") or "ID"
    return ("Try next:\n"
            "  make lab        JupyterLab on notebooks/ with this workspace\n"
            f"  bizchat --workspace {path} stats open-rates --by hour\n"
            f"  bizchat --workspace {path} broadcast show {lift}\n"
            f"  bizchat --workspace {path} stats lift {lift}")


def _make_room(path: Path, replace: bool) -> None:
    """Refuse to overwrite a workspace with data unless asked; with replace, delete it.

    A file that another process holds raises WorkspaceBusy either way: deleting it under
    a running receiver or report would lose that process's writes.
    """
    if not path.exists():
        return
    if path.is_dir():
        raise BizchatError(f"The workspace path {path} is a folder. Give the path of a .duckdb "
                           "file, e.g. data/demo.duckdb.", path=str(path))
    try:
        con = store.connect(path, read_only=not replace)
    except (duckdb.Error, NotAWorkspace) as exc:  # not a DuckDB file (WorkspaceBusy passes)
        if replace:
            con = None
        else:
            raise Conflict(f"{path} exists and is not a bizchat workspace ({exc}). Pass "
                           "--replace (replace=True) to delete it and build the demo there.",
                           path=str(path)) from exc
    if con is not None:
        try:
            tables = {r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables").fetchall()}
            held = sum(con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0]
                       for t in ("accounts", "contacts", "messages") if t in tables)
        finally:
            con.close()
        if held and not replace:
            raise Conflict(f"The workspace {path} already holds data. Pass --replace "
                           "(replace=True) to delete it and build the demo there, or choose "
                           "another path with --workspace.", path=str(path))
    if replace:
        for victim in (path, path.with_name(path.name + ".wal")):
            victim.unlink(missing_ok=True)


# --- the generator --------------------------------------------------------------------

class _Scenario:
    """Draws the whole scenario into numpy arrays, then writes it (see build)."""

    def __init__(self, rng: np.random.Generator, n: int, bar):
        self.rng, self.n, self.bar = rng, n, bar
        self.chunks: list[dict] = []   # message chunks; see add_messages
        self.stage_seconds: dict[str, float] = {}
        self.n_msgs = 0

    def _stage(self, name: str) -> None:
        self.bar.set_description(f"demo: {name}")
        self._current, self._since = name, time.perf_counter()

    def _done(self) -> None:
        self.stage_seconds[self._current] = round(time.perf_counter() - self._since, 3)
        self.bar.update(1)

    def generate(self) -> None:
        from . import campaigns, chats

        self._stage("contacts")
        self._contacts()
        self._done()
        self._stage("consent")
        self._consent()
        self._labels()
        self._done()
        self._stage("broadcasts")
        campaigns.broadcasts(self)
        self._done()
        self._stage("replies")
        campaigns.replies(self)
        chats.keyword_messages(self)
        self._done()
        self._stage("service chats")
        chats.service_threads(self)
        self._done()
        self._stage("messages")
        self._finish_messages()
        self._done()

    # --- contacts ---------------------------------------------------------------------

    def _contacts(self) -> None:
        rng, n = self.rng, self.n
        self.account = np.where(rng.random(n) < 0.6, 1, 2)
        self.country = rng.choice(3, n, p=[0.82, 0.11, 0.07])       # DE, AT, CH
        self.female = rng.random(n) < 0.58
        self.e164 = self._numbers(np.ones(n, bool))
        # Some customers write to both numbers: the same person is a contact of each.
        acc2 = np.flatnonzero(self.account == 2)
        acc1 = np.flatnonzero(self.account == 1)
        k = min(len(acc2) // 12, len(acc1))
        twins, sources = rng.choice(acc2, k, replace=False), rng.choice(acc1, k, replace=False)
        for arr in (self.country, self.female, self.e164):
            arr[twins] = arr[sources]
        while True:   # numbers are unique per account: redraw the rare collisions
            key = self.e164 + self.account * 10**15
            _, first = np.unique(key, return_index=True)
            dup = np.ones(n, bool)
            dup[first] = False
            if not dup.any():
                break
            self.e164[dup] = self._numbers(dup)[dup]
        self.wa_id = pa.array(self.e164).cast(pa.string())
        names = C.names(rng, self.country, self.female)
        self.first_name, self.name = names
        if k:   # twins carry the same name as their other contact
            self.first_name[twins], self.name[twins] = self.first_name[sources], self.name[sources]
        self.channel = rng.choice(4, n, p=C.CHANNEL_P)  # form, in_store, chat, import
        self.created = self._created_times()
        self.engagement = rng.normal(0, 1, n)
        self.no_read_receipts = rng.random(n) < 0.07
        # Numbers go stale: a few contacts leave WhatsApp (a new number, a new phone) at
        # some point; later sends fail with 131026, and nothing comes from them after it.
        leaves = (rng.random(n) < 0.025) & (self.channel != 2)
        self.gone = np.where(leaves, self.created + (rng.random(n) * (clock.NOW_US - self.created)).astype(np.int64),
                             clock.NEVER)

    def _numbers(self, mask: np.ndarray) -> np.ndarray:
        """Valid mobile numbers as integers (E.164 digits) from real prefixes per country."""
        rng, n = self.rng, self.n
        out = np.zeros(n, np.int64)
        for code, (cc, prefixes, weights, lengths) in enumerate(C.MOBILE_PLANS):
            rows = np.flatnonzero(mask & (self.country == code))
            pick = rng.choice(len(prefixes), len(rows), p=np.array(weights) / sum(weights))
            prefix = np.array(prefixes, np.int64)[pick]
            sub_len = np.array(lengths, np.int64)[pick, rng.integers(0, 4, len(rows))]
            sub = (rng.random(len(rows)) * 10.0**sub_len).astype(np.int64)
            nsn = prefix * 10**sub_len + sub
            digits = np.floor(np.log10(np.maximum(nsn, 1))).astype(np.int64) + 1
            out[rows] = cc * 10**digits + nsn
        return out

    def _created_times(self) -> np.ndarray:
        """Two years of sign-ups, growing over time, at plausible local times of day."""
        rng, n = self.rng, self.n
        start = clock.NOW_US - 730 * clock.DAY
        day_local = (start + clock.offset(np.array([start]))[0]) // clock.DAY + np.floor(
            730 * rng.random(n) ** 0.75).astype(np.int64)
        hour = rng.choice(24, n, p=C.HOUR_P)
        tod = hour * clock.HOUR + (rng.random(n) * clock.HOUR).astype(np.int64)
        shop = self.channel == 1   # in the shop: opening hours only
        tod[shop] = ((10 + 8 * rng.random(shop.sum())) * clock.HOUR).astype(np.int64)
        t = day_local * clock.DAY + tod
        t -= clock.offset(t)
        imported = self.channel == 3   # two list imports, on fixed days, a few ms apart
        for account, when in C.IMPORTS.items():
            rows = np.flatnonzero(imported & (self.account == account))
            t[rows] = int(when.timestamp()) * clock.S + np.arange(len(rows)) * 1000
        return np.minimum(t, clock.NOW_US - clock.HOUR)

    # --- consent ----------------------------------------------------------------------

    def _consent(self) -> None:
        """Each contact's marketing timeline: opt-in, maybe a later opt-out, maybe back."""
        rng, n = self.rng, self.n
        t0 = self.created
        p_in = np.array(C.OPT_IN_P)[self.channel]
        joins = rng.random(n) < p_in
        delay = np.select(
            [self.channel == 0, self.channel == 2],
            [rng.lognormal(np.log(4 * clock.MIN), 1.0, n),              # confirming the DOI mail
             rng.exponential(6 * clock.DAY, n)],                         # asked later in the chat
            0).astype(np.int64)
        self.mk_in = np.where(joins, t0 + delay, clock.NEVER)
        self.mk_in[self.mk_in > clock.NOW_US] = clock.NEVER
        self.mk_decline = np.where((self.channel == 2) & ~joins & (rng.random(n) < 0.5),
                                   t0 + 2 * clock.MIN, clock.NEVER)
        early = rng.random(n) < 0.05
        gap = np.where(early, rng.exponential(25 * clock.DAY, n), rng.exponential(2600 * clock.DAY, n))
        self.mk_out = np.where(self.mk_in < clock.NEVER, self.mk_in + clock.HOUR + gap.astype(np.int64), clock.NEVER)
        self.mk_out[self.mk_out > np.minimum(clock.NOW_US, self.gone)] = clock.NEVER
        self.mk_out_keyword = rng.random(n) < 0.6           # else the WhatsApp stop button
        back = (self.mk_out < clock.NEVER) & (rng.random(n) < 0.15)
        self.mk_re = np.where(back, self.mk_out + rng.exponential(40 * clock.DAY, n).astype(np.int64) + clock.DAY,
                              clock.NEVER)
        self.mk_re[self.mk_re > np.minimum(clock.NOW_US, self.gone)] = clock.NEVER
        self.mk_re_chat = rng.random(n) < 0.5                # "START" in the chat, else resume

    def opted_in(self, t, c: np.ndarray) -> np.ndarray:
        """Whether contacts c had a marketing opt-in at instant(s) t."""
        return (self.mk_in[c] <= t) & ((self.mk_out[c] > t) | (self.mk_re[c] <= t))

    def _labels(self) -> None:
        """The label matrix (contacts x C.LABELS) from the contacts' traits."""
        rng, n = self.rng, self.n
        genre = self.genre = rng.choice(len(C.GENRES), n, p=C.GENRE_P)
        kids = np.isin(genre, C.KIDS_GENRES)
        age = clock.NOW_US - self.created
        regular = (age > 180 * clock.DAY) & (rng.random(n) < 0.4 + 0.1 * np.clip(self.engagement, -2, 2))
        m = np.zeros((n, len(C.LABELS)), bool)
        m[:, 0] = age < 60 * clock.DAY                                         # Neukunde
        m[:, 1] = regular                                                # Stammkunde
        m[:, 2] = rng.random(n) < np.where(kids, 0.85, 0.08)             # Kinderbuch
        m[:, 3] = rng.random(n) < np.where(~kids, 0.8, 0.1)              # Krimi
        m[:, 4] = rng.random(n) < np.where(self.account == 2, 0.3, 0.14)  # Lesung
        m[:, 5] = regular & (rng.random(n) < 0.12)                       # VIP
        self.label = m

    # --- messages ---------------------------------------------------------------------

    def add_messages(self, contact, created, direction, kind, body, **extra) -> np.ndarray:
        """Append a chunk of messages; returns their row numbers (stable ids until write).

        ``extra`` may hold: media (index into C.MIMES), template (template row), broadcast,
        variant, automatic, reply_to (row number), and the outcome of outbound messages:
        sent, delivered, read, failed (times), error (Cloud API code), callback, pricing.
        """
        m = len(contact)
        rows = np.arange(self.n_msgs, self.n_msgs + m)
        self.n_msgs += m
        chunk = {"contact": np.asarray(contact), "created": np.asarray(created, np.int64),
                 "direction": np.broadcast_to(direction, m), "kind": np.broadcast_to(kind, m),
                 "body": body if isinstance(body, pa.Array) else pa.array(body, pa.string())}
        for key, value in extra.items():
            chunk[key] = value if isinstance(value, pa.Array) else np.broadcast_to(value, m)
        self.chunks.append(chunk)
        return rows

    def outcomes(self, contact, sent, p_read, read_median, pricing) -> dict:
        """Delivered and read times for outbound messages accepted at ``sent``."""
        rng, m = self.rng, len(contact)
        offline = rng.random(m) < 0.1   # the phone is off: delivered hours later
        lag = np.where(offline, rng.lognormal(np.log(2 * clock.HOUR), 1.0, m),
                       rng.lognormal(np.log(3 * clock.S), 0.8, m)).astype(np.int64)
        delivered = np.where(rng.random(m) < 0.975, sent + clock.S + lag, clock.NEVER)
        delivered[delivered > self.gone[contact]] = clock.NEVER
        reads = (rng.random(m) < p_read) & ~self.no_read_receipts[contact] & (delivered < clock.NEVER)
        read_lag = np.minimum(rng.lognormal(np.log(read_median), 1.6, m), 9 * clock.DAY).astype(np.int64)
        read = np.where(reads, delivered + clock.S + read_lag, clock.NEVER)
        delivered[delivered > clock.NOW_US] = clock.NEVER
        read[read > np.minimum(clock.NOW_US, self.gone[contact])] = clock.NEVER
        return {"sent": sent + clock.S, "delivered": delivered, "read": read,
                "failed": np.full(m, clock.NEVER), "error": np.zeros(m, np.int32), "pricing": pricing}

    def _finish_messages(self) -> None:
        """Concatenate the chunks, assign chats and Cloud-API-shaped message ids."""
        cols = {}
        keys = {k for ch in self.chunks for k in ch}
        defaults = {"media": -1, "template": -1, "broadcast": 0, "variant": -1,
                    "automatic": False, "reply_to": -1, "sent": clock.NEVER, "delivered": clock.NEVER,
                    "read": clock.NEVER, "failed": clock.NEVER, "error": 0, "callback": -1, "pricing": -1}
        for key in keys - {"body"}:
            cols[key] = np.concatenate([
                np.asarray(ch[key]) if key in ch else np.full(len(ch["contact"]), defaults[key])
                for ch in self.chunks])
        cols["body"] = pa.concat_arrays([ch["body"] for ch in self.chunks])
        for key, value in defaults.items():
            cols.setdefault(key, np.full(self.n_msgs, value))
        keep = cols["created"] <= clock.NOW_US
        # Physical order by time: DuckDB's zone maps then skip whole row groups per period.
        order = np.flatnonzero(keep)[np.argsort(cols["created"][keep], kind="stable")]
        self.msg = cols
        self.msg_order = order
        self.wamid = _wamids(self.rng, self.wa_id, cols["contact"])
        self._chats(cols, order)

    def _chats(self, cols, order) -> None:
        n = self.n
        contact, created = cols["contact"][order], cols["created"][order]
        first = np.full(n, clock.NEVER)
        np.minimum.at(first, contact, created)
        last = np.zeros(n, np.int64)
        np.maximum.at(last, contact, created)
        inbound = cols["direction"][order] == 0
        last_in = np.full(n, -1, np.int64)
        np.maximum.at(last_in, contact[inbound], created[inbound])
        has = np.flatnonzero(first < clock.NEVER)
        has = has[np.argsort(first[has], kind="stable")]
        self.chat_of = np.zeros(n, np.int64)
        self.chat_of[has] = np.arange(1, len(has) + 1)
        self.chat_rows = (has, first[has], np.where(last_in[has] >= 0, last_in[has], clock.NEVER),
                          last[has])

    # --- writing ----------------------------------------------------------------------

    def write(self, con, seed: int) -> None:
        from . import write

        self._stage("writing")
        # DuckDB draws its own bar for long queries; ours covers the stages (or is off).
        con.execute("SET enable_progress_bar = false")
        write.write_tables(self, con, seed)
        self._done()
        self._stage("receipts")
        webhooks.record_receipts(con, write.events(self))
        self._done()


def _wamids(rng, wa_id: pa.Array, contact: np.ndarray) -> pa.Array:
    """Message ids shaped like the Cloud API's: 'wamid.' + base64(wa_id, hex id).

    The payload is framed as WhatsApp frames it (length byte, wa_id, a hex id); the hex
    id is random digits followed by the row number, so ids are unique. Rows are
    grouped by wa_id length so one base64 call encodes a whole group of equal-size
    payloads (each a multiple of 3 bytes, so the encodings simply concatenate).
    """
    hexdigits = np.frombuffer(b"0123456789ABCDEF", np.uint8)
    ids = np.asarray(wa_id.to_pylist(), dtype="S")
    lengths = np.char.str_len(ids)
    rows_by_len, pieces = [], []
    row_len = lengths[contact]
    for length in np.unique(row_len):
        rows = np.flatnonzero(row_len == length)
        hex_len = 18 + (-(10 + length + 18)) % 3       # payload length divisible by 3
        size = 10 + length + hex_len
        mat = np.zeros((len(rows), size), np.uint8)
        mat[:, :3] = (0x1C, 0x18, length)
        mat[:, 3:3 + length] = ids[contact[rows]].view(np.uint8).reshape(-1, ids.itemsize)[:, :length]
        mat[:, 3 + length:9 + length] = (0x15, 0x02, 0x00, 0x12, 0x18, hex_len)
        mat[:, 9 + length:1 + length + hex_len] = hexdigits[rng.integers(0, 16, (len(rows), hex_len - 8))]
        shifts = np.arange(7, -1, -1) * 4
        mat[:, 1 + length + hex_len:-1] = hexdigits[(rows[:, None] >> shifts) & 15]
        encoded = np.frombuffer(base64.b64encode(mat.tobytes()), dtype=f"S{size * 4 // 3}")
        piece = pa.array(encoded)   # a ChunkedArray when large
        if isinstance(piece, pa.ChunkedArray):
            piece = piece.combine_chunks()
        pieces.append(piece.cast(pa.string()))
        rows_by_len.append(rows)
    joined = pa.concat_arrays(pieces)
    where = np.empty(len(contact), np.int64)
    where[np.concatenate(rows_by_len)] = np.arange(len(contact))
    return pc.binary_join_element_wise("wamid.", joined.take(pa.array(where)), "")


def _summarise(con, path: Path) -> dict:
    accounts, contacts, messages, broadcasts = con.execute("""
        SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM contacts),
               (SELECT count(*) FROM messages), (SELECT count(*) FROM broadcasts)""").fetchone()
    opted = con.execute("""SELECT count(*) FROM current_consent
        WHERE purpose = 'marketing' AND state = 'opt_in'""").fetchone()[0]
    sent, delivered, read = con.execute("""
        SELECT sum(sent), sum(delivered), sum("read") FROM campaign_stats""").fetchone()
    return {
        "path": str(path), "accounts": accounts, "contacts": contacts,
        "opted_in_share": opted / contacts if contacts else 0.0,
        "messages": messages, "broadcasts": broadcasts,
        "delivery_rate": float(delivered / sent) if sent else 0.0,
        "open_rate": float(read / delivered) if delivered else 0.0,
    }

