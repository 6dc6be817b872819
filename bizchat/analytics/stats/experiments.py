"""A/B tests between variants and lift against a hold-out control group, read honestly.

- Fixed horizon: an outcome counts only inside its window after the send (open and reply:
  72 h, opt-out: 7 days), and a result is final once the window after the *last* send
  has passed *in the data*: the workspace's data must reach that far (the latest
  ingested receipt or inbound message of the account, ``data_reach``), so a workspace
  whose data stops early (an export, a paused receiver, the demo) never calls a
  half-observed window final. Before that the verdict says when to come back: looking
  early and stopping on a good day turns chance into "significance".
- Variants are compared with each other on delivered messages (open = read within 72 h /
  delivered, reply = replied within 72 h / delivered); each against the baseline with a
  two-proportion z-test and Newcombe's interval of the difference. Holm's correction
  covers every test behind one verdict: every variant against the baseline on every
  metric (open, reply, opt-out), so two variants are still corrected for three metrics.
- A sample-ratio check (chi-square against the planned split) flags broken assignment.
- Against the control group, whose members get no message, only outcomes both arms can
  have are compared, over everyone *randomised* (intention to treat: a recipient assigned
  to an arm counts there even if excluded later). Contacts excluded before assignment
  (no consent, opted out, frequency cap ...: no variant) are no part of either arm; they
  are reported apart (``ControlLift.excluded``). Both arms' windows start at the same
  moment, the broadcast's first send (else its scheduled time): replies within 72 h and
  7 days, opt-outs within 7 days. Never reads: the control group cannot read anything.
  Holm's correction covers every arm and outcome of the verdict.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime

import ibis
import numpy as np
import pandas as pd

from ...errors import InvalidValue
from . import proportions as P
from .outcomes import OPT_OUT_WINDOW, REPLY_WINDOW, recipients, with_responses
from .tables import Filters, Tables

# metric -> (outcome column in the per-variant counts, window)
METRICS = {"open": ("read", REPLY_WINDOW), "reply": ("replied", REPLY_WINDOW),
           "opt_out": ("opted_out", OPT_OUT_WINDOW)}
METRIC_WORDS = {"open": "open rate", "reply": "reply rate", "opt_out": "opt-out rate"}
# The smallest difference worth finding, in rate points, when the caller names none.
DEFAULT_MDE = {"open": 0.05, "reply": 0.01, "opt_out": 0.005}
SRM_ALPHA = 0.001     # a split this unlikely means the assignment is broken
MIN_EXPECTED = 5      # normal approximation needs >= 5 expected successes and failures
LIFT_OUTCOMES = (("reply_72h", "replied within 72 h", REPLY_WINDOW),
                 ("reply_7d", "replied within 7 days", OPT_OUT_WINDOW),
                 ("opt_out_7d", "opted out within 7 days", OPT_OUT_WINDOW))


# --- data ---------------------------------------------------------------------------------

def arm_counts(t: Tables, broadcast_id: int) -> tuple:
    """Per variant of one broadcast: assigned, sent, delivered, read (within 72 h),
    replied (72 h), replied_7d, opted_out (7 days), last_send_at; and the broadcast row."""
    f = Filters(broadcast_ids=(int(broadcast_id),))
    rel = with_responses(t, recipients(t, f, with_ref=True), reply_window=OPT_OUT_WINDOW)
    d = rel.delivered
    agg = rel.group_by("variant").aggregate(
        assigned=rel.count(), sent=rel.count(where=rel.sent), delivered=rel.count(where=d),
        read=rel.count(where=d & (rel.read_at <= rel.send_at + REPLY_WINDOW)),
        replied=rel.count(where=d & (rel.first_reply_at <= rel.send_at + REPLY_WINDOW)),
        replied_all=rel.count(where=rel.first_reply_at <= rel.send_at + REPLY_WINDOW),
        replied_7d=rel.count(where=rel.first_reply_at.notnull()),
        opted_out=rel.count(where=d & rel.first_opt_out_at.notnull()),
        opted_out_all=rel.count(where=rel.first_opt_out_at.notnull()),
        last_ref_at=rel.send_at.max(), last_send_at=rel.send_at.max(where=rel.sent))
    b = t.broadcasts
    info = b.filter(b.broadcast_id == int(broadcast_id)).select(
        "broadcast_id", "name", "variants", "control_fraction", "account_id")
    return agg.order_by("variant"), info


def lift_counts(t: Tables, broadcast_id: int) -> tuple:
    """Per arm of one broadcast's randomised recipients (a variant or control): assigned,
    delivered, replied_all (72 h), replied_7d, opted_out_all (7 days), last_ref_at; every
    window starting at one moment for both arms (the broadcast's first send, else its
    scheduled time). And the recipients excluded before assignment, by skip reason."""
    f = Filters(broadcast_ids=(int(broadcast_id),))
    rel = recipients(t, f, with_ref=True)
    randomised = rel.variant.notnull()
    gone = rel.filter(~randomised)
    excluded = gone.group_by("skip_reason").aggregate(recipients=gone.count()).order_by(
        "skip_reason")
    arms = rel.filter(randomised)
    arms = arms.mutate(send_at=arms.start_at)
    arms = with_responses(t, arms, reply_window=OPT_OUT_WINDOW)
    agg = arms.group_by("variant").aggregate(
        assigned=arms.count(), delivered=arms.count(where=arms.delivered),
        replied_all=arms.count(where=arms.first_reply_at <= arms.send_at + REPLY_WINDOW),
        replied_7d=arms.count(where=arms.first_reply_at.notnull()),
        opted_out_all=arms.count(where=arms.first_opt_out_at.notnull()),
        last_ref_at=arms.send_at.max())
    return agg.order_by("variant"), excluded


def data_reach(t: Tables, account_id: int):
    """How far an account's data reaches: its latest ingested receipt or inbound message
    (a one-row table with ``at``; NULL for an account without data)."""
    s, m = t.message_status, t.messages
    mine = m.filter(m.account_id == int(account_id))
    receipts = s.join(mine, s.message_id == mine.message_id).select(
        at=ibis.greatest(s.sent_at, s.delivered_at, s.read_at, s.played_at, s.failed_at))
    inbound = mine.filter(mine.direction == "in").select(at=mine.created_at)
    both = receipts.union(inbound)
    return both.aggregate(at=both["at"].max())


def planned_shares(variants_json, control_fraction: float, observed: list[str]) -> dict:
    """The planned share of each observed variant: the broadcast's ``variants`` shares
    scaled to 1 - control_fraction, control_fraction for the control group; equal
    shares when the broadcast did not record a plan."""
    plan = {}
    if isinstance(variants_json, str):
        try:
            variants_json = json.loads(variants_json)
        except ValueError:
            variants_json = None
    if not isinstance(variants_json, list):
        variants_json = []
    observed = [v for v in observed if isinstance(v, str)]
    for item in variants_json:
        if isinstance(item, dict) and item.get("variant") and item.get("share"):
            plan[str(item["variant"])] = float(item["share"])
    arms = [v for v in observed if v != "control"]
    if not all(v in plan for v in arms):
        plan = {v: 1.0 for v in arms}
    total = sum(plan[v] for v in arms) or 1.0
    treated = 1.0 - (control_fraction or 0.0)
    shares = {v: treated * plan[v] / total for v in arms}
    if "control" in observed:
        shares["control"] = control_fraction or 0.0
    return shares


# --- A/B ----------------------------------------------------------------------------------

@dataclass
class SampleRatio:
    observed: dict
    expected: dict
    chi2: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        return bool(self.p_value < SRM_ALPHA)

    def __str__(self) -> str:
        split = ", ".join(f"{v} {self.observed[v]:,} (planned {self.expected[v]:.0f})"
                          for v in self.observed)
        if math.isnan(self.p_value):
            return f"Split: {split}."
        if self.mismatch:
            return (f"Sample-ratio mismatch: the split came out as {split}, which chance "
                    f"explains with p = {self.p_value:.2g}. The assignment may be broken "
                    "(e.g. some recipients dropped in one arm); do not trust the comparison.")
        return f"The split matches the plan ({split}; p = {self.p_value:.2f})."


@dataclass
class ABTest:
    broadcast_id: int
    metric: str
    baseline: str
    table: pd.DataFrame
    srm: SampleRatio
    final: bool
    final_at: datetime | None
    required_per_variant: float
    verdict: str
    alpha: float = 0.05
    notes: list = field(default_factory=list)

    def __str__(self) -> str:
        return self.verdict


def _utc(when) -> pd.Timestamp:
    """``when`` (default now) as an aware UTC timestamp; naive means UTC."""
    stamp = pd.Timestamp.now(tz="UTC") if when is None else pd.Timestamp(when)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _fmt_points(x: float) -> str:
    return f"{x * 100:+.1f} points"


def family_adjusted(arms: pd.DataFrame, names: list, b: int, metric: str) -> np.ndarray:
    """Holm-adjusted p-values of ``metric``'s comparisons, adjusted within the family of
    every comparison behind an A/B verdict: each variant against the baseline on every
    metric the counts hold (open, reply, opt-out)."""
    n = arms["delivered"].astype(int).to_numpy()
    family: list[float] = []
    mine: list[int] = []
    for name, (column, _) in METRICS.items():
        if column not in arms:
            continue
        k = arms[column].astype(int).to_numpy()
        for i in range(len(names)):
            if i == b:
                continue
            if name == metric:
                mine.append(len(family))
            family.append(P.two_proportion_z(k[b], n[b], k[i], n[i])[1])
    adjusted = np.asarray(P.holm(pd.Series(family, dtype=float)), dtype=float)
    out = np.full(len(names), np.nan)
    out[[i for i in range(len(names)) if i != b]] = adjusted[mine]
    return out


def evaluate_ab(counts: pd.DataFrame, *, metric: str = "open", baseline: str | None = None,
                alpha: float = 0.05, mde: float | None = None, power: float = 0.8,
                shares: dict | None = None, as_of: datetime | None = None,
                broadcast_id: int = 0) -> ABTest:
    """The A/B result from per-variant counts (columns variant, assigned, delivered, the
    metric's outcome column, last_send_at). ``mde`` is the smallest difference in rate
    points worth finding (default: 5 points for open, 1 for reply, 0.5 for opt-out); it
    sets the "too few recipients" threshold."""
    if metric not in METRICS:
        raise InvalidValue(f"Unknown metric {metric!r}; compare on {', '.join(METRICS)}.",
                           input=metric)
    mde = DEFAULT_MDE[metric] if mde is None else mde
    outcome, window = METRICS[metric]
    counts = counts.copy()
    counts["variant"] = counts["variant"].astype(object)
    arms = counts[counts["variant"].notna() & (counts["variant"] != "control")]
    arms = arms.sort_values("variant").reset_index(drop=True)
    if len(arms) < 2:
        raise InvalidValue(
            f"Broadcast {broadcast_id} has {len(arms)} variant(s); an A/B comparison needs at "
            "least two (A, B, ...). For a hold-out group use control_lift.", input=broadcast_id)
    names = list(arms["variant"])
    baseline = names[0] if baseline is None else str(baseline)
    if baseline not in names:
        raise InvalidValue(f"No variant {baseline!r} in broadcast {broadcast_id}; it has "
                           f"{', '.join(names)}.", input=baseline)
    n = arms["delivered"].astype(int).to_numpy()
    k = arms[outcome].astype(int).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    low, high = P.wilson_interval(k, n, alpha)
    b = names.index(baseline)
    rows = []
    for i in range(len(names)):
        if i == b:
            rows.append((np.nan, np.nan, np.nan, np.nan, np.nan))
            continue
        z, p = P.two_proportion_z(k[b], n[b], k[i], n[i])
        dl, dh = P.diff_interval(k[b], n[b], k[i], n[i], alpha)
        rows.append((rate[i] - rate[b], dl, dh, z, p))
    cmp = pd.DataFrame(rows, columns=["diff", "diff_ci_low", "diff_ci_high", "z", "p_value"])
    cmp["p_adjusted"] = family_adjusted(arms, names, b, metric)
    table = pd.DataFrame({"variant": names, "is_baseline": [v == baseline for v in names],
                          "assigned": arms["assigned"].astype(int), "delivered": n,
                          "outcome": k, "rate": rate, "ci_low": low, "ci_high": high})
    table = pd.concat([table, cmp], axis=1)

    last = pd.to_datetime(counts["last_send_at"], utc=True).max() if "last_send_at" in counts else pd.NaT
    final_at = None if pd.isna(last) else (last + window).to_pydatetime()
    final = final_at is not None and _utc(as_of) >= pd.Timestamp(final_at)
    table["significant"] = [None if (v == baseline or not final) else bool(p < alpha)
                            for v, p in zip(names, table["p_adjusted"], strict=True)]

    observed = {str(v): int(a) for v, a in zip(counts["variant"], counts["assigned"], strict=True)
                if v is not None and v == v}
    shares = shares or planned_shares(None, 0.0, list(observed))
    expected = {v: shares.get(v, 0.0) * sum(observed.values()) for v in observed}
    chi2, srm_p = P.sample_ratio(list(observed.values()), [shares.get(v, 0.0) for v in observed])
    srm = SampleRatio(observed, expected, chi2, srm_p)

    pooled = k.sum() / n.sum() if n.sum() else math.nan
    base_rate = rate[b] if n[b] and 0 < rate[b] < 1 else pooled
    try:
        required = float(P.sample_size(base_rate, mde, alpha=alpha, power=power))
    except (ValueError, ZeroDivisionError):
        required = math.nan
    verdict = _ab_verdict(table, metric, baseline, final, final_at, required, mde, alpha, pooled)
    if srm.mismatch:
        verdict = str(srm) + " " + verdict
    return ABTest(broadcast_id, metric, baseline, table, srm, final, final_at, required,
                  verdict, alpha)


def _ab_verdict(table, metric, baseline, final, final_at, required, mde, alpha, pooled) -> str:
    word = METRIC_WORDS[metric]
    if final_at is None:
        return (f"Not sent yet. To find a {mde * 100:.1f}-point difference in {word} each variant "
                f"needs about {required:,.0f} delivered messages.")
    if not final:
        return (f"Too early to read: the {word} is final at {final_at:%Y-%m-%d %H:%M} UTC, "
                f"{METRICS[metric][1].total_seconds() / 3600:.0f} h after the last send. Reading "
                "earlier (peeking) makes chance differences look significant.")
    sentences = []
    base = table[table["is_baseline"]].iloc[0]
    n_min = int(table["delivered"].min())
    thin = (math.isnan(pooled) or n_min * min(pooled, 1 - pooled) < MIN_EXPECTED)
    for _, row in table[~table["is_baseline"]].iterrows():
        v, p = row["variant"], row["p_adjusted"]
        detail = (f"{row['rate']:.1%} vs {base['rate']:.1%} ({_fmt_points(row['diff'])}, "
                  f"{1 - alpha:.0%} CI {row['diff_ci_low'] * 100:+.1f} to "
                  f"{row['diff_ci_high'] * 100:+.1f}; p = {p:.3g})")
        if thin or math.isnan(p):
            sentences.append(
                f"Too few recipients to tell {v} from {baseline}: {int(row['delivered']):,} and "
                f"{int(base['delivered']):,} delivered messages; each variant needs about "
                f"{required:,.0f} to find a {mde * 100:.1f}-point difference in {word}.")
        elif p < alpha:
            better = "higher" if row["diff"] > 0 else "lower"
            sentences.append(f"{v} has a {better} {word} than {baseline}: {detail}.")
        elif min(row["delivered"], base["delivered"]) < required:
            sentences.append(
                f"Too few recipients to tell {v} from {baseline}: {detail}. A "
                f"{mde * 100:.1f}-point difference needs about {required:,.0f} delivered "
                "messages per variant.")
        else:
            sentences.append(f"No clear difference between {v} and {baseline}: {detail}; a "
                             f"{mde * 100:.1f}-point difference would very likely have shown.")
    sentences.append("p-values are Holm-adjusted for every comparison behind this verdict "
                     "(each variant against the baseline on open, reply and opt-out rates).")
    if metric == "open":
        sentences.append("Open rates are lower bounds: read receipts can be switched off.")
    return " ".join(sentences)


# --- control group --------------------------------------------------------------------------

@dataclass
class ControlLift:
    broadcast_id: int
    table: pd.DataFrame
    final: bool
    verdict: str
    excluded: dict = field(default_factory=dict)   # skip reason -> contacts never randomised

    def __str__(self) -> str:
        return self.verdict


def evaluate_lift(counts: pd.DataFrame, *, cost_per_delivered: float | None = None,
                  alpha: float = 0.05, power: float = 0.8, by_variant: bool = False,
                  as_of: datetime | None = None, broadcast_id: int = 0,
                  excluded: dict | None = None) -> ControlLift:
    """Lift of the treated arm(s) over the control group from per-arm counts of the
    randomised recipients (assigned, delivered, replied_all, replied_7d, opted_out_all,
    last_ref_at; rows without a variant are ignored). Reads are never used.
    ``excluded``: contacts excluded before assignment, by reason (reported apart)."""
    counts = counts.copy()
    counts["variant"] = counts["variant"].astype(object)
    counts = counts[counts["variant"].notna()]
    is_control = counts["variant"].eq("control")
    if not is_control.any() or int(counts.loc[is_control, "assigned"].sum()) == 0:
        raise InvalidValue(f"Broadcast {broadcast_id} has no control group, so there is no lift "
                           "to measure. Give the next broadcast a control fraction.",
                           input=broadcast_id)
    control = counts[is_control].iloc[0]
    treated = counts[~is_control]
    if treated.empty:
        raise InvalidValue(f"Broadcast {broadcast_id} has only a control group.", input=broadcast_id)
    arms = ([(str(r["variant"]), r) for _, r in treated.iterrows()] if by_variant else
            [("all", treated[["assigned", "delivered", "replied_all", "replied_7d",
                              "opted_out_all"]].sum())])
    last = pd.to_datetime(counts["last_ref_at"], utc=True).max()
    as_of = _utc(as_of)
    rows = []
    column = {"reply_72h": "replied_all", "reply_7d": "replied_7d", "opt_out_7d": "opted_out_all"}
    for arm, r in arms:
        for key, words, window in LIFT_OUTCOMES:
            n1, k1 = int(control["assigned"]), int(control[column[key]])
            n2, k2 = int(r["assigned"]), int(r[column[key]])
            p1 = k1 / n1 if n1 else math.nan
            p2 = k2 / n2 if n2 else math.nan
            _, p = P.two_proportion_z(k1, n1, k2, n2)
            low, high = P.diff_interval(k1, n1, k2, n2, alpha)
            lift = p2 - p1
            incremental = lift * n2
            cost = (cost_per_delivered * int(r["delivered"])
                    if cost_per_delivered is not None else math.nan)
            per_reply = (cost / incremental if key.startswith("reply") and incremental > 0
                         else math.nan)
            rows.append(dict(
                arm=arm, outcome=key, description=words, treated_n=n2, treated_events=k2,
                treated_rate=p2, control_n=n1, control_events=k1, control_rate=p1,
                lift=lift, lift_ci_low=low, lift_ci_high=high, p_value=p,
                relative_lift=lift / p1 if p1 else math.nan,
                incremental=incremental, cost=cost, cost_per_incremental_reply=per_reply,
                final=bool(not pd.isna(last) and as_of >= last + window)))
    table = pd.DataFrame(rows)
    # One verdict, one family: every arm and outcome it rests on.
    table["p_adjusted"] = np.asarray(P.holm(table["p_value"].astype(float)), dtype=float)
    excluded = {str(k): int(v) for k, v in (excluded or {}).items()}
    verdict = _lift_verdict(table, alpha, power, last)
    if excluded:
        verdict += (" Not in either arm (excluded before assignment): "
                    + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in excluded.items())
                    + ".")
    return ControlLift(broadcast_id, table, bool(table["final"].all()), verdict, excluded)


def _lift_verdict(table: pd.DataFrame, alpha: float, power: float, last) -> str:
    if pd.isna(last):
        return "Not sent yet: the lift can be measured 7 days after the send."
    sentences = []
    for _, row in table[table["outcome"] == "reply_72h"].iterrows():
        who = "the broadcast" if row["arm"] == "all" else f"variant {row['arm']}"
        if not row["final"]:
            return (f"Too early to read: replies within 72 h are final at "
                    f"{last + REPLY_WINDOW:%Y-%m-%d %H:%M} UTC, opt-outs at "
                    f"{last + OPT_OUT_WINDOW:%Y-%m-%d %H:%M} UTC.")
        detail = (f"{row['treated_rate']:.1%} of recipients replied within 72 h vs "
                  f"{row['control_rate']:.1%} of the control group, "
                  f"{_fmt_points(row['lift'])} ({1 - alpha:.0%} CI {row['lift_ci_low'] * 100:+.1f} "
                  f"to {row['lift_ci_high'] * 100:+.1f}; adjusted p = {row['p_adjusted']:.3g})")
        if not math.isnan(row["relative_lift"]):
            detail += f", a relative lift of {row['relative_lift']:+.0%}"
        p = row["p_adjusted"]
        if not math.isnan(p) and p < alpha:
            sentence = f"{who.capitalize()} {'brought extra' if row['lift'] > 0 else 'cost'} replies: {detail}."
            if not math.isnan(row["cost_per_incremental_reply"]):
                sentence += f" Cost per incremental reply: {row['cost_per_incremental_reply']:.2f}."
        else:
            ratio = row["treated_n"] / row["control_n"] if row["control_n"] else math.nan
            base = row["control_rate"] if 0 < row["control_rate"] < 1 else 0.05
            mde = P.detectable_effect(row["control_n"], base, alpha=alpha, power=power, ratio=ratio)
            if math.isnan(mde) or mde > max(0.02, abs(row["lift"]) * 2):
                sentence = (f"Too few recipients to tell whether {who} brought extra replies: "
                            f"{detail}. With a control group of {int(row['control_n']):,} only a "
                            + ("very large lift" if math.isnan(mde) else
                               f"lift above {mde * 100:.1f} points") + " would show.")
            else:
                sentence = f"No measurable effect of {who} on replies: {detail}."
        sentences.append(sentence)
    for _, row in table[table["outcome"] == "opt_out_7d"].iterrows():
        flag = " (significant)" if row["p_adjusted"] < alpha else ""
        who = "" if row["arm"] == "all" else f" of variant {row['arm']}"
        sentences.append(f"Opt-outs within 7 days{who}: {row['treated_rate']:.1%} vs "
                         f"{row['control_rate']:.1%} in the control group{flag}.")
    if len(sentences):
        sentences.append("p-values are Holm-adjusted for every arm and outcome above.")
    return " ".join(sentences)


# --- planning -----------------------------------------------------------------------------

@dataclass
class ABPlan:
    baseline_rate: float
    delivery_rate: float
    mde: float
    delivered_per_variant: int
    recipients_per_variant: int | float   # inf when nothing is delivered
    audience: int | None
    detectable_effect: float
    verdict: str


def plan(baseline_rate: float, mde: float, *, delivery_rate: float = 1.0, variants: int = 2,
         control_fraction: float = 0.0, audience: int | None = None, alpha: float = 0.05,
         power: float = 0.8, relative: bool = False, metric: str = "open") -> ABPlan:
    """How many recipients an A/B test needs before it is sent, and what ``audience``
    recipients can show. ``mde`` in rate points (or a fraction of the baseline with
    ``relative``); ``delivery_rate`` turns delivered messages into recipients."""
    diff = baseline_rate * mde if relative else mde
    need = P.sample_size(baseline_rate, diff, alpha=alpha, power=power)
    per_variant = math.ceil(need / delivery_rate) if delivery_rate > 0 else math.inf
    word = METRIC_WORDS.get(metric, metric)
    verdict = (f"To find a {diff * 100:.1f}-point difference in {word} (baseline "
               f"{baseline_rate:.1%}) each variant needs about {need:,} delivered messages, "
               f"about {per_variant:,} recipients at a {delivery_rate:.0%} delivery rate.")
    effect = math.nan
    if audience is not None:
        arm = audience * (1 - control_fraction) / variants * delivery_rate
        effect = P.detectable_effect(arm, baseline_rate, alpha=alpha, power=power)
        enough = arm >= need
        verdict += (f" An audience of {audience:,} gives about {arm:,.0f} per variant: "
                    + ("enough." if enough else
                       "too few to tell such a difference; "
                       + ("only very large differences would show." if math.isnan(effect) else
                          f"only differences above {effect * 100:.1f} points would show.")))
    return ABPlan(baseline_rate, delivery_rate, diff, need, per_variant, audience, effect, verdict)


__all__ = ["ABPlan", "ABTest", "ControlLift", "SampleRatio", "arm_counts", "data_reach",
           "evaluate_ab", "evaluate_lift", "family_adjusted", "lift_counts", "plan",
           "planned_shares"]
