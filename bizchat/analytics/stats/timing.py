"""When messages are read: time to read, and the best weekday and hour to send.

Time to read is measured from the message's send time (its sent receipt, else the
broadcast's reference time) to its first read or play; receipts that claim a read before
the send count as 0 minutes. Send-time slots are the local weekday and hour of the send
in the chosen time zone, so a 09:00 Berlin send is hour 9 in summer and winter alike.
Read rates are lower bounds (read receipts can be switched off).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from .outcomes import WEEKDAY_NAMES, aggregate, attach_broadcasts, grouped_recipients, key_columns
from .proportions import wilson_interval
from .tables import Filters, Tables, ratio

# Upper bounds (minutes) and labels of the time-to-read distribution.
READ_BINS = ((5, "< 5 min"), (15, "5-15 min"), (60, "15-60 min"), (180, "1-3 h"),
             (360, "3-6 h"), (1440, "6-24 h"), (4320, "1-3 days"), (None, "> 3 days"))


def _minutes(t: Tables, rel: ir.Table) -> ir.FloatingValue:
    return ibis.greatest(t.minutes_between(rel.read_at, rel.send_at), 0.0)


def time_to_read(t: Tables, f: Filters, by: Sequence[str], tz: str = "UTC") -> ir.Table:
    """Per group: read, median_min, p90_min (minutes from send to read), read_1h_share and
    read_24h_share (of the reads, the share within 1 and 24 hours)."""
    keys = key_columns(by)
    rel = grouped_recipients(t, f, by, tz, with_ref=True)
    rel = rel.filter(rel.read)
    rel = rel.mutate(minutes=_minutes(t, rel))
    agg = aggregate(rel, keys, dict(
        read=rel.count(), median_min=rel.minutes.quantile(0.5),
        p90_min=rel.minutes.quantile(0.9),
        within_1h=rel.count(where=rel.minutes <= 60),
        within_24h=rel.count(where=rel.minutes <= 1440)))
    agg = agg.mutate(read_1h_share=ratio(agg.within_1h, agg.read),
                     read_24h_share=ratio(agg.within_24h, agg.read)).drop("within_1h", "within_24h")
    return attach_broadcasts(t, f, agg, keys)


def read_bins(t: Tables, f: Filters, by: Sequence[str], tz: str = "UTC") -> tuple[ir.Table, ir.Table]:
    """Reads per (group, bin) and delivered per group, for ``read_distribution``."""
    keys = key_columns(by)
    rel = grouped_recipients(t, f, by, tz, with_ref=True)
    minutes = _minutes(t, rel)
    cases = [(minutes < upper, i) for i, (upper, _) in enumerate(READ_BINS) if upper is not None]
    rel = rel.mutate(bin=ibis.cases(*cases, else_=len(READ_BINS) - 1))
    read = rel.filter(rel.read)
    reads = aggregate(read, [*keys, "bin"], dict(read=read.count()))
    delivered = aggregate(rel, keys, dict(delivered=rel.count(where=rel.delivered)))
    return reads, delivered


def read_distribution(reads: pd.DataFrame, delivered: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Complete the bins and add shares: per group and bin read, share (of the group's
    reads), cum_share, and cum_open_rate (reads so far / delivered, a lower bound)."""
    bins = pd.DataFrame({"bin": range(len(READ_BINS)),
                         "bin_label": [label for _, label in READ_BINS],
                         "upper_min": [np.nan if u is None else float(u) for u, _ in READ_BINS]})
    if not keys:  # one group
        reads, delivered = reads.assign(_all=0), delivered.assign(_all=0)
    group = list(keys) or ["_all"]
    out = (delivered[group].merge(bins, how="cross")
           .merge(reads.astype({"bin": "int64"}), on=[*group, "bin"], how="left")
           .merge(delivered, on=group, how="left"))
    out["read"] = out["read"].fillna(0).astype("int64")
    out["delivered"] = out["delivered"].fillna(0).astype("int64")
    per_group = out.groupby(group, sort=False, dropna=False)["read"]
    total, cum = per_group.transform("sum"), per_group.cumsum()
    out["share"] = (out["read"] / total.where(total > 0)).astype(float)
    out["cum_share"] = (cum / total.where(total > 0)).astype(float)
    out["cum_open_rate"] = (cum / out["delivered"].where(out["delivered"] > 0)).astype(float)
    return out[[*keys, "bin_label", "upper_min", "read", "share", "cum_share", "delivered",
                "cum_open_rate"]]


