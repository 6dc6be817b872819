"""Audience figures for reports: consent changes by source, consent coverage per account,
and label growth.

Marketing consent only (the purpose broadcasts need). A contact's consent at a time is
its latest event up to then (``event_id`` breaks ties), as in the ``current_consent``
view; coverage and label sizes are taken at the end of the time filter (default now).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from .tables import Filters, Tables, ratio


def _consent_events(t: Tables, f: Filters) -> ir.Table:
    c = t.consent_events
    preds = [c.purpose == "marketing"]
    if f.account_id is not None:
        preds.append(c.account_id == f.account_id)
    events = c.filter(*preds)
    if f.label_ids:
        events = events.filter(f.has_label(t, events.contact_id))
    return events


def consent_changes(t: Tables, f: Filters) -> ir.Table:
    """Marketing opt-ins and opt-outs recorded in [start, end) by account, source and
    action: events, contacts (distinct)."""
    events = _consent_events(t, f)
    time = f.time(events.recorded_at)
    if time:
        events = events.filter(*time)
    return (events.group_by(["account_id", "source", "action"])
            .aggregate(events=events.count(), contacts=events.contact_id.nunique())
            .order_by(["account_id", "action", ibis.desc("events"), "source"]))


def _current(t: Tables, f: Filters) -> ir.Table:
    """contact_id, action: each contact's latest marketing consent event before ``end``."""
    events = _consent_events(t, f)
    if f.end is not None:
        events = events.filter(events.recorded_at < f.end)
    rank = ibis.row_number().over(group_by=events.contact_id,
                                  order_by=[ibis.desc(events.recorded_at), ibis.desc(events.event_id)])
    latest = events.mutate(rank=rank)
    return latest.filter(latest["rank"] == 0).select("contact_id", "action")


def _contacts(t: Tables, f: Filters) -> ir.Table:
    c = t.contacts
    preds = []
    if f.account_id is not None:
        preds.append(c.account_id == f.account_id)
    people = c.filter(*preds) if preds else c
    if f.label_ids:
        people = people.filter(f.has_label(t, people.contact_id))
    return people.select("contact_id", "account_id")


def consent_coverage(t: Tables, f: Filters) -> ir.Table:
    """Per account: contacts (those stored now), and their marketing consent at ``end``:
    opted_in, opted_out, never_asked, coverage (opted_in / contacts)."""
    people = _contacts(t, f)
    state = _current(t, f)
    joined = people.left_join(state, people.contact_id == state.contact_id)
    counts = joined.group_by("account_id").aggregate(
        contacts=joined.count(),
        opted_in=(joined.action == "opt_in").sum().fill_null(0),
        opted_out=(joined.action == "opt_out").sum().fill_null(0),
        never_asked=joined.action.isnull().sum().fill_null(0))
    return counts.mutate(coverage=ratio(counts.opted_in, counts.contacts)).order_by("account_id")


def label_growth(t: Tables, f: Filters) -> ir.Table:
    """Per label: contacts carrying it at ``end``, added (assigned in [start, end)),
    growth (added / contacts before the period), opted_in (current marketing opt-ins
    among them) and consent_share. Removed assignments leave no trace, so growth is net
    of removals only as far as they happened before ``end``."""
    labels = t.labels
    if f.account_id is not None:
        labels = labels.filter(labels.account_id == f.account_id)
    if f.label_ids:
        labels = labels.filter(labels.label_id.isin(list(f.label_ids)))
    cl = t.contact_labels
    if f.end is not None:
        cl = cl.filter(cl.assigned_at < f.end)
    state = _current(t, Filters(account_id=f.account_id, end=f.end))
    members = cl.left_join(state, cl.contact_id == state.contact_id)
    added = members.assigned_at >= f.start if f.start is not None else ibis.literal(False)
    per_label = members.group_by("label_id").aggregate(
        contacts=members.count(), added=added.sum().fill_null(0),
        opted_in=(members.action == "opt_in").sum().fill_null(0))
    out = labels.left_join(per_label, labels.label_id == per_label.label_id)
    out = out.select(label=out["name"], label_id=out.label_id, account_id=out.account_id,
                     contacts=out.contacts.fill_null(0), added=out.added.fill_null(0),
                     opted_in=out.opted_in.fill_null(0))
    return out.mutate(growth=ratio(out.added, out.contacts - out.added),
                      consent_share=ratio(out.opted_in, out.contacts)).order_by(
        [ibis.desc("contacts"), "label"])
