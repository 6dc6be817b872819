"""Writes the report notebooks (bizchat/reports/notebooks): their cells live here as text,
so a change is one edit and the notebooks stay stripped. Run `python -m tools.report_notebooks`."""
from pathlib import Path

import nbformat as nbf

D = Path(__file__).resolve().parents[1] / "bizchat" / "reports" / "notebooks"

def nb(cells):
    n = nbf.v4.new_notebook()
    out = []
    for kind, src in cells:
        if kind == "md":
            out.append(nbf.v4.new_markdown_cell(src.strip()))
        else:
            c = nbf.v4.new_code_cell(src.strip())
            if kind == "params":
                c.metadata["tags"] = ["parameters"]
            out.append(c)
    n.cells = out
    n.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                  "language_info": {"name": "python"}}
    for i, c in enumerate(n.cells):
        c.id = f"cell-{i:02d}"
    return n

COMMON = '''workspace: str = ""  # the workspace file (bizchat fills it in; empty: $BIZCHAT_WORKSPACE)
account: str = ""  # one account (number or id); empty: every account
start: str = ""  # first day of the period, YYYY-MM-DD in timezone; empty: see end
end: str = ""  # the day after the period, YYYY-MM-DD in timezone; empty: up to now
labels: str = ""  # comma-separated label names; empty: every contact
timezone: str = ""  # IANA time zone of the days; empty: the account's'''

SETUP = '''import pandas as pd
from IPython.display import Markdown, display

import bizchat
from bizchat.analytics import charts
from bizchat.campaigns import clock
from bizchat.reports.period import report_period

ws = bizchat.open(workspace or None, read_only=True)
acct = account or None
label_list = [s.strip() for s in labels.split(",") if s.strip()] or None
zone = timezone or ws.stats.zone(acct)
period = report_period(start, end, zone, days=DAYS{month}, now=clock.now())
where = dict(account=acct, labels=label_list)
display(Markdown(f"**Period:** {{period.label}} ({{period.timezone}})"
                 + (f", account {{account}}" if account else "")
                 + (f", labels {{labels}}" if labels else "")))'''

PCT = '''def pct(x):
    """Rates as percentages with one decimal; a dash where there is no denominator."""
    return "-" if pd.isna(x) else f"{x:.1%}"'''

weekly = nb([
 ("md", """# Weekly campaign report

The period's broadcasts: how many messages were sent, delivered and read, who replied or
opted out, compared with the previous period of the same length. Every number comes
from `ws.stats`. **The open rate is a lower bound**: people can switch read receipts
off, so some reads are never reported."""),
 ("params", COMMON),
 ("code", SETUP.replace("DAYS", "7").format(month="")),
 ("code", PCT),
 ("md", """## This period against the previous one

*Sent*: messages the platform accepted; *delivery rate* = delivered / sent; *open rate* =
read / delivered (a lower bound); *reply rate* = recipients who wrote back within 72 h /
delivered; *opt-out rate* = marketing opt-outs within 7 days / delivered."""),
 ("code", '''now = ws.stats.funnel(None, start=period.start, end=period.end, **where)
before = ws.stats.funnel(None, start=period.previous_start, end=period.start, **where)
cols = ["sent", "delivered", "read", "replied", "opted_out", "failed"]
rates = ["delivery_rate", "open_rate", "reply_rate", "opt_out_rate"]
compare = pd.DataFrame({
    "this period": [int(now[c].sum()) for c in cols] + [pct(now[r].iloc[0]) if len(now) else "-" for r in rates],
    "previous period": [int(before[c].sum()) for c in cols] + [pct(before[r].iloc[0]) if len(before) else "-" for r in rates],
}, index=cols + rates)
compare'''),
 ("md", "## Broadcasts in the period\n\nOne row per broadcast whose scheduled (or first send) time lies in the period."),
 ("code", '''per = ws.stats.funnel("broadcast", start=period.start, end=period.end, **where)
shown = per[["broadcast_id", "name", "sent", "delivered", "read", "replied", "opted_out", "failed"]].copy()
for r in rates:
    shown[r] = per[r].map(pct)
if per.empty:
    display(Markdown("No broadcast in this period."))
else:
    display(shown.set_index("broadcast_id"))
    charts.rates_chart(per).show()'''),
 ("md", """## A/B tests and lift over the control group

For broadcasts with variants, the verdict of the comparison on the open rate; for
broadcasts with a hold-out control group, the lift in replies and opt-outs over it.
A verdict is final only once the data reaches past the test's window."""),
 ("code", '''found = False
arms = ws.stats.open_rates(["broadcast", "variant"], start=period.start, end=period.end, **where)
for bid, arm in arms.groupby("broadcast_id"):
    variants = [v for v in arm["variant"].dropna() if v != "control"]
    if len(variants) > 1:
        found = True
        test = ws.stats.ab_test(int(bid))
        display(Markdown(f"**Broadcast {bid}, A/B:** {test.verdict}"))
    if (arm["variant"] == "control").any():
        found = True
        lift = ws.stats.control_lift(int(bid))
        display(Markdown(f"**Broadcast {bid}, lift over control:** {lift.verdict}"))
if not found:
    display(Markdown("No broadcast in this period had variants or a control group."))'''),
 ("md", "## Time to read\n\nMinutes from the send to the read receipt, for the messages read."),
 ("code", '''ttr = ws.stats.time_to_read(None, start=period.start, end=period.end, **where)
display(ttr)
dist = ws.stats.read_distribution(None, start=period.start, end=period.end, **where)
if int(dist["read"].sum()):
    charts.time_to_read_chart(dist).show()'''),
 ("md", "## Best send time\n\nOver the whole history of the account: the weekday and hour whose open rate is best at the low end of its confidence interval."),
 ("code", '''advice = ws.stats.best_send_time(zone, min_delivered=30, **where)
display(Markdown(advice.verdict))'''),
 ("md", "## Failures by error code\n\nMessages the platform reported as failed, by its error code."),
 ("code", '''fails = ws.stats.failures(None, start=period.start, end=period.end, **where)
if fails.empty:
    display(Markdown("No failed message in this period."))
else:
    display(fails)
    charts.failures_chart(fails).show()'''),
])

