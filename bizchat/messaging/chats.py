"""Chats and their messages: the one place messages enter the store.

Webhook ingestion, chat-export import and the transports all store messages through
``store_messages``: one set-based insert that skips message ids already stored (so any
replay is harmless), creates the chat of a new (account, contact) pair and keeps each
chat's ``last_inbound_at`` current, which opens the 24-hour customer-service window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pyarrow as pa

from .. import store
from ..errors import InvalidValue, NotFound

SERVICE_WINDOW = timedelta(hours=24)

MESSAGE_SCHEMA = pa.schema([
    ("message_id", pa.string()),
    ("chat_id", pa.int64()),
    ("account_id", pa.int32()),
    ("contact_id", pa.int64()),
    ("direction", pa.string()),
    ("kind", pa.string()),
    ("body", pa.string()),
    ("media_mime", pa.string()),
    ("reply_to", pa.string()),
    ("template_name", pa.string()),
    ("broadcast_id", pa.int64()),
    ("variant", pa.string()),
    ("automatic", pa.bool_()),
    ("source", pa.string()),
    ("details", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
])


def as_message_table(frame: pd.DataFrame | pa.Table) -> pa.Table:
    """Bring rows to the messages table's columns; absent columns become NULL (automatic:
    false)."""
    return store.conform(frame, MESSAGE_SCHEMA, {"automatic": False})


def _insert_missing_chats(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """Create a chat for every (account_id, contact_id, started_at) pair in the relation
    ``source`` that has none yet; ids in order of first message, so they are reproducible."""
    base = store.next_id(con, "chats", "chat_id")
    con.execute(f"""
        INSERT INTO chats (chat_id, account_id, contact_id, started_at)
        SELECT ? - 1 + row_number() OVER (ORDER BY min(p.started_at), p.account_id, p.contact_id),
               p.account_id, p.contact_id, min(p.started_at)
        FROM {source} AS p
        WHERE p.contact_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM chats AS c
            WHERE c.account_id = p.account_id AND c.contact_id = p.contact_id)
        GROUP BY p.account_id, p.contact_id""", [base])


def ensure_chats(con: duckdb.DuckDBPyConnection, pairs: pd.DataFrame) -> pd.Series:
    """chat_id for each row of ``pairs`` (account_id, contact_id, started_at), creating
    the chats that do not exist yet. Returns an Int64 Series aligned with ``pairs``."""
    if pairs.empty:
        return pd.Series([], index=pairs.index, dtype="Int64")
    frame = pd.DataFrame({
        "i": range(len(pairs)),
        "account_id": pairs["account_id"].to_numpy(),
        "contact_id": pairs["contact_id"].to_numpy(),
        "started_at": pd.to_datetime(pairs["started_at"], utc=True).to_numpy(),
    })
    con.register("_chat_pairs", frame)
    try:
        _insert_missing_chats(con, "_chat_pairs")
        ids = con.execute("""
            SELECT c.chat_id FROM _chat_pairs AS p
            LEFT JOIN chats AS c ON c.account_id = p.account_id AND c.contact_id = p.contact_id
            ORDER BY p.i""").df()["chat_id"]
    finally:
        con.unregister("_chat_pairs")
    return pd.Series(ids.to_numpy(), index=pairs.index, dtype="Int64")


def store_messages(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame | pa.Table) -> pd.DataFrame:
    """Insert messages whose id is not stored yet; return the rows that were new.

    Rows without ``chat_id`` get the chat of their (account_id, contact_id), created on
    first contact. Set-based throughout; call inside the caller's transaction.
    """
    table = as_message_table(frame)
    if table.num_rows == 0:
        return table.to_pandas()
    con.register("_incoming_messages", table)
    try:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _new_messages AS
            SELECT * FROM _incoming_messages AS i
            WHERE NOT EXISTS (SELECT 1 FROM messages AS m WHERE m.message_id = i.message_id)
            QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY created_at) = 1""")
    finally:
        con.unregister("_incoming_messages")
    # First contact opens the chat.
    _insert_missing_chats(con, """(SELECT account_id, contact_id, created_at AS started_at
                                   FROM _new_messages WHERE chat_id IS NULL)""")
    con.execute("""
        UPDATE _new_messages SET chat_id = c.chat_id FROM chats AS c
        WHERE _new_messages.chat_id IS NULL AND c.account_id = _new_messages.account_id
          AND c.contact_id = _new_messages.contact_id""")
    con.execute("INSERT INTO messages SELECT * FROM _new_messages")
    # Keep each chat's clock current: the window opens with the customer's last message.
    con.execute("""
        UPDATE chats SET
            started_at = least(chats.started_at, n.first_at),
            last_message_at = greatest(chats.last_message_at, n.last_at),
            last_inbound_at = greatest(chats.last_inbound_at, n.last_in)
        FROM (SELECT chat_id, min(created_at) AS first_at, max(created_at) AS last_at,
                     max(created_at) FILTER (WHERE direction = 'in') AS last_in
              FROM _new_messages WHERE chat_id IS NOT NULL GROUP BY chat_id) AS n
        WHERE chats.chat_id = n.chat_id""")
    new = con.execute("SELECT * FROM _new_messages").df()
    con.execute("DROP TABLE _new_messages")
    return new


