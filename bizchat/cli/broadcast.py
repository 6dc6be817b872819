"""`bizchat broadcast ...`: compose, plan, freeze, send and follow broadcasts.

Life of a broadcast from the command line:

    bizchat broadcast create --account +4930123 --name "Sommer" --body "Hallo {first_name} ..."
    bizchat broadcast plan 7            # audience, expected outcomes, cost
    bizchat broadcast preview 7 --contact 0170 1234567
    bizchat broadcast schedule 7 --at 2026-12-08T10:00   # the account's time zone
    bizchat broadcast send 7            # a draft is scheduled for now and frozen, then sent
    bizchat broadcast run-due           # from cron: everything whose time has come
    bizchat broadcast show 7

``create`` registers the template from --body (named after the broadcast) and prints only
the new id, for scripts. A broadcast is frozen at its send time; one scheduled for later
goes out through ``run-due`` (cron, every minute) and can be rescheduled or paused until
then. Quiet hours and the frequency cap are decided when each message is handed over.
``--now`` (or ``$BIZCHAT_NOW``) sets the campaign clock, for rehearsals with the
simulated transport.
"""

from __future__ import annotations

import json

import click
import pandas as pd

from ._common import (
    current_workspace,
    echo_frame,
    local_time,
    pass_workspace,
    workspace_mode,
    workspace_option,
)


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [x.strip() for x in value.split(",") if x.strip()]


def _pairs(values: tuple[str, ...], option: str) -> dict:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: write NAME=VALUE.", param_hint=option)
        out[key.strip()] = value
    return out


def _buttons(values: tuple[str, ...]) -> list[dict] | None:
    out = []
    for item in values:
        text, sep, url = item.partition("=")
        out.append({"type": "url", "text": text.strip(), "url": url.strip()} if sep
                   else {"type": "quick_reply", "text": item.strip()})
    return out or None


def _sample(value: str | None):
    if value is None:
        return None
    try:
        return float(value) if "." in value else int(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is a count (500) or a fraction (0.1).",
                                 param_hint="--sample") from exc


def _counts(result: dict) -> str:
    variants = ", ".join(f"{k} {v}" for k, v in result.get("by_variant", {}).items())
    skipped = ", ".join(f"{k} {v}" for k, v in result.get("skipped", {}).items())
    return (f"{result['queued']} queued" + (f" ({variants})" if variants else "")
            + (f"; skipped: {skipped}" if skipped else ""))


@click.group(name="broadcast")
def broadcast_group() -> None:
    """Broadcasts to opted-in customers: create, plan, preview, schedule, send, follow."""


@broadcast_group.command(name="create")
@click.option("--account", "-a", required=True, metavar="PHONE",
              help="The business account (its number, account_id or phone_number_id).")
@click.option("--name", required=True, help="The broadcast's name; the template is named after it.")
@click.option("--category", type=click.Choice(["marketing", "utility"]), default="marketing",
              show_default=True, help="Marketing needs an opt-in; utility respects opt-outs.")
@click.option("--body", required=True, metavar="TEXT",
              help="The message with named placeholders, e.g. 'Hallo {first_name}!'.")
@click.option("--language", default="de", show_default=True, help="Template language.")
@click.option("--header", default=None, metavar="TEXT", help="Optional header line.")
@click.option("--footer", default=None, metavar="TEXT", help="Optional footer line.")
@click.option("--button", "buttons", multiple=True, metavar="TEXT[=URL]",
              help="A quick-reply button, or a URL button with TEXT=https://... Repeatable.")
@click.option("--labels-any", metavar="A,B", help="Contacts with any of these labels.")
@click.option("--labels-all", metavar="A,B", help="Contacts with all of these labels.")
@click.option("--labels-none", metavar="A,B", help="Contacts with none of these labels.")
@click.option("--audience-language", metavar="de,en", help="Contacts with these languages.")
@click.option("--attribute", "attributes", multiple=True, metavar="NAME=VALUE",
              help="Contacts whose attribute NAME is VALUE. Repeatable.")