def send_slots(t: Tables, f: Filters, tz: str) -> ir.Table:
    """Delivered and read per local weekday (0 = Monday) and hour of the send."""
    rel = grouped_recipients(t, f, ("weekday", "hour"), tz)
    return aggregate(rel, ["weekday", "hour"], dict(delivered=rel.count(where=rel.delivered),
                                                    read=rel.count(where=rel.read)))


def send_time_grid(slots: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """All 7 x 24 slots with delivered, read, open_rate and its Wilson interval (NaN for
    slots without deliveries)."""
    grid = pd.MultiIndex.from_product([range(7), range(24)], names=["weekday", "hour"]).to_frame(
        index=False)
    slots = slots.astype({"weekday": "int64", "hour": "int64"})
    out = grid.merge(slots, on=["weekday", "hour"], how="left")
    out[["delivered", "read"]] = out[["delivered", "read"]].fillna(0).astype("int64")
    out.insert(1, "weekday_name", [WEEKDAY_NAMES[d] for d in out["weekday"]])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["open_rate"] = (out["read"] / out["delivered"]).where(out["delivered"] > 0).astype(float)
    low, high = wilson_interval(out["read"], out["delivered"], alpha)
    out["ci_low"], out["ci_high"] = low, high
    return out


@dataclass
class SendTimeAdvice:
    """The recommended slot (None when the data cannot support one) and why."""

    weekday: int | None
    hour: int | None
    tz: str
    open_rate: float
    ci_low: float
    ci_high: float
    delivered: int
    overall_rate: float
    clearly_better: bool
    verdict: str
    candidates: pd.DataFrame

    def __str__(self) -> str:
        return self.verdict


def recommend(grid: pd.DataFrame, tz: str, *, min_delivered: int = 100,
              alpha: float = 0.05, top: int = 5) -> SendTimeAdvice:
    """The slot whose open rate is highest *at the lower end of its confidence interval*
    (Wilson), among slots with at least ``min_delivered`` deliveries: a slot that looks
    best on 12 messages does not beat one that is nearly as good on 2,000."""
    delivered, read = int(grid["delivered"].sum()), int(grid["read"].sum())
    overall = read / delivered if delivered else float("nan")
    eligible = grid[grid["delivered"] >= min_delivered].sort_values(
        ["ci_low", "delivered"], ascending=[False, False])
    candidates = eligible.head(top).reset_index(drop=True)
    if eligible.empty:
        busiest = int(grid["delivered"].max()) if len(grid) else 0
        verdict = (f"Too few messages to recommend a send time: no weekday/hour slot has "
                   f"{min_delivered} delivered messages yet (the busiest has {busiest}). "
                   "Send at different times and look again.")
        nan = float("nan")
        return SendTimeAdvice(None, None, tz, nan, nan, nan, 0, overall, False, verdict, candidates)
    best = eligible.iloc[0]
    clearly = bool(best["ci_low"] > overall)
    slot = f"{WEEKDAY_NAMES[int(best['weekday'])]} {int(best['hour']):02d}:00-{int(best['hour']) + 1:02d}:00 ({tz})"
    verdict = (f"Best send time: {slot}, open rate {best['open_rate']:.1%} "
               f"({1 - alpha:.0%} CI {best['ci_low']:.1%} to {best['ci_high']:.1%}) over "
               f"{int(best['delivered']):,} delivered messages; overall {overall:.1%}. ")
    verdict += ("It is clearly above the overall rate." if clearly else
                "It is not clearly better than the overall rate: the difference may be chance.")
    verdict += " Open rates are lower bounds: read receipts can be switched off."
    return SendTimeAdvice(int(best["weekday"]), int(best["hour"]), tz, float(best["open_rate"]),
                          float(best["ci_low"]), float(best["ci_high"]), int(best["delivered"]),
                          overall, clearly, verdict, candidates)
