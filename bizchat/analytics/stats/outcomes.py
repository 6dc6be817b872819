"""One row per broadcast recipient and what became of the message: the base of the metrics.

Definitions (DESIGN.md): a recipient is *sent* when the platform accepted their message
(it has a ``message_id``); *delivered* when message_status has a delivered, read or played
time and the message did not fail (a read implies delivered; failed is final, also after
a delivery receipt); *read* when it has a read or played time and did not fail; *failed*
when the platform reported the message failed, or the send failed before the platform
accepted a message. Open rate = read / delivered is a lower bound: users can switch read
receipts off.

Reference time: a sent message's own ``sent_at``; otherwise (control group, skipped, no
receipt yet) the broadcast's reference time, ``scheduled_for`` or else its first send.
Replies (any inbound message in the same account from that contact) and marketing
opt-outs are counted in windows after that reference time.

The time-range filter keeps whole broadcasts whose reference time lies in the range, so a
campaign is never cut in two; labels are the contacts' current assignments.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import ibis
import ibis.expr.types as ir

from ...errors import InvalidValue
from .tables import Filters, Tables

REPLY_WINDOW = timedelta(hours=72)
OPT_OUT_WINDOW = timedelta(days=7)
NO_LABEL = "(no label)"
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# by= names and the columns they group on.
GROUPINGS = {
    "broadcast": ("broadcast_id",),
    "variant": ("broadcast_id", "variant"),
    "account": ("account_id",),
    "category": ("category",),
    "template": ("template",),
    "label": ("account_id", "label_id", "label"),
    "day": ("day",),
    "week": ("week",),
    "month": ("month",),
    "hour": ("hour",),
    "weekday": ("weekday",),
}
TIME_KEYS = frozenset(("day", "week", "month", "hour", "weekday"))


def parse_by(by: str | Sequence[str] | None) -> tuple[str, ...]:
    """``by`` as a tuple of grouping names (a str may list several: "weekday,hour")."""
    if by is None:
        return ()
    names = [p.strip() for p in by.split(",")] if isinstance(by, str) else list(by)
    unknown = [n for n in names if n not in GROUPINGS]
    if unknown:
        raise InvalidValue(f"Cannot group by {', '.join(map(repr, unknown))}; choose from "
                           f"{', '.join(GROUPINGS)}.", input=by)
    return tuple(dict.fromkeys(names))


def key_columns(by: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(c for name in by for c in GROUPINGS[name]))


def broadcast_scope(t: Tables, f: Filters, *, with_ref: bool = False) -> ir.Table:
    """The broadcasts the filters keep: id, account, category, template, name and, when
    asked for or needed by a time filter, the reference time ``ref_at``."""
    b = t.broadcasts
    preds = []
    if f.account_id is not None:
        preds.append(b.account_id == f.account_id)
    if f.category is not None:
        preds.append(b.category == f.category)
    if f.broadcast_ids:
        preds.append(b.broadcast_id.isin(list(f.broadcast_ids)))
    if preds:
        b = b.filter(*preds)
    cols = dict(broadcast_id=b.broadcast_id, account_id=b.account_id, name=b.name,
                category=b.category, template=b.template)
    if not (with_ref or f.start or f.end):
        return b.select(**cols)
    m = t.messages
    first = (m.filter(m.broadcast_id.notnull(), m.direction == "out")
             .group_by("broadcast_id").aggregate(first_send_at=m.created_at.min()))
    j = b.left_join(first, b.broadcast_id == first.broadcast_id)
    scoped = j.select(**cols, ref_at=ibis.coalesce(b.scheduled_for, first.first_send_at),
                      first_send_at=first.first_send_at)
    time = f.time(scoped.ref_at)
    return scoped.filter(*time) if time else scoped


def recipients(t: Tables, f: Filters, *, with_ref: bool = False,
               template: bool = False) -> ir.Table:
    """Per broadcast recipient: flags sent/delivered/read/failed/control and the times.

    Columns: broadcast_id, account_id, category, contact_id, variant ('control' for the
    hold-out group), state, skip_reason, control, sent, delivered, read, failed,
    error_code, sent_at, delivered_at, read_at; with ``with_ref`` also ref_at (the
    broadcast's), send_at (this recipient's reference time: the sent receipt, else the
    platform's acceptance, else the broadcast's) and start_at (the broadcast's first
    send, else ref_at); with ``template`` the template name of the message (else the
    broadcast's).
    """
    r = t.broadcast_recipients
    if f.broadcast_ids:  # filter before the join, so only these recipients are joined
        r = r.filter(r.broadcast_id.isin(list(f.broadcast_ids)))
    if f.label_ids:
        r = r.filter(f.has_label(t, r.contact_id))
    b = broadcast_scope(t, f, with_ref=with_ref)
    s = t.message_status
    j = r.join(b, r.broadcast_id == b.broadcast_id).left_join(s, r.message_id == s.message_id)
    sent = r.message_id.notnull()
    # message_status.status is 'failed' exactly when failed_at is set; the time column is
    # cheaper to test than the string.
    not_failed = sent & s.failed_at.isnull()
    read_at = ibis.least(s.read_at, s.played_at)
    delivered_at = ibis.coalesce(s.delivered_at, read_at)
    # Failed: the platform reported the message failed, or the send failed before the
    # platform accepted one (no message id).
    failed = (s.failed_at.notnull() | ((r.state == "failed") & ~sent)).fill_null(False)
    control = ((r.variant == "control") | (r.skip_reason == "control")).fill_null(False)
    cols = dict(
        broadcast_id=r.broadcast_id, account_id=b.account_id, category=b.category,
        contact_id=r.contact_id, message_id=r.message_id,
        variant=ibis.ifelse(control, "control", r.variant),
        state=r.state, skip_reason=r.skip_reason, control=control, sent=sent,
        delivered=not_failed & delivered_at.notnull(),
        read=not_failed & read_at.notnull(),
        failed=failed,
        error_code=ibis.ifelse(failed, ibis.coalesce(s.error_code, r.error_code), ibis.null("int32")),
        sent_at=s.sent_at,
        delivered_at=ibis.ifelse(not_failed, delivered_at, ibis.null("timestamp('UTC')")),
        read_at=ibis.ifelse(not_failed, read_at, ibis.null("timestamp('UTC')")),
        template=b.template,
    )
    if with_ref:
        # A sent message's time is its sent receipt, else when the platform accepted it;
        # start_at is one moment for the whole broadcast (first send, else scheduled).
        cols.update(ref_at=b.ref_at, send_at=ibis.coalesce(s.sent_at, r.sent_at, b.ref_at),
                    start_at=ibis.coalesce(b.first_send_at, b.ref_at))
    rel = j.select(**cols)
    if template:
        m = t.messages.filter(t.messages.direction == "out")
        m = m.select("message_id", "template_name").view()
        keep = [rel[c] for c in rel.columns if c != "template"]
        rel = rel.left_join(m, rel.message_id == m.message_id).select(
            *keep, template=ibis.coalesce(m.template_name, rel.template))
    return rel


def first_after(rel: ir.Table, events: dict[str, tuple[ir.Table, str, timedelta]]) -> ir.Table:
    """Add one column per entry of ``events`` (name -> (table with account_id, contact_id,
    its time column, window)): the first such event for the same account and contact after
    the recipient's ``send_at`` and at most ``window`` later.

    Why one left range join of ``rel`` itself with the union of the events, grouped back
    to one row per recipient (broadcast_id, contact_id: a frozen audience holds each
    contact once): ``rel`` joins every recipient with its message status on the text
    message id, the expensive part of the funnel, and each further use of ``rel`` repeats
    that join (the SQL inlines it). Joining a copy of ``rel`` with the events and then
    joining the result back to ``rel`` made the funnel about twice as slow; one join per
    kind of event, each nesting the previous one, 3-4x.
    """
    parts = [table.select("account_id", "contact_id", _at=table[at],
                          _kind=ibis.literal(name))
             for name, (table, at, _) in events.items()]
    ev = (ibis.union(*parts) if len(parts) > 1 else parts[0]).view()
    widest = max(window for _, _, window in events.values())
    # view(): rel may end in a join chain; a fresh relation keeps the predicates' lineage.
    base = rel.view()
    j = base.left_join(ev, [base.account_id == ev.account_id, base.contact_id == ev.contact_id,
                            ev._at > base.send_at, ev._at <= base.send_at + widest])
    keys = ["broadcast_id", "contact_id"]
    firsts = {name: ev._at.min(where=(ev._kind == name) & (ev._at <= base.send_at + window))
              for name, (_, _, window) in events.items()}
    grouped = j.group_by([base[k] for k in keys]).aggregate(
        **{c: base[c].arbitrary() for c in base.columns if c not in keys}, **firsts)
    return grouped.select(*base.columns, *events)


def with_responses(t: Tables, rel: ir.Table, *, reply_window: timedelta = REPLY_WINDOW,
                   opt_out_window: timedelta = OPT_OUT_WINDOW) -> ir.Table:
    """Add first_reply_at (inbound message within ``reply_window``) and first_opt_out_at
    (marketing opt-out within ``opt_out_window``) after each recipient's send_at."""
    m = t.messages
    inbound = m.filter(m.direction == "in", m.contact_id.notnull())
    c = t.consent_events
    opt_outs = c.filter(c.purpose == "marketing", c.action == "opt_out")
    return first_after(rel, {"first_reply_at": (inbound, "created_at", reply_window),
                             "first_opt_out_at": (opt_outs, "recorded_at", opt_out_window)})


def with_labels(t: Tables, rel: ir.Table, f: Filters) -> ir.Table:
    """One row per recipient and current label of the contact (label ``(no label)`` when it
    has none); with a label filter only the chosen labels."""
    cl, lb = t.contact_labels, t.labels
    labs = cl.join(lb, cl.label_id == lb.label_id).select(
        cl.contact_id, lb.label_id, label=lb.name, label_account=lb.account_id)
    if f.label_ids:
        labs = labs.filter(labs.label_id.isin(list(f.label_ids)))
    labs = labs.view()  # shares lineage with the label filter inside rel
    j = rel.left_join(labs, [rel.contact_id == labs.contact_id,
                             rel.account_id == labs.label_account])
    return j.select(rel, label_id=labs.label_id, label=labs.label.fill_null(NO_LABEL))


def with_time_keys(t: Tables, rel: ir.Table, by: Sequence[str], tz: str, column: str = "send_at") -> ir.Table:
    """Add the local-time buckets ``by`` asks for: day, week (starting Monday), month
    (dates), hour (0-23), weekday (0 = Monday), in time zone ``tz``."""
    wanted = [k for k in by if k in TIME_KEYS]
    if not wanted:
        return rel
    local = t.local_time(rel[column], tz)
    exprs = {"day": local.date(), "week": local.truncate("W").date(),
             "month": local.truncate("M").date(), "hour": local.hour().cast("int32"),
             "weekday": local.day_of_week.index().cast("int32")}
    return rel.mutate(**{k: exprs[k] for k in wanted})


def grouped_recipients(t: Tables, f: Filters, by: Sequence[str], tz: str, *,
                       responses: bool = False, with_ref: bool = False) -> ir.Table:
    """The recipients with everything ``by`` needs to group on. Grouped by a time of
    sending (day, hour ...), only recipients whose send was attempted count (sent, or
    failed): one who was skipped has no send time to fall into."""
    timed = any(k in TIME_KEYS for k in by)
    need_ref = with_ref or responses or timed
    rel = recipients(t, f, with_ref=need_ref, template="template" in by)
    if timed:
        rel = rel.filter(rel.sent | rel.failed)
    if responses:
        rel = with_responses(t, rel)
    if "label" in by:
        rel = with_labels(t, rel, f)
    return with_time_keys(t, rel, by, tz)


def aggregate(rel: ir.Table, keys: Sequence[str], metrics: dict) -> ir.Table:
    if keys:
        return rel.group_by(list(keys)).aggregate(**metrics).order_by(list(keys))
    return rel.aggregate(**metrics)


def attach_broadcasts(t: Tables, f: Filters, agg: ir.Table, keys: Sequence[str],
                      order: Sequence | None = None) -> ir.Table:
    """Name the broadcasts of a per-broadcast table (name, account, category, template,
    scheduled_for), keeping its rows; sorted by ``order`` (default: the keys)."""
    order = list(order) if order is not None else list(keys)
    if "broadcast_id" not in keys:
        return agg.order_by(order) if order else agg
    b = t.broadcasts
    info = b.select("broadcast_id", "name", "account_id", "category", "template",
                    "scheduled_for").view()
    extra = [c for c in ("name", "account_id", "category", "template", "scheduled_for")
             if c not in agg.columns]
    j = agg.left_join(info, agg.broadcast_id == info.broadcast_id)
    front = [agg[k] for k in keys]
    rest = [agg[c] for c in agg.columns if c not in keys]
    return j.select(*front, *[info[c] for c in extra], *rest).order_by(order)


def add_weekday_names(df):
    if "weekday" in df.columns:
        position = list(df.columns).index("weekday") + 1
        names = df["weekday"].map(lambda d: WEEKDAY_NAMES[int(d)] if d == d else None)
        df.insert(position, "weekday_name", names)
    return df