@click.option("--active-within", type=float, metavar="DAYS",
              help="Contacts who wrote within DAYS days.")
@click.option("--inactive-for", type=float, metavar="DAYS",
              help="Contacts silent for at least DAYS days (or who never wrote).")
@click.option("--received", "received", multiple=True, type=int, metavar="ID",
              help="Contacts who received broadcast ID (delivered). Repeatable.")
@click.option("--read", "read", multiple=True, type=int, metavar="ID",
              help="Contacts who read broadcast ID. Repeatable.")
@click.option("--not-read", "not_read", multiple=True, type=int, metavar="ID",
              help="Contacts who were sent broadcast ID and did not read it. Repeatable.")
@click.option("--sample", metavar="N|FRACTION", help="A random sample of the eligible contacts.")
@click.option("--variant-body", "variant_bodies", multiple=True, metavar="TEXT",
              help="The body of variant B (again for C, ...): an A/B test.")
@click.option("--control", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              show_default=True, help="Hold-out fraction that receives nothing.")
@click.option("--seed", type=click.IntRange(0), default=None,
              help="Seed of the sample and the variant split (default: random, stored).")
@click.option("--fallback", "fallbacks", multiple=True, metavar="NAME=TEXT",
              help="Text for a placeholder a contact has no value for (else they are skipped).")
@click.option("--value", "values", multiple=True, metavar="NAME=TEXT",
              help="A fixed placeholder value for everyone, e.g. angebot='20 %'.")
@click.option("--outside-hours", type=click.Choice(["defer", "skip"]), default="defer",
              show_default=True,
              help="A recipient inside their quiet hours: defer to the end of them, or skip.")
@click.option("--expires", default=None, metavar="ISO",
              help="Deferred recipients not sent by then are skipped (account's time zone "
                   "unless the time has one).")
@pass_workspace
def create(ws, account, name, category, body, language, header, footer, buttons, labels_any,
           labels_all, labels_none, audience_language, attributes, active_within, inactive_for,
           received, read, not_read, sample, variant_bodies, control, seed, fallbacks,
           values, outside_hours, expires) -> None:
    """Create a draft broadcast and print its id."""
    audience = {"labels_any": _names(labels_any), "labels_all": _names(labels_all),
                "labels_none": _names(labels_none), "language": _names(audience_language),
                "attributes": _pairs(attributes, "--attribute") or None,
                "active_within_days": active_within, "inactive_for_days": inactive_for,
                "received": list(received) or None, "read": list(read) or None,
                "not_read": list(not_read) or None, "sample": _sample(sample)}
    found = ws.broadcasts.create(
        account, name, body=body, category=category, language=language, header=header,
        footer=footer, buttons=_buttons(buttons),
        audience={k: v for k, v in audience.items() if v is not None},
        variants=list(variant_bodies) or None, control=control, seed=seed,
        fallbacks=_pairs(fallbacks, "--fallback") or None,
        values=_pairs(values, "--value") or None, outside_hours=outside_hours,
        expires=expires, actor="cli")
    click.echo(found["broadcast_id"])


