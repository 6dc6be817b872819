"""The campaign funnel and its rates, grouped any way marketers ask for.

recipients -> sent -> delivered -> read, plus failed (by error code), replied within 72 h
and opted out within 7 days. Rates (DESIGN.md): delivery = delivered / sent, open = read /
delivered (a lower bound: read receipts can be off), reply = replied / delivered, opt-out
= opted out / delivered. Replies and opt-outs are counted among delivered recipients, so
every rate is a proportion. A zero denominator gives NaN.

Each function returns an Ibis expression; ``Stats`` runs it and converts to pandas.
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from .outcomes import (
    aggregate,
    attach_broadcasts,
    broadcast_scope,
    grouped_recipients,
    key_columns,
)
from .tables import Filters, Tables, ratio

COUNTS = ("recipients", "skipped", "sent", "delivered", "read", "failed")
RATES = ("delivery_rate", "open_rate")
RESPONSE_COUNTS = ("replied", "opted_out")
RESPONSE_RATES = ("reply_rate", "opt_out_rate")


def _counts(rel: ir.Table, responses: bool) -> dict:
    metrics = dict(
        recipients=rel.count(),
        skipped=rel.count(where=rel.state == "skipped"),
        sent=rel.count(where=rel.sent),
        delivered=rel.count(where=rel.delivered),
        read=rel.count(where=rel.read),
        failed=rel.count(where=rel.failed),
        first_sent_at=rel.sent_at.min(),
    )
    if responses:
        metrics.update(
            control=rel.count(where=rel.control),
            replied=rel.count(where=rel.delivered & rel.first_reply_at.notnull()),
            opted_out=rel.count(where=rel.delivered & rel.first_opt_out_at.notnull()),
        )
    return metrics


def _rates(agg: ir.Table, responses: bool) -> ir.Table:
    rates = dict(delivery_rate=ratio(agg.delivered, agg.sent),
                 open_rate=ratio(agg.read, agg.delivered))
    if responses:
        rates.update(reply_rate=ratio(agg.replied, agg.delivered),
                     opt_out_rate=ratio(agg.opted_out, agg.delivered))
    return agg.mutate(**rates)


def open_rates(t: Tables, f: Filters, by: Sequence[str], tz: str = "UTC") -> ir.Table:
    """The campaign open-rate table: per group recipients, skipped, sent, delivered, read,
    failed, first_sent_at (the earliest sent receipt), delivery_rate, open_rate (per
    broadcast also name, account_id, category, template, scheduled_for).

    Grouped by broadcast, account or category without a label filter, the table comes
    from per-broadcast totals (``broadcast_totals``); otherwise from the recipients."""
    keys = key_columns(by)
    if set(keys) <= set(BROADCAST_KEYS) and not f.label_ids:
        totals = broadcast_totals(t, f)
        agg = totals.select(*keys, *COUNTS, "first_sent_at") if keys == ["broadcast_id"] else \
            aggregate(totals, keys, {**{c: totals[c].sum() for c in COUNTS},
                                     "first_sent_at": totals.first_sent_at.min()})
        if not keys:  # sums over no broadcasts are NULL; the recipients path gives 0
            agg = agg.mutate(**{c: agg[c].fill_null(0) for c in COUNTS})
        return attach_broadcasts(t, f, _rates(agg, False), keys)
    rel = grouped_recipients(t, f, by, tz)
    agg = _rates(aggregate(rel, keys, _counts(rel, False)), False)
    return attach_broadcasts(t, f, agg, keys)


# Groupings that are properties of the broadcast, so per-broadcast totals can be summed.
BROADCAST_KEYS = ("broadcast_id", "account_id", "category")


def broadcast_totals(t: Tables, f: Filters) -> ir.Table:
    """Per broadcast in scope: account_id, category and the funnel counts of
    ``recipients()`` summed, from two GROUP BYs on the broadcast id instead of a join of
    every recipient with its status on the text message id.

    message_status.broadcast_id marks each recipient's current message (receipts.py keeps
    it so), which makes these counts equal to the recipients' (tested): sent recipients
    from broadcast_recipients, delivered/read/failed messages from message_status, plus
    the recipients that failed before the platform accepted a message."""
    b = broadcast_scope(t, f)
    r = t.broadcast_recipients
    s = t.message_status
    s = s.filter(s.broadcast_id.notnull())
    if f.broadcast_ids:
        r = r.filter(r.broadcast_id.isin(list(f.broadcast_ids)))
        s = s.filter(s.broadcast_id.isin(list(f.broadcast_ids)))
    unsent = r.message_id.isnull()
    people = r.group_by("broadcast_id").aggregate(
        recipients=r.count(), skipped=r.count(where=r.state == "skipped"),
        sent=r.count(where=~unsent), failed_unsent=r.count(where=unsent & (r.state == "failed")))
    # The same definitions as recipients(): failed is final, a read implies delivered.
    ok = s.failed_at.isnull()
    read = s.read_at.notnull() | s.played_at.notnull()
    messages = s.group_by("broadcast_id").aggregate(
        delivered=s.count(where=ok & (s.delivered_at.notnull() | read)),
        read=s.count(where=ok & read), failed=s.count(where=~ok),
        first_sent_at=s.sent_at.min())
    j = (b.join(people, b.broadcast_id == people.broadcast_id)
         .left_join(messages, b.broadcast_id == messages.broadcast_id))
    return j.select(
        b.broadcast_id, b.account_id, b.category, people.recipients, people.skipped,
        people.sent, delivered=messages.delivered.fill_null(0), read=messages.read.fill_null(0),
        failed=messages.failed.fill_null(0) + people.failed_unsent,
        first_sent_at=messages.first_sent_at)


def funnel(t: Tables, f: Filters, by: Sequence[str], tz: str = "UTC") -> ir.Table:
    """The whole funnel: the open-rate table plus control (hold-out recipients), replied,
    opted_out, reply_rate, opt_out_rate."""
    keys = key_columns(by)
    rel = grouped_recipients(t, f, by, tz, responses=True)
    agg = _rates(aggregate(rel, keys, _counts(rel, True)), True)
    return attach_broadcasts(t, f, agg, keys)


def failures(t: Tables, f: Filters, by: Sequence[str], tz: str = "UTC") -> ir.Table:
    """Failed messages by error code: keys, error_code, error_title (the latest the
    platform gave for that code), failed, share_of_failed, share_of_sent."""
    keys = key_columns(by)
    rel = grouped_recipients(t, f, by, tz)
    failed = rel.filter(rel.failed)
    per_code = aggregate(failed, [*keys, "error_code"], dict(failed=failed.count()))
    totals = aggregate(rel, keys, dict(sent_total=rel.count(where=rel.sent),
                                       failed_total=rel.count(where=rel.failed))).view()
    if keys:
        j = per_code.join(totals, [per_code[k] == totals[k] for k in keys])
        table = j.select(per_code, totals.sent_total, totals.failed_total)
    else:
        table = per_code.cross_join(totals)
    e = t.message_events
    titles = (e.filter(e.status == "failed", e.error_code.notnull())
              .group_by("error_code").aggregate(error_title=e.error_title.argmax(e["at"])))
    j = table.left_join(titles, table.error_code == titles.error_code)
    table = j.select(*[table[k] for k in keys], table.error_code, titles.error_title,
                     table.failed,
                     share_of_failed=ratio(table.failed, table.failed_total),
                     share_of_sent=ratio(table.failed, table.sent_total))
    return attach_broadcasts(t, f, table, keys,
                             order=[*keys, ibis.desc("failed"), "error_code"])
