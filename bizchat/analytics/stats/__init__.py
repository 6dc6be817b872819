"""Campaign and chat analytics (``ws.stats``): pandas DataFrames with documented columns.

Every method opens one read-only connection, builds the metric as an Ibis expression
(``funnel``, ``timing``, ``cohorts``, ``chats``, ``experiments``), runs it on DuckDB and
closes again. Common keyword filters:

- ``account``: the business account (number, account_id or phone_number_id)
- ``start``, ``end``: a half-open UTC range (naive times and dates mean UTC). Campaign
  metrics keep whole broadcasts whose reference time (scheduled_for, else first send)
  lies in it; chat metrics use the message or turn time; cohorts the opt-in time.
- ``labels``: a label name or list; keeps contacts carrying any of them (current labels)
- ``category``: the broadcast's template category, ``marketing`` or ``utility``
- ``broadcasts``: a broadcast id or list of ids
- ``tz``: the IANA time zone of day/week/month/hour/weekday buckets (default: the
  account's time zone: the filtered account's, else the one all accounts share, else UTC;
  a German shop reads its 9 o'clock as 9 o'clock)

Rates are NaN where the denominator is 0. Open (read) rates are lower bounds: users can
switch read receipts off. Outputs carry no phone numbers or names; the one contact-level
table (``recipients``) identifies people by a keyed pseudonym (``contact_key``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from ...errors import InvalidValue
from . import audience, chats, cohorts, experiments, funnel, timing
from .experiments import ABPlan, ABTest, ControlLift
from .outcomes import TIME_KEYS, add_weekday_names, grouped_recipients, key_columns, parse_by
from .proportions import detectable_effect, sample_size
from .pseudonym import pseudonym, pseudonym_key, pseudonymize
from .tables import (
    Source,
    WorkspaceSource,
    account_zones,
    check_tz,
    now_utc,
    resolve_filters,
)
from .timing import SendTimeAdvice

__all__ = ["ABPlan", "ABTest", "ControlLift", "SendTimeAdvice", "Stats", "detectable_effect",
           "pseudonym", "pseudonym_key", "pseudonymize", "sample_size"]


class Stats:
    """Analytics over one workspace (``ws.stats``), or over another source of the same
    tables: every method builds its metric once, as Ibis, and runs it on the source's
    backend (``bizchat.lake.stats.LakeStats`` reads a Parquet lake with DuckDB or Spark).
    """

    def __init__(self, ws=None, *, source: Source | None = None):
        if source is None:
            if ws is None:
                raise TypeError("Stats needs a workspace or a source")
            source = WorkspaceSource(ws)
        self.ws = ws
        self.source = source

    # --- plumbing -----------------------------------------------------------------------

    def _frame(self, build, filters: dict) -> pd.DataFrame:
        """Resolve the filters, build the expression, run it: one read-only connection."""
        with self.source.session() as t:
            f = resolve_filters(t, **filters)
            return add_weekday_names(t.execute(build(t, f)))

    @staticmethod
    def _filters(account, start, end, labels, category, broadcasts=None) -> dict:
        return dict(account=account, start=start, end=end, labels=labels, category=category,
                    broadcasts=broadcasts)

    # --- funnel -------------------------------------------------------------------------

    def open_rates(self, by: str | Sequence[str] = "broadcast", *, account=None, start=None,
                   end=None, labels=None, category=None, broadcasts=None,
                   tz: str | None = None) -> pd.DataFrame:
        """The campaign open-rate table grouped ``by`` broadcast, variant, account,
        category, template, label, day, week, month, hour or weekday (or a list).

        Columns: the group keys (per broadcast also name, account_id, category, template,
        scheduled_for), recipients, skipped, sent, delivered, read, failed,
        first_sent_at (earliest sent receipt), delivery_rate (delivered / sent), open_rate
        (read / delivered; a lower bound).
        """
        keys = parse_by(by)
        tz = self._zone(tz, account) if TIME_KEYS.intersection(keys) else check_tz(tz)
        return self._frame(lambda t, f: funnel.open_rates(t, f, keys, tz),
                           self._filters(account, start, end, labels, category, broadcasts))

    def funnel(self, by: str | Sequence[str] | None = "broadcast", *, account=None, start=None,
               end=None, labels=None, category=None, broadcasts=None,
               tz: str | None = None) -> pd.DataFrame:
        """``open_rates`` plus control (hold-out recipients), replied (delivered recipients
        who wrote back within 72 h), opted_out (marketing opt-out within 7 days),
        reply_rate and opt_out_rate (both per delivered)."""
        keys = parse_by(by)
        tz = self._zone(tz, account) if TIME_KEYS.intersection(keys) else check_tz(tz)
        return self._frame(lambda t, f: funnel.funnel(t, f, keys, tz),
                           self._filters(account, start, end, labels, category, broadcasts))

    def failures(self, by: str | Sequence[str] | None = "broadcast", *, account=None,
                 start=None, end=None, labels=None, category=None, broadcasts=None,
                 tz: str | None = None) -> pd.DataFrame:
        """Failed messages by error code: keys, error_code, error_title, failed,
        share_of_failed, share_of_sent."""
        keys = parse_by(by)
        tz = self._zone(tz, account) if TIME_KEYS.intersection(keys) else check_tz(tz)
        return self._frame(lambda t, f: funnel.failures(t, f, keys, tz),
                           self._filters(account, start, end, labels, category, broadcasts))

    # --- timing -------------------------------------------------------------------------

    def time_to_read(self, by: str | Sequence[str] | None = "broadcast", *, account=None,
                     start=None, end=None, labels=None, category=None, broadcasts=None,
                     tz: str | None = None) -> pd.DataFrame:
        """Minutes from send to read: keys, read, median_min, p90_min, read_1h_share,
        read_24h_share."""
        keys = parse_by(by)
        tz = self._zone(tz, account) if TIME_KEYS.intersection(keys) else check_tz(tz)
        return self._frame(lambda t, f: timing.time_to_read(t, f, keys, tz),
                           self._filters(account, start, end, labels, category, broadcasts))

    def read_distribution(self, by: str | Sequence[str] | None = None, *, account=None,
                          start=None, end=None, labels=None, category=None, broadcasts=None,
                          tz: str | None = None) -> pd.DataFrame:
        """How long reads took, in bins (< 5 min ... > 3 days): keys, bin_label,
        upper_min, read, share, cum_share, delivered, cum_open_rate."""
        keys = parse_by(by)
        tz = self._zone(tz, account) if TIME_KEYS.intersection(keys) else check_tz(tz)
        with self.source.session() as t:
            f = resolve_filters(t, **self._filters(
                account, start, end, labels, category, broadcasts))
            reads, delivered = timing.read_bins(t, f, keys, tz)
            reads, delivered = t.execute(reads), t.execute(delivered)
        return timing.read_distribution(reads, delivered, key_columns(keys))

    def send_times(self, tz: str | None = None, *, account=None, start=None, end=None, labels=None,
                   category=None, broadcasts=None, alpha: float = 0.05) -> pd.DataFrame:
        """Open rate per local weekday x hour of the send (all 168 slots): weekday
        (0 = Monday), weekday_name, hour, delivered, read, open_rate, ci_low, ci_high."""
        tz = self._zone(tz, account)
        with self.source.session() as t:
            f = resolve_filters(t, **self._filters(
                account, start, end, labels, category, broadcasts))
            slots = t.execute(timing.send_slots(t, f, tz))
        return timing.send_time_grid(slots, alpha)

    def best_send_time(self, tz: str | None = None, *, min_delivered: int = 100, account=None,
                       start=None, end=None, labels=None, category=None, broadcasts=None,
                       alpha: float = 0.05) -> SendTimeAdvice:
        """The weekday and hour with the best open rate at the low end of its confidence
        interval, among slots with at least ``min_delivered`` deliveries."""
        tz = self._zone(tz, account)
        grid = self.send_times(tz, account=account, start=start, end=end, labels=labels,
                               category=category, broadcasts=broadcasts, alpha=alpha)
        return timing.recommend(grid, tz, min_delivered=min_delivered, alpha=alpha)

    # --- cohorts ------------------------------------------------------------------------

    def cohorts(self, tz: str | None = None, *, months: int = 12, account=None, start=None,
                end=None, labels=None, category=None) -> pd.DataFrame:
        """Contacts by month of first marketing opt-in and their open rate in the months
        after: cohort, months_since, cohort_contacts, contacts_delivered, delivered, read,
        open_rate."""
        tz = self._zone(tz, account)
        return self._frame(lambda t, f: cohorts.cohorts(t, f, tz, months),
                           self._filters(account, start, end, labels, category))

    # --- audience -----------------------------------------------------------------------

    def consent_changes(self, *, account=None, start=None, end=None,
                        labels=None) -> pd.DataFrame:
        """Marketing opt-ins and opt-outs recorded in [start, end) by account_id, source
        and action: events, contacts."""
        return self._frame(audience.consent_changes,
                           self._filters(account, start, end, labels, None))

    def consent_coverage(self, *, account=None, end=None, labels=None) -> pd.DataFrame:
        """Marketing consent per account at ``end`` (default now): contacts, opted_in,
        opted_out, never_asked, coverage (opted_in / contacts)."""
        return self._frame(audience.consent_coverage,
                           self._filters(account, None, end, labels, None))

    def label_growth(self, *, account=None, start=None, end=None,
                     labels=None) -> pd.DataFrame:
        """Per label: contacts at ``end``, added in [start, end), growth (added / contacts
        before), opted_in and consent_share (current marketing opt-ins among them)."""
        return self._frame(audience.label_growth,
                           self._filters(account, start, end, labels, None))

    # --- chats --------------------------------------------------------------------------

    @staticmethod
    def _chat_by(by, category) -> tuple[str, ...]:
        if category is not None:
            raise InvalidValue("Chat metrics have no template category; leave category out.",
                               input=category)
        keys = parse_by(by)
        wrong = [k for k in keys if k not in chats.CHAT_GROUPINGS]
        if wrong:
            raise InvalidValue(f"Chat metrics group by {', '.join(chats.CHAT_GROUPINGS)}, not "
                               f"{', '.join(wrong)}.", input=by)
        return keys

    def inbound_volume(self, by: str | Sequence[str] = ("weekday", "hour"), *, tz: str | None = None,
                       account=None, start=None, end=None, labels=None,
                       category=None) -> pd.DataFrame:
        """Inbound messages per group (default local weekday and hour): messages, chats."""
        keys, tz = self._chat_by(by, category), self._zone(tz, account)
        return self._frame(lambda t, f: chats.inbound_volume(t, f, keys, tz),
                           self._filters(account, start, end, labels, None))

    def response_times(self, by: str | Sequence[str] | None = "account", *, tz: str | None = None,
                       account=None, start=None, end=None, labels=None, category=None,
                       as_of: datetime | None = None) -> pd.DataFrame:
        """The business's first response time and the share of customer turns answered
        within the 24-hour window: turns, answered, pending, answered_24h,
        answered_24h_share, median_response_min, p90_response_min."""
        keys, tz = self._chat_by(by, category), self._zone(tz, account)
        when = as_of or now_utc()
        return self._frame(lambda t, f: chats.response_times(t, f, keys, tz, when),
                           self._filters(account, start, end, labels, None))

    def messages_per_chat(self, by: str | Sequence[str] | None = "account", *, account=None,
                          start=None, end=None, labels=None, category=None) -> pd.DataFrame:
        """chats, messages, inbound, outbound, mean/median/p90 messages per chat."""
        keys = self._chat_by(by, category)
        return self._frame(lambda t, f: chats.messages_per_chat(t, f, keys),
                           self._filters(account, start, end, labels, None))

    # --- experiments --------------------------------------------------------------------

    def zone(self, account=None) -> str:
        """The time zone day and hour buckets use by default: the account's (else the one
        every account shares, else UTC)."""
        return self._zone(None, account)

    def _zone(self, tz: str | None, account=None) -> str:
        """``tz``, else the account's time zone (the filtered account's, else the one every
        account shares), else UTC."""
        if tz is not None:
            return check_tz(tz)
        with self.source.session() as t:
            zones = account_zones(t, t.account_id(account) if account is not None else None)
        return check_tz(zones.pop()) if len(zones) == 1 else "UTC"

    def _arms(self, broadcast_id: int) -> tuple[pd.DataFrame, pd.Series]:
        with self.source.session() as t:
            resolve_filters(t, broadcasts=broadcast_id)
            counts, info = experiments.arm_counts(t, broadcast_id)
            info = t.execute(info).iloc[0]
            reach = t.execute(experiments.data_reach(t, int(info["account_id"]))).iloc[0, 0]
            info["data_reach"] = None if reach is None or pd.isna(reach) else pd.Timestamp(reach)
            return t.execute(counts), info

    @staticmethod
    def _observed(as_of, reach) -> pd.Timestamp:
        """The moment up to which a result may be judged: ``as_of`` (default now), but never
        past how far the account's data reaches."""
        when = pd.Timestamp(as_of if as_of is not None else now_utc())
        when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
        if reach is None:
            return pd.Timestamp.min.tz_localize("UTC")
        return min(when, pd.Timestamp(reach).tz_convert("UTC"))

    def data_reach(self, account) -> datetime | None:
        """How far an account's data reaches: its latest ingested receipt or inbound
        message (None without data). Results are final only up to here."""
        with self.source.session() as t:
            f = resolve_filters(t, account=account)
            reach = t.execute(experiments.data_reach(t, int(f.account_id or 0))).iloc[0, 0]
        return None if reach is None or pd.isna(reach) else pd.Timestamp(reach).to_pydatetime()

    def ab_test(self, broadcast_id: int, metric: str = "open", *, baseline: str | None = None,
                alpha: float = 0.05, mde: float | None = None, power: float = 0.8,
                as_of: datetime | None = None) -> ABTest:
        """Compare the variants of a broadcast on ``metric`` (open, reply or opt_out), at
        a fixed horizon, with a plain-language verdict (``.verdict``) and the numbers
        (``.table``: variant, is_baseline, assigned, delivered, outcome, rate, ci_low,
        ci_high, diff, diff_ci_low, diff_ci_high, z, p_value, p_adjusted (Holm over every
        variant and metric), significant). Final only when the account's data reaches
        past the window (``data_reach``), whatever ``as_of`` (default now) says."""
        counts, info = self._arms(broadcast_id)
        counts = counts[counts["variant"].notna()]     # never randomised: no arm
        shares = experiments.planned_shares(info["variants"], float(info["control_fraction"]),
                                            list(counts["variant"]))
        return experiments.evaluate_ab(counts, metric=metric, baseline=baseline, alpha=alpha,
                                       mde=mde, power=power, shares=shares,
                                       as_of=self._observed(as_of, info["data_reach"]),
                                       broadcast_id=int(broadcast_id))

    def control_lift(self, broadcast_id: int, *, cost_per_delivered: float | None = None,
                     alpha: float = 0.05, power: float = 0.8, by_variant: bool = False,
                     as_of: datetime | None = None) -> ControlLift:
        """Lift over the hold-out control group on replies (72 h, 7 days) and opt-outs
        (7 days), never reads, among the randomised recipients only (contacts excluded
        before assignment are in ``.excluded`` by reason); both arms' windows start at the
        broadcast's first send. With ``cost_per_delivered`` the cost per incremental
        reply. ``.table`` has one row per arm and outcome (``p_adjusted``: Holm over all
        of them). Final only when the account's data reaches past the windows."""
        with self.source.session() as t:
            resolve_filters(t, broadcasts=broadcast_id)
            counts, excluded = experiments.lift_counts(t, broadcast_id)
            b = t.broadcasts
            account_id = t.execute(b.filter(b.broadcast_id == int(broadcast_id))
                                   .select("account_id")).iloc[0, 0]
            reach = t.execute(experiments.data_reach(t, int(account_id))).iloc[0, 0]
            counts, excluded = t.execute(counts), t.execute(excluded)
        reach = None if reach is None or pd.isna(reach) else pd.Timestamp(reach)
        gone = {("unknown" if pd.isna(r) else str(r)): int(n)
                for r, n in zip(excluded["skip_reason"], excluded["recipients"], strict=True)}
        return experiments.evaluate_lift(counts, cost_per_delivered=cost_per_delivered,
                                         alpha=alpha, power=power, by_variant=by_variant,
                                         as_of=self._observed(as_of, reach),
                                         broadcast_id=int(broadcast_id), excluded=gone)

    def plan_ab(self, mde: float, *, metric: str = "open", audience: int | None = None,
                variants: int = 2, control_fraction: float = 0.0,
                baseline_rate: float | None = None, relative: bool = False,
                alpha: float = 0.05, power: float = 0.8, account=None, start=None, end=None,
                labels=None, category=None) -> ABPlan:
        """Recipients an A/B test needs, before sending. The baseline rate and delivery
        rate come from the filtered history unless ``baseline_rate`` is given."""
        if metric not in ("open", "reply"):
            raise InvalidValue(f"Plan on 'open' or 'reply', not {metric!r}.", input=metric)
        # Delivery and open rates come from the per-broadcast totals (open_rates, the same
        # numbers); only a reply baseline needs the full funnel, several times slower.
        filters = dict(account=account, start=start, end=end, labels=labels, category=category)
        history = (self.open_rates((), **filters) if metric == "open" else
                   self.funnel(None, **filters)).iloc[0]
        delivery = history["delivery_rate"]
        delivery = float(delivery) if delivery == delivery and delivery > 0 else 1.0
        if baseline_rate is None:
            baseline_rate = history["open_rate" if metric == "open" else "reply_rate"]
            if not baseline_rate == baseline_rate or not 0 < baseline_rate < 1:
                raise InvalidValue(f"No {metric} history to take a baseline rate from; pass "
                                   "baseline_rate=...", input=metric)
        return experiments.plan(float(baseline_rate), mde, delivery_rate=delivery,
                                variants=variants, control_fraction=control_fraction,
                                audience=audience, alpha=alpha, power=power,
                                relative=relative, metric=metric)

    # --- contact level ------------------------------------------------------------------

    def recipients(self, *, broadcasts=None, account=None, start=None, end=None, labels=None,
                   category=None) -> pd.DataFrame:
        """One row per broadcast recipient, pseudonymous: broadcast_id, contact_key,
        variant, state, skip_reason, sent, delivered, read, failed, error_code, send_at,
        delivered_at, read_at, first_reply_at (72 h), first_opt_out_at (7 days)."""
        columns = ["broadcast_id", "contact_id", "variant", "state", "skip_reason", "sent",
                   "delivered", "read", "failed", "error_code", "send_at", "delivered_at",
                   "read_at", "first_reply_at", "first_opt_out_at"]
        df = self._frame(
            lambda t, f: grouped_recipients(t, f, (), "UTC", responses=True)
            .select(*columns),
            self._filters(account, start, end, labels, category, broadcasts))
        df.insert(1, "contact_key", self.source.contact_keys(df.pop("contact_id")))
        # Sorted by the key, not the source's contact id: the lake has only the key.
        return df.sort_values(["broadcast_id", "contact_key"], kind="stable",
                              ignore_index=True)
