"""Opt-in cohorts: do contacts keep reading in the months after they opted in?

A contact's cohort is the month (in the chosen time zone) of their first marketing
opt-in. For each cohort and each month after it (0 = the opt-in month) the table counts
the broadcast messages delivered to and read by the cohort, so fading interest shows as
a falling open rate along a row. The time filter selects cohorts (opt-in time), the
other filters select contacts and broadcasts as everywhere.
"""

from __future__ import annotations

from dataclasses import replace

import ibis.expr.types as ir

from .outcomes import recipients
from .tables import Filters, Tables, ratio


def opt_in_cohorts(t: Tables, f: Filters, tz: str) -> ir.Table:
    """contact_id, account_id, opted_in_at (first marketing opt-in) and cohort (month)."""
    c = t.consent_events
    preds = [c.purpose == "marketing", c.action == "opt_in"]
    if f.account_id is not None:
        preds.append(c.account_id == f.account_id)
    ins = c.filter(*preds)
    if f.label_ids:
        ins = ins.filter(f.has_label(t, ins.contact_id))
    first = ins.group_by(["contact_id", "account_id"]).aggregate(opted_in_at=ins.recorded_at.min())
    time = f.time(first.opted_in_at)
    if time:
        first = first.filter(*time)
    return first.mutate(cohort=t.local_time(first.opted_in_at, tz).truncate("M").date())


def cohorts(t: Tables, f: Filters, tz: str = "UTC", months: int = 12) -> ir.Table:
    """Per cohort and months_since (0..``months``): cohort_contacts, contacts_delivered
    (contacts with at least one delivered message that month), delivered, read,
    open_rate (a lower bound)."""
    people = opt_in_cohorts(t, f, tz).view()
    sizes = people.group_by("cohort").aggregate(cohort_contacts=people.count()).view()
    rel = recipients(t, replace(f, start=None, end=None), with_ref=True)
    rel = rel.filter(rel.sent)
    j = rel.join(people, [rel.contact_id == people.contact_id, rel.account_id == people.account_id])
    sent_month = t.local_time(rel.send_at, tz)
    months_since = ((sent_month.year() * 12 + sent_month.month())
                    - (people.cohort.year() * 12 + people.cohort.month()))
    rel = j.select(people.cohort, months_since=months_since.cast("int32"), contact_id=rel.contact_id,
                   delivered=rel.delivered, read=rel.read)
    rel = rel.filter(rel.months_since >= 0, rel.months_since <= months)
    agg = rel.group_by(["cohort", "months_since"]).aggregate(
        contacts_delivered=rel.contact_id.nunique(where=rel.delivered),
        delivered=rel.count(where=rel.delivered), read=rel.count(where=rel.read))
    j = agg.join(sizes, agg.cohort == sizes.cohort)
    out = j.select(agg.cohort, agg.months_since, sizes.cohort_contacts, agg.contacts_delivered,
                   agg.delivered, agg.read, open_rate=ratio(agg.read, agg.delivered))
    return out.order_by(["cohort", "months_since"])