def service_windows(con: duckdb.DuckDBPyConnection, account_id: int,
                    at: datetime | None = None) -> pd.DataFrame:
    """Per chat of the account: whether the 24-hour customer-service window is open at
    ``at`` (default now) and until when. Inside it free-form messages are allowed; outside
    it only templates."""
    at = at or datetime.now(UTC)
    return con.execute("""
        SELECT chat_id, contact_id, last_inbound_at,
               last_inbound_at + INTERVAL 24 HOURS AS window_until,
               coalesce(last_inbound_at + INTERVAL 24 HOURS > ?::TIMESTAMPTZ
                        AND last_inbound_at <= ?::TIMESTAMPTZ, false) AS window_open
        FROM chats WHERE account_id = ? ORDER BY chat_id""", [at, at, account_id]).df()


INBOX_LIMIT = 500
CONVERSATION_LIMIT = 300


@dataclass(frozen=True)
class ChatView:
    """One chat as the inbox shows it: ``chat`` (chat_id, account_id, contact_id, name,
    phone_e164, language, read_at, unread, labels, window_open, window_until) and its latest
    ``messages`` (oldest first: message_id, created_at, direction, kind, body, media_mime,
    template_name, automatic, status), at most ``limit`` of them; ``more`` when older ones
    were left out."""

    chat: dict
    messages: pd.DataFrame
    more: bool