@broadcast_group.command(name="list")
@click.option("--account", "-a", default=None, metavar="PHONE", help="Only this account.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@pass_workspace(read_only=True)
def list_(ws, account, as_csv) -> None:
    """List broadcasts, newest first, with their counts so far."""
    frame = ws.broadcasts.list(account)
    if not as_csv and not frame.empty:
        frame = frame.drop(columns=["created_at"])
        frame["scheduled_for"] = frame["scheduled_for"].map(
            lambda t: "" if pd.isna(t) else f"{t:%Y-%m-%d %H:%M}")
    echo_frame(frame, csv=as_csv)


def _funnel_line(f: dict) -> str:
    def pct(x):
        return "n/a" if x is None or pd.isna(x) else f"{100 * x:.1f}%"

    return (f"sent {f['sent']}, delivered {f['delivered']}, read {f['read']}, failed "
            f"{f['failed']}, replied {f['replied']} (delivery {pct(f['delivery_rate'])}, open "
            f"{pct(f['open_rate'])}, reply {pct(f['reply_rate'])})")


def _now_option(func):
    return click.option("--now", default=None, metavar="ISO",
                        help="The campaign clock (default $BIZCHAT_NOW, else the wall clock).")(func)


@broadcast_group.command(name="show")
@click.argument("broadcast_id", type=int)
@_now_option
@pass_workspace(read_only=True)
def show(ws, broadcast_id, now) -> None:
    """Show a broadcast: recipients by state and skip reason, deferrals, the funnel so far."""
    info = ws.broadcasts.show(broadcast_id, now=now)
    b = info["broadcast"]
    zone = info["timezone"]
    click.echo(f"Broadcast {b['broadcast_id']}: {b['name']!r} ({b['category']}, {b['status']})")
    click.echo(f"Scheduled for: {local_time(b['scheduled_for'], zone)}")
    if b.get("finished_at") is not None:
        click.echo(f"Finished: {local_time(b['finished_at'], zone)}")
    click.echo(f"Outside quiet hours: {b['outside_hours']}"
               + (f"; expires {local_time(b['expires_at'], zone)}" if b.get("expires_at") else ""))
    counts = info["counts"]
    if counts["deferred"]:
        click.echo(f"Deferred: {counts['deferred']} (quiet hours or platform limits), due from "
                   f"{local_time(counts['next_due'], zone)} until "
                   f"{local_time(counts['deferred_until'], zone)}")
    variants = b["variants"] or []
    click.echo("Template: " + ", ".join(f"{v['variant']}={v['template']}" for v in variants)
               + (f"; control {b['control_fraction']:g}" if b["control_fraction"] else ""))
    click.echo(f"Audience: {info['audience']}")
    if b.get("frozen_at") is None and b["status"] in ("scheduled", "paused"):
        click.echo("Recipients are frozen at the send time.")
    states = info["states"]
    click.echo("Recipients:")
    if states.empty:
        click.echo("  none frozen yet (schedule or send it)")
    for row in states.itertuples():
        reason = "" if pd.isna(row.skip_reason) else f" ({row.skip_reason})"
        click.echo(f"  {row.state}{reason}: {row.recipients}")
    click.echo("Funnel: " + _funnel_line(info["funnel"]))
    per = info["by_variant"]
    if len(per) > 1:
        for row in per.to_dict("records"):
            click.echo(f"  variant {row['variant']}: " + _funnel_line(row))


@broadcast_group.command(name="plan")
@click.argument("broadcast_id", type=int)
@click.option("--at", default=None, metavar="ISO", help="Planned send time (default: scheduled, else now).")
@click.option("--rate-card", type=click.Path(dir_okay=False), default=None,
              help="A rate card CSV (default: $BIZCHAT_RATE_CARD, else the shipped example).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@pass_workspace(read_only=True)
def plan(ws, broadcast_id, at, rate_card, as_json) -> None:
    """Audience size, expected delivered/read/replies from similar past broadcasts, and cost."""
    result = ws.broadcasts.plan(broadcast_id, at, rate_card=rate_card)
    if as_json:
        click.echo(json.dumps(result.to_dict(), default=str, ensure_ascii=False, indent=2))
        return
    for line in result.lines():
        click.echo(line)
    if len(result.by_country):
        echo_frame(result.by_country.round(4))


@broadcast_group.command(name="preview")
@click.argument("broadcast_id", type=int)
@click.option("--contact", required=True, metavar="PHONE",
              help="The contact (any form of the number, wa_id, user_id or contact_id).")
@click.option("--variant", default=None, help="Which variant to show (default: theirs, else A).")
@pass_workspace(read_only=True)
def preview(ws, broadcast_id, contact, variant) -> None:
    """Print the exact message a contact gets, and whether they would be sent it."""
    shown = ws.broadcasts.preview(broadcast_id, contact, variant=variant)
    status = shown.state + (f" ({shown.skip_reason})" if shown.skip_reason else "")
    click.echo(f"Variant {shown.variant}, template {shown.template}: {status}", err=True)
    click.echo(shown.text)


@broadcast_group.command(name="schedule")
@click.argument("broadcast_id", type=int)
@click.option("--at", default=None, metavar="ISO",
              help="Send time, e.g. 2026-12-08T10:00 (the account's time zone unless it has "
                   "one; default: now).")
@_now_option
@pass_workspace
def schedule(ws, broadcast_id, at, now) -> None:
    """Set a draft's send time; its recipients are frozen then (at once when due now)."""
    result = ws.broadcasts.schedule(broadcast_id, at, now=now, actor="cli")
    state = "frozen" if result["frozen"] else "if frozen now"
    quiet = (f"; {result['quiet_hours']} inside their quiet hours then (deferred)"
             if result.get("quiet_hours") else "")
    click.echo(f"Broadcast {broadcast_id} scheduled for {result['scheduled_local']} "
               f"({state}: {_counts(result)}{quiet}).")


@broadcast_group.command(name="reschedule")
@click.argument("broadcast_id", type=int)
@click.option("--at", required=True, metavar="ISO",
              help="The new send time (the account's time zone unless it has one).")
@pass_workspace
def reschedule(ws, broadcast_id, at) -> None:
    """Move a scheduled broadcast that has not started sending."""
    result = ws.broadcasts.reschedule(broadcast_id, at, actor="cli")
    click.echo(f"Broadcast {broadcast_id} rescheduled to {result['scheduled_local']}.")


@broadcast_group.command(name="pause")
@click.argument("broadcast_id", type=int)
@pass_workspace
def pause(ws, broadcast_id) -> None:
    """Hold a scheduled or sending broadcast until unpause."""
    result = ws.broadcasts.pause(broadcast_id, actor="cli")
    click.echo(f"Broadcast {broadcast_id} paused (was {result['previous_status']}).")


@broadcast_group.command(name="unpause")
@click.argument("broadcast_id", type=int)
@pass_workspace
def unpause(ws, broadcast_id) -> None:
    """Release a paused broadcast (it goes out at its time, or at the next run-due)."""
    result = ws.broadcasts.unpause(broadcast_id, actor="cli")
    click.echo(f"Broadcast {broadcast_id} is {result['status']} again.")


def _transport_options(func):
    func = click.option("--seed", type=int, default=None,
                        help="Seed of the simulated transport.")(func)
    func = click.option("--transport", type=click.Choice(["simulated", "cloud"]),
                        default="simulated", show_default=True,
                        help="simulated (no messages leave) or cloud (the WhatsApp Cloud API).")(func)
    func = click.option("--progress/--no-progress", default=False,
                        help="Show a progress bar.")(func)
    return func


def _print_outcome(result) -> None:
    if isinstance(result, dict):
        click.echo(", ".join(f"{k}: {v}" for k, v in result.items()))
    else:
        click.echo(str(result))


@broadcast_group.command(name="send")
@click.argument("broadcast_id", type=int)
@_transport_options
@_now_option
@pass_workspace
def send(ws, broadcast_id, transport, seed, progress, now) -> None:
    """Send a broadcast now (a draft is scheduled for now and frozen first)."""
    result = ws.broadcasts.send(broadcast_id, transport=transport, seed=seed,
                                progress=progress, now=now, actor="cli")
    if "frozen" in result:
        click.echo(f"Frozen: {_counts(result.pop('frozen'))}.", err=True)
    _print_outcome(result)


@broadcast_group.command(name="resume")
@click.argument("broadcast_id", type=int)
@_transport_options
@_now_option
@pass_workspace
def resume(ws, broadcast_id, transport, seed, progress, now) -> None:
    """Continue a send that was interrupted; sends caught mid-call become 'unknown', never resent."""
    _print_outcome(ws.broadcasts.resume(broadcast_id, transport=transport, seed=seed,
                                        progress=progress, now=now, actor="cli"))


@broadcast_group.command(name="run-due")
@_transport_options
@_now_option
@pass_workspace
def run_due(ws, transport, seed, progress, now) -> None:
    """Send every broadcast and deferred recipient whose time has come (for cron)."""
    results = ws.broadcasts.run_due(now=now, transport=transport, seed=seed,
                                    progress=progress, actor="cli")
    if not results:
        click.echo("Nothing is due.")
    for result in results:
        bid = result.pop("broadcast_id")
        click.echo(f"Broadcast {bid}: " + ", ".join(f"{k}: {v}" for k, v in result.items()))
    if any("error" in r for r in results):
        raise SystemExit(1)


@broadcast_group.command(name="resolve")
@click.argument("broadcast_id", type=int)
@click.option("--decision", type=click.Choice(["resend", "give_up"]), required=True,
              help="resend the 'unknown' recipients, or give up on them (failed).")
@pass_workspace
def resolve(ws, broadcast_id, decision) -> None:
    """Decide about recipients whose send a crash left 'unknown'."""
    _print_outcome(ws.broadcasts.resolve(broadcast_id, decision, actor="cli"))


@broadcast_group.command(name="cancel")
@click.argument("broadcast_id", type=int)
@pass_workspace
def cancel(ws, broadcast_id) -> None:
    """Cancel a broadcast: recipients still queued are skipped (reason cancelled)."""
    result = ws.broadcasts.cancel(broadcast_id, actor="cli")
    click.echo(f"Broadcast {broadcast_id} cancelled; {result['cancelled']} queued recipients "
               "will not be sent anything.")


@broadcast_group.command(name="limits")
@click.option("--account", "-a", required=True, metavar="PHONE", help="The business account.")
@click.option("--tier", type=click.Choice(["250", "2000", "10000", "100000", "unlimited"]),
              default=None, help="Messaging limit: unique users per 24 h.")
@click.option("--rate", type=click.IntRange(1), default=None, help="Messages per second.")
@click.option("--cap", default=None, metavar="N/DAYS",
              help="Marketing frequency cap, e.g. 2/7; 'off' for none.")
@click.option("--quiet", default=None, metavar="HH:MM-HH:MM",
              help="Quiet hours in the recipient's time zone; 'off' for none.")
@workspace_option
@workspace_mode("read unless changing")
def limits(account, tier, rate, cap, quiet) -> None:
    """Show or set an account's sending limits (tier, rate, marketing cap, quiet hours)."""
    fields: dict = {}
    if tier is not None:
        fields["messaging_tier"] = None if tier == "unlimited" else int(tier)
    if rate is not None:
        fields["send_rate"] = rate
    if cap is not None:
        if cap.strip().lower() == "off":
            fields["marketing_cap_days"] = 0
        else:
            count, sep, days = cap.partition("/")
            if not sep or not count.strip().isdigit() or not days.strip().isdigit():
                raise click.BadParameter(f"{cap!r}: write N/DAYS, e.g. 2/7.", param_hint="--cap")
            fields.update(marketing_cap_count=int(count), marketing_cap_days=int(days))
    if quiet is not None:
        fields["quiet_hours"] = quiet
    ws = current_workspace(read_only=not fields)
    service = ws.broadcasts
    result = service.set_limits(account, actor="cli", **fields) if fields else \
        service.limits(account)
    tier_text = result["messaging_tier"] or "unlimited"
    cap_text = (f"{result['marketing_cap_count']} per {result['marketing_cap_days']} days"
                if result["marketing_cap_days"] else "off")
    start, end = result["quiet_hours_start"], result["quiet_hours_end"]
    quiet_text = f"{start:%H:%M}-{end:%H:%M}" if start and end and start != end else "off"
    click.echo(f"Account {result['account']}: tier {tier_text}, {result['send_rate']} msg/s, "
               f"marketing cap {cap_text}, quiet hours {quiet_text} (recipient's time zone, "
               f"else {result['timezone']}).")


COMMANDS = [broadcast_group]
