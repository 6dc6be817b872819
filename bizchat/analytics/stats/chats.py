"""Chat metrics: when customers write, how fast the business answers, how long chats are.

A customer *turn* starts with an inbound message that follows a business message, opens
the chat, or comes more than 24 h after the customer's previous unanswered message (that
window closed unanswered), and lasts until the business answers. Automatic messages
(greeting, away) and broadcast messages are not answers, so they are left out of the
sequence; a business message more than 7 days after the turn's last inbound message is a
new conversation, not an answer. The first response time is from the turn's first
inbound message to the business's answer; a turn is answered within the 24-hour window
when that answer came at most 24 h after the customer's last message of the turn (the
window in which free-form replies are allowed). Turns whose window is still open at
``as_of`` are *pending* and left out of the share. Filters: account, time range (on the message / turn start), labels of the contact;
template categories do not apply to chats.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir

from .outcomes import aggregate, key_columns, with_time_keys
from .tables import Filters, Tables, ratio

SERVICE_WINDOW = timedelta(hours=24)
ANSWER_HORIZON = timedelta(days=7)
CHAT_GROUPINGS = ("account", "day", "week", "month", "hour", "weekday")


def _messages(t: Tables, f: Filters) -> ir.Table:
    m = t.messages
    preds = [m.chat_id.notnull()]
    if f.account_id is not None:
        preds.append(m.account_id == f.account_id)
    m = m.filter(*preds)
    if f.label_ids:
        m = m.filter(f.has_label(t, m.contact_id))
    return m


def inbound_volume(t: Tables, f: Filters, by: Sequence[str], tz: str = "UTC") -> ir.Table:
    """Inbound messages per group (e.g. weekday and hour in ``tz``): messages, chats."""
    m = _messages(t, f)
    m = m.filter(m.direction == "in", *f.time(m.created_at))
    m = with_time_keys(t, m, by, tz, column="created_at")
    return aggregate(m, key_columns(by), dict(messages=m.count(), chats=m.chat_id.nunique()))


def turns(t: Tables, f: Filters) -> ir.Table:
    """One row per customer turn: chat_id, account_id, contact_id, first_in_at,
    last_in_at, reply_at (NULL while unanswered)."""
    m = _messages(t, f)
    m = m.filter((m.direction == "in") | (~m.automatic & m.broadcast_id.isnull()))
    order = [m.created_at, m.message_id]
    m = m.mutate(prev=m.direction.lag().over(group_by=m.chat_id, order_by=order),
                 prev_at=m.created_at.lag().over(group_by=m.chat_id, order_by=order))
    starts = ((m.direction == "in") & (m.prev.isnull() | (m.prev == "out")
                                       | (m.created_at > m.prev_at + SERVICE_WINDOW)))
    m = m.mutate(start=starts)
    m = m.mutate(turn=m.start.cast("int64").cumsum(group_by=m.chat_id,
                                                   order_by=[m.created_at, m.message_id]))
    m = m.filter(m.turn > 0)
    inbound = m.direction == "in"
    out = m.group_by(["chat_id", "account_id", "turn"]).aggregate(
        contact_id=m.contact_id.max(),
        first_in_at=m.created_at.min(where=inbound),
        last_in_at=m.created_at.max(where=inbound),
        reply_at=m.created_at.min(where=~inbound))
    late = out.reply_at > out.last_in_at + ANSWER_HORIZON
    out = out.mutate(reply_at=ibis.ifelse(late, ibis.null("timestamp('UTC')"), out.reply_at))
    time = f.time(out.first_in_at)
    return out.filter(*time) if time else out


def response_times(t: Tables, f: Filters, by: Sequence[str], tz: str, as_of: datetime) -> ir.Table:
    """Per group (account, or day/week/month/hour/weekday of the turn's start in ``tz``):
    turns, answered, pending, answered_24h, answered_24h_share (of turns no longer
    pending), median_response_min, p90_response_min (over answered turns)."""
    tr = turns(t, f)
    answer = t.minutes_between(tr.reply_at, tr.first_in_at)
    in_window = tr.reply_at.notnull() & (tr.reply_at <= tr.last_in_at + SERVICE_WINDOW)
    pending = tr.reply_at.isnull() & (tr.last_in_at + SERVICE_WINDOW > as_of)
    tr = tr.mutate(response_min=answer, in_window=in_window, pending=pending)
    tr = with_time_keys(t, tr, by, tz, column="first_in_at")
    agg = aggregate(tr, key_columns(by), dict(
        turns=tr.count(), answered=tr.count(where=tr.reply_at.notnull()),
        pending=tr.count(where=tr.pending), answered_24h=tr.count(where=tr.in_window),
        median_response_min=tr.response_min.quantile(0.5),
        p90_response_min=tr.response_min.quantile(0.9)))
    share = ratio(agg.answered_24h, agg.turns - agg.pending)
    return agg.mutate(answered_24h_share=share).relocate("answered_24h_share", after="answered_24h")


def messages_per_chat(t: Tables, f: Filters, by: Sequence[str]) -> ir.Table:
    """Per group (account or none): chats, messages, inbound, outbound and the mean,
    median and p90 of messages per chat (messages in the time range)."""
    m = _messages(t, f)
    m = m.filter(*f.time(m.created_at)) if f.start or f.end else m
    per_chat = m.group_by(["chat_id", "account_id"]).aggregate(
        n=m.count(), inbound=m.count(where=m.direction == "in"),
        outbound=m.count(where=m.direction == "out"))
    return aggregate(per_chat, key_columns(by), dict(
        chats=per_chat.count(), messages=per_chat.n.sum(), inbound=per_chat.inbound.sum(),
        outbound=per_chat.outbound.sum(), mean_per_chat=per_chat.n.mean(),
        median_per_chat=per_chat.n.quantile(0.5).cast("float64"),
        p90_per_chat=per_chat.n.quantile(0.9).cast("float64")))