class Chats:
    """Chats of an account, their messages and their customer-service window."""

    def __init__(self, ws):
        self.ws = ws

    def _account_id(self, con, account) -> int:
        from ..people.accounts import resolve_id

        return resolve_id(con, account)

    def list(self, account) -> pd.DataFrame:
        """The account's chats, latest first, with message counts and window state."""
        with self.ws.connect(read_only=True) as con:
            account_id = self._account_id(con, account)
            return con.execute("""
                SELECT c.chat_id, c.contact_id, k.name, c.started_at, c.last_inbound_at,
                       c.last_message_at,
                       coalesce(c.last_inbound_at + INTERVAL 24 HOURS > now(), false) AS window_open,
                       (SELECT count(*) FROM messages m WHERE m.chat_id = c.chat_id) AS messages
                FROM chats c LEFT JOIN contacts k USING (contact_id)
                WHERE c.account_id = ? ORDER BY c.last_message_at DESC NULLS LAST""",
                [account_id]).df()

    def inbox(self, account, *, search: str | None = None, limit: int = 200,
              at: datetime | None = None) -> pd.DataFrame:
        """The account's chats as an inbox lists them: unread first, then the latest.

        Per chat: chat_id, contact_id, name, phone_e164, unread (inbound messages after
        ``read_at``), last_at, last_direction, last_kind, last_body, window_open and
        window_until (the 24-hour window at ``at``, default now) and the chat's label
        names. ``search`` matches a contact's name or number (as the contact finder) or
        the text of any message in the chat.
        """
        from ..people.accounts import get_account
        from ..people.contact_search import query_predicate

        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= INBOX_LIMIT:
            raise InvalidValue(f"The inbox lists 1 to {INBOX_LIMIT} chats at a time, not "
                               f"{limit!r}.", input=limit)
        at = at or datetime.now(UTC)
        with self.ws.connect(read_only=True) as con:
            acc = get_account(con, account)
            where, params = "TRUE", []   # type: tuple[str, list]
            if search and str(search).strip():
                who, params = query_predicate(acc, search)
                where = (f"({who} OR EXISTS (SELECT 1 FROM messages s WHERE s.chat_id = h.chat_id "
                         "AND contains(lower(s.body), lower(?))))")
                params = [*params, str(search).strip()]
            aid = acc["account_id"]
            # Order the chats by what chats keeps current (last_message_at) and the unread
            # counts, cut to ``limit``, and only then read the last message of those:
            # picking every chat's last message body first would aggregate all messages.
            return con.execute(f"""
                WITH unread AS (
                    SELECT m.chat_id, count(*) AS unread FROM messages m JOIN chats h USING (chat_id)
                    WHERE m.account_id = ? AND h.account_id = ? AND m.direction = 'in'
                      AND (h.read_at IS NULL OR m.created_at > h.read_at)
                    GROUP BY m.chat_id),
                top AS (
                    SELECT h.chat_id, h.contact_id, c.name, c.phone_e164,
                           coalesce(u.unread, 0) AS unread, h.last_message_at AS last_at,
                           coalesce(h.last_inbound_at + INTERVAL 24 HOURS > ?::TIMESTAMPTZ
                                    AND h.last_inbound_at <= ?::TIMESTAMPTZ, false) AS window_open,
                           h.last_inbound_at + INTERVAL 24 HOURS AS window_until
                    FROM chats h LEFT JOIN contacts c ON c.contact_id = h.contact_id
                    LEFT JOIN unread u ON u.chat_id = h.chat_id
                    WHERE h.account_id = ? AND {where}
                    ORDER BY coalesce(u.unread, 0) > 0 DESC, h.last_message_at DESC NULLS LAST,
                             h.chat_id
                    LIMIT ?),
                last AS (
                    SELECT m.chat_id,
                           arg_max(m.direction, m.message_id) AS last_direction,
                           arg_max(m.kind, m.message_id) AS last_kind,
                           arg_max(m.body, m.message_id) AS last_body
                    FROM messages m JOIN top t ON m.chat_id = t.chat_id AND m.created_at = t.last_at
                    GROUP BY m.chat_id)
                SELECT t.chat_id, t.contact_id, t.name, t.phone_e164, t.unread, t.last_at,
                       l.last_direction, l.last_kind, l.last_body, t.window_open, t.window_until,
                       coalesce((SELECT list(b.name ORDER BY b.name) FROM chat_labels x
                                 JOIN labels b USING (label_id) WHERE x.chat_id = t.chat_id),
                                []) AS labels
                FROM top t LEFT JOIN last l ON l.chat_id = t.chat_id
                ORDER BY t.unread > 0 DESC, t.last_at DESC NULLS LAST, t.chat_id""",
                [aid, aid, at, at, aid, *params, limit]).df()

    def open(self, chat_id: int, *, limit: int = CONVERSATION_LIMIT,
             at: datetime | None = None) -> ChatView:
        """A chat with its latest ``limit`` messages and receipts (read-only: opening does
        not mark it read; ``mark_read`` does)."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidValue(f"limit must be a positive number of messages, not {limit!r}.",
                               input=limit)
        at = at or datetime.now(UTC)
        with self.ws.connect(read_only=True) as con:
            found = store.rows(con.execute("""
                SELECT h.chat_id, h.account_id, h.contact_id, c.name, c.phone_e164, c.wa_id,
                       c.language, h.read_at, h.last_inbound_at,
                       h.last_inbound_at + INTERVAL 24 HOURS AS window_until,
                       coalesce(h.last_inbound_at + INTERVAL 24 HOURS > ?::TIMESTAMPTZ
                                AND h.last_inbound_at <= ?::TIMESTAMPTZ, false) AS window_open,
                       coalesce((SELECT list(b.name ORDER BY b.name) FROM chat_labels x
                                 JOIN labels b USING (label_id) WHERE x.chat_id = h.chat_id),
                                []) AS labels
                FROM chats h LEFT JOIN contacts c ON c.contact_id = h.contact_id
                WHERE h.chat_id = ?""", [at, at, chat_id]))
            if not found:
                raise NotFound(f"There is no chat {chat_id}. List the chats with "
                               "ws.chats.inbox(account).", chat_id=chat_id)
            # The chat's messages first (a filter on one column), then the statuses of its
            # outbound ones by id: a join of all messages with message_status would read
            # both tables whole.
            messages = con.execute("""
                SELECT message_id, created_at, direction, kind, body, media_mime, template_name,
                       automatic
                FROM messages WHERE chat_id = ?
                ORDER BY created_at, message_id""", [chat_id]).df()
            out = messages.loc[messages["direction"] == "out", "message_id"].tolist()
            statuses = con.execute("""
                SELECT s.message_id, s.status FROM message_status s
                SEMI JOIN (SELECT unnest(?::VARCHAR[]) AS message_id) i USING (message_id)""",
                                   [out]).df() if out else None
        chat = found[0]
        status = (dict(zip(statuses["message_id"], statuses["status"], strict=True))
                  if statuses is not None else {})
        messages["status"] = messages["message_id"].map(status).astype(object)
        messages["status"] = messages["status"].where(messages["status"].notna(), None)
        inbound = messages["direction"] == "in"
        if chat["read_at"] is not None:
            inbound &= messages["created_at"] > pd.Timestamp(chat["read_at"])
        chat["unread"] = int(inbound.sum())
        more = len(messages) > limit
        if more:
            messages = messages.iloc[-limit:].reset_index(drop=True)
        return ChatView(chat=chat, messages=messages, more=more)

    def mark_read(self, chat_id: int, *, at: datetime | None = None) -> dict:
        """Mark the chat read up to ``at`` (default now): its inbound messages until then
        stop counting as unread. Returns ``{"chat_id", "read_at", "unread"}``."""
        at = at or datetime.now(UTC)
        with self.ws.transaction() as con:
            if not con.execute("SELECT 1 FROM chats WHERE chat_id = ?", [chat_id]).fetchall():
                raise NotFound(f"There is no chat {chat_id}.", chat_id=chat_id)
            con.execute("UPDATE chats SET read_at = greatest(coalesce(read_at, ?::TIMESTAMPTZ), "
                        "?::TIMESTAMPTZ) WHERE chat_id = ?", [at, at, chat_id])
            read_at, unread = con.execute("""
                SELECT h.read_at, (SELECT count(*) FROM messages m WHERE m.chat_id = h.chat_id
                       AND m.direction = 'in' AND m.created_at > h.read_at)
                FROM chats h WHERE h.chat_id = ?""", [chat_id]).fetchall()[0]
        return {"chat_id": chat_id, "read_at": read_at, "unread": unread}

    def messages(self, chat_id: int) -> pd.DataFrame:
        """A chat's messages in order, with their latest status."""
        with self.ws.connect(read_only=True) as con:
            if not con.execute("SELECT 1 FROM chats WHERE chat_id = ?", [chat_id]).fetchall():
                raise NotFound(f"There is no chat {chat_id}. List chats with ws.chats.list(account).",
                               chat_id=chat_id)
            return con.execute("""
                SELECT m.message_id, m.created_at, m.direction, m.kind, m.body, m.automatic,
                       s.status
                FROM messages m LEFT JOIN message_status s USING (message_id)
                WHERE m.chat_id = ? ORDER BY m.created_at, m.message_id""", [chat_id]).df()

    def window(self, account, contact, at: datetime | None = None) -> dict:
        """The 24-hour customer-service window of the chat with ``contact``.

        ``{"open": bool, "until": datetime | None}``: free-form messages are allowed while
        open; otherwise a template is needed.
        """
        from ..people.contacts import resolve_contact_id

        at = at or datetime.now(UTC)
        with self.ws.connect(read_only=True) as con:
            account_id = self._account_id(con, account)
            contact_id = resolve_contact_id(con, account_id, contact)
            row = con.execute(
                "SELECT last_inbound_at FROM chats WHERE account_id = ? AND contact_id = ?",
                [account_id, contact_id]).fetchall()
        last = row[0][0] if row else None
        until = last + SERVICE_WINDOW if last else None
        return {"open": bool(last and until and last <= at < until), "until": until}