monthly = nb([
 ("md", """# Monthly label report

Per label: how many contacts carry it, how many were added in the month (growth), how
many of them may receive marketing, and how the broadcasts reached them. Every number
comes from `ws.stats`. **The open rate is a lower bound**: people can switch read
receipts off."""),
 ("params", COMMON + '\nmonth: str = ""  # a calendar month YYYY-MM (sets start and end); empty: start/end'),
 ("code", SETUP.replace("DAYS", "30").format(month=", month=month")),
 ("code", PCT),
 ("md", """## Contacts and growth per label

*Contacts*: carrying the label at the end of the period; *added*: labelled during the
period; *growth*: added / contacts before the period; *consent share*: contacts whose
current marketing consent is an opt-in."""),
 ("code", '''growth = ws.stats.label_growth(start=period.start, end=period.end, **where)
shown = growth[["label", "contacts", "added", "opted_in"]].copy()
shown["growth"] = growth["growth"].map(pct)
shown["consent_share"] = growth["consent_share"].map(pct)
display(shown.set_index("label") if not growth.empty else Markdown("No labels."))'''),
 ("md", "## Reach and rates per label\n\nBroadcast messages in the period to contacts carrying each label (a contact with two labels counts under both)."),
 ("code", '''reach = ws.stats.funnel("label", start=period.start, end=period.end, **where)
if reach.empty:
    display(Markdown("No broadcast reached a labelled contact in this period."))
else:
    table = reach[["label", "recipients", "sent", "delivered", "read", "replied", "opted_out"]].copy()
    for r in ["delivery_rate", "open_rate", "reply_rate", "opt_out_rate"]:
        table[r] = reach[r].map(pct)
    display(table.set_index("label"))
    charts.rates_chart(reach).show()'''),
])

consent = nb([
 ("md", """# Consent report

Marketing consent: opt-ins and opt-outs recorded in the period by source, and the
coverage per account (how many contacts may receive marketing messages). Every number
comes from `ws.stats`; no contact is named. A papermill report:
`bizchat report run consent_report [-p account +4930...]`."""),
 ("params", COMMON + '\noutput_stem: str = ""  # write <output_stem>.csv beside the executed notebook (bizchat fills it in)'),
 ("code", SETUP.replace("DAYS", "30").format(month="").replace("import pandas as pd\n", "")
  .replace("from bizchat.analytics import charts\n", "")),
 ("md", "## Opt-ins and opt-outs in the period by source"),
 ("code", '''changes = ws.stats.consent_changes(start=period.start, end=period.end, **where)
display(changes if not changes.empty else Markdown("No consent change in this period."))'''),
 ("md", """## Coverage per account

At the end of the period: *opted in* may receive marketing, *opted out* withdrew,
*never asked* have no consent event; *coverage* = opted in / contacts."""),
 ("code", '''coverage = ws.stats.consent_coverage(end=period.end, **where)
coverage'''),
 ("code", '''from bizchat.privacy.safe_export import safe_csv

if output_stem:
    safe_csv(coverage, output_stem + ".csv")
    safe_csv(changes, output_stem + "-by-source.csv")'''),
])

nbf.write(weekly, D / "weekly_campaign_report.ipynb")
nbf.write(monthly, D / "monthly_label_report.ipynb")
nbf.write(consent, D / "consent_report.ipynb")
