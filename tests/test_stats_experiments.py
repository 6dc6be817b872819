"""A/B tests, control-group lift and sample sizes, checked against statsmodels and scipy
computed independently here, and read from a hand-built workspace."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from stats_world import (
    AB_T,
    add_broadcast,
    add_recipient,
    build_ab_world,
)
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    power_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from bizchat.analytics.stats import Stats, detectable_effect, sample_size
from bizchat.analytics.stats import proportions as P
from bizchat.analytics.stats.experiments import evaluate_ab, evaluate_lift, plan, planned_shares
from bizchat.errors import InvalidValue
from bizchat.ingest.webhooks import record_receipts as record_status_events

T = AB_T   # broadcast 9's scheduled time (stats_world.build_ab_world)
LATER = T + timedelta(days=10)  # past every outcome window


# --- the formulas against statsmodels / scipy -------------------------------------------------

CASES = [(300, 1000, 360, 1000), (12, 40, 25, 45), (0, 50, 3, 57), (5, 5, 3, 9), (1, 57, 27, 1093)]


@pytest.mark.parametrize("k1,n1,k2,n2", CASES)
def test_z_test_matches_statsmodels(k1, n1, k2, n2):
    z, p = P.two_proportion_z(k1, n1, k2, n2)
    z_sm, p_sm = proportions_ztest([k2, k1], [n2, n1])  # z of p2 - p1, pooled
    assert z == pytest.approx(z_sm) and p == pytest.approx(p_sm)


@pytest.mark.parametrize("k1,n1,k2,n2", CASES)
def test_difference_interval_matches_statsmodels_newcombe(k1, n1, k2, n2):
    low, high = P.diff_interval(k1, n1, k2, n2)
    low_sm, high_sm = confint_proportions_2indep(k2, n2, k1, n1, method="newcomb", compare="diff")
    assert (low, high) == pytest.approx((low_sm, high_sm))


def test_wilson_interval_matches_statsmodels():
    k, n = np.array([0, 3, 50, 99, 100]), np.array([10, 10, 100, 100, 100])
    low, high = P.wilson_interval(k, n, alpha=0.1)
    low_sm, high_sm = proportion_confint(k, n, alpha=0.1, method="wilson")
    assert low == pytest.approx(low_sm) and high == pytest.approx(high_sm)
    assert np.isnan(P.wilson_interval([0], [0])[0][0])


def test_undefined_tests_are_nan_not_errors():
    assert all(math.isnan(x) for x in P.two_proportion_z(0, 10, 0, 12))    # no variance
    assert all(math.isnan(x) for x in P.two_proportion_z(10, 10, 12, 12))  # 100 % both
    assert all(math.isnan(x) for x in P.two_proportion_z(0, 0, 3, 12))     # empty arm
    assert all(math.isnan(x) for x in P.diff_interval(1, 0, 3, 12))


@pytest.mark.slow
@settings(max_examples=20, deadline=None)   # statsmodels takes ~80 ms a call
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=1, max_size=8))
def test_holm_matches_statsmodels(pvalues):
    ours = P.holm(pvalues)
    valid = [p for p in pvalues if not math.isnan(p)]
    if valid:
        theirs = multipletests(valid, method="holm")[1]
        assert ours[~np.isnan(ours)] == pytest.approx(theirs)
    assert np.isnan(ours).sum() == len(pvalues) - len(valid)


def test_sample_ratio_matches_scipy_chisquare():
    observed, shares = [600, 400, 100], [0.45, 0.45, 0.1]
    chi2, p = P.sample_ratio(observed, shares)
    expected = np.array(shares) * 1100
    ref = sps.chisquare(observed, expected)
    assert (chi2, p) == pytest.approx((ref.statistic, ref.pvalue))


@pytest.mark.parametrize("baseline,mde,power,ratio", [(0.3, 0.05, 0.8, 1), (0.6, -0.04, 0.9, 1),
                                                       (0.03, 0.02, 0.9, 3), (0.02, 0.01, 0.8, 0.5)])
def test_sample_size_gives_the_power_statsmodels_computes(baseline, mde, power, ratio):
    n = sample_size(baseline, mde, power=power, ratio=ratio)
    # statsmodels: nobs1 is the arm with baseline + diff, the baseline arm has ratio * nobs1.
    def sm_power(n_baseline):
        return power_proportions_2indep(mde, baseline, n_baseline * ratio, ratio=1 / ratio).power
    assert sm_power(n) >= power > sm_power(n - 1)


def test_relative_mde_and_detectable_effect_invert_each_other():
    assert sample_size(0.4, 0.1, relative=True) == sample_size(0.4, 0.04)
    effect = detectable_effect(2000, 0.3)
    assert sample_size(0.3, effect) in (1999, 2000, 2001)
    assert math.isnan(detectable_effect(3, 0.5))  # nothing is detectable with 3 messages
    with pytest.raises(ValueError):
        sample_size(0.0, 0.05)


# --- A/B verdicts from counts -------------------------------------------------------------------

def counts(rows, last=T):
    """rows: (variant, assigned, delivered, read) tuples."""
    df = pd.DataFrame(rows, columns=["variant", "assigned", "delivered", "read"])
    return df.assign(replied=0, opted_out=0, last_send_at=pd.Timestamp(last))


def test_two_variants_significant():
    result = evaluate_ab(counts([("A", 1050, 1000, 300), ("B", 1040, 1000, 360)]), as_of=LATER)
    b = result.table.set_index("variant").loc["B"]
    z, p = proportions_ztest([360, 300], [1000, 1000])
    assert b["p_value"] == pytest.approx(p) and b["z"] == pytest.approx(z)
    assert b["p_adjusted"] == pytest.approx(p)  # one comparison: nothing to adjust
    assert b["diff"] == pytest.approx(0.06)
    assert (b["diff_ci_low"], b["diff_ci_high"]) == pytest.approx(
        confint_proportions_2indep(360, 1000, 300, 1000, method="newcomb", compare="diff"))
    assert b["significant"] is True
    assert result.final and result.baseline == "A"
    assert result.verdict.startswith("B has a higher open rate than A: 36.0% vs 30.0% (+6.0 points")
    assert "lower bounds" in result.verdict


def test_more_than_two_variants_are_holm_adjusted():
    rows = [("A", 800, 800, 240), ("B", 800, 800, 290), ("C", 800, 800, 262)]
    result = evaluate_ab(counts(rows), as_of=LATER)
    t = result.table.set_index("variant")
    raw = [proportions_ztest([k, 240], [800, 800])[1] for k in (290, 262)]
    assert t.loc[["B", "C"], "p_value"].tolist() == pytest.approx(raw)
    assert t.loc[["B", "C"], "p_adjusted"].tolist() == pytest.approx(multipletests(raw, method="holm")[1])
    assert "Holm-adjusted" in result.verdict
    assert t.loc["A", "is_baseline"] and pd.isna(t.loc["A", "p_value"])
    other = evaluate_ab(counts(rows), baseline="B", as_of=LATER).table.set_index("variant")
    assert other.loc["A", "diff"] == pytest.approx(-50 / 800)


def test_too_few_recipients_to_tell():
    # 8 messages per variant: fewer than 5 expected reads per arm, the normal
    # approximation does not hold, however far apart the rates look.
    thin = evaluate_ab(counts([("A", 8, 8, 2), ("B", 8, 8, 6)]), as_of=LATER)
    assert thin.verdict.startswith("Too few recipients to tell B from A")
    # 200 per variant, not significant, far below what a 5-point difference needs.
    small = evaluate_ab(counts([("A", 200, 200, 60), ("B", 200, 200, 70)]), as_of=LATER)
    assert small.verdict.startswith("Too few recipients to tell B from A")
    assert small.required_per_variant == sample_size(0.3, 0.05)
    assert f"{sample_size(0.3, 0.05):,}" in small.verdict
    # Plenty of messages and no difference: a real "no difference".
    big = evaluate_ab(counts([("A", 5000, 5000, 1500), ("B", 5000, 5000, 1510)]), as_of=LATER)
    assert big.verdict.startswith("No clear difference between B and A")


def test_results_are_read_at_the_fixed_horizon_not_before():
    early = evaluate_ab(counts([("A", 1000, 1000, 300), ("B", 1000, 1000, 400)]),
                        as_of=T + timedelta(hours=10))
    assert not early.final
    assert early.final_at == T + timedelta(hours=72)
    assert early.verdict.startswith("Too early to read")
    assert early.table["significant"].isna().all()  # no peeking through the table either
    assert evaluate_ab(counts([("A", 1000, 1000, 300), ("B", 1000, 1000, 400)]),
                       as_of=T + timedelta(hours=72)).final
    opt_out = evaluate_ab(counts([("A", 1000, 1000, 0), ("B", 1000, 1000, 0)]), metric="opt_out",
                          as_of=T + timedelta(days=5))
    assert not opt_out.final  # opt-outs are read after 7 days


def test_sample_ratio_mismatch_is_flagged():
    rows = [("A", 600, 600, 180), ("B", 400, 400, 120), ("control", 100, 0, 0)]
    shares = planned_shares([{"variant": "A", "share": 1}, {"variant": "B", "share": 1}], 0.1,
                            ["A", "B", "control"])
    assert shares == pytest.approx({"A": 0.45, "B": 0.45, "control": 0.1})
    result = evaluate_ab(counts(rows), shares=shares, as_of=LATER)
    assert result.srm.mismatch
    assert result.srm.p_value == pytest.approx(sps.chisquare([600, 400, 100], [495, 495, 110]).pvalue)
    assert result.verdict.startswith("Sample-ratio mismatch")
    fine = evaluate_ab(counts([("A", 505, 500, 150), ("B", 495, 490, 150)]), as_of=LATER)
    assert not fine.srm.mismatch and "matches the plan" in str(fine.srm)


def test_ab_needs_two_variants_and_a_known_metric():
    with pytest.raises(InvalidValue, match="at least two"):
        evaluate_ab(counts([("A", 10, 10, 3), ("control", 5, 0, 0)]))
    with pytest.raises(InvalidValue, match="Unknown metric"):
        evaluate_ab(counts([("A", 10, 10, 3), ("B", 10, 10, 3)]), metric="clicks")
    with pytest.raises(InvalidValue, match="No variant 'Z'"):
        evaluate_ab(counts([("A", 10, 10, 3), ("B", 10, 10, 3)]), baseline="Z")


# --- control lift from counts -------------------------------------------------------------------

def lift_counts(control, treated, last=T):
    """(assigned, replied_72h, replied_7d, opted_out) for control and each treated arm."""
    rows = [("control", *control[:1], 0, *control[1:])]
    rows += [(v, a, d, r72, r7, o) for v, (a, d, r72, r7, o) in treated.items()]
    df = pd.DataFrame(rows, columns=["variant", "assigned", "delivered", "replied_all",
                                     "replied_7d", "opted_out_all"])
    return df.assign(read=999, last_ref_at=pd.Timestamp(last))


def test_control_lift_with_ci_relative_lift_and_cost_per_incremental_reply():
    data = lift_counts((1000, 20, 25, 3), {"A": (9000, 8500, 360, 400, 36)})
    result = evaluate_lift(data, cost_per_delivered=0.1, as_of=LATER)
    r = result.table.set_index("outcome").loc["reply_72h"]
    assert (r["treated_rate"], r["control_rate"]) == pytest.approx((0.04, 0.02))
    assert r["lift"] == pytest.approx(0.02)
    assert (r["lift_ci_low"], r["lift_ci_high"]) == pytest.approx(
        confint_proportions_2indep(360, 9000, 20, 1000, method="newcomb", compare="diff"))
    assert r["p_value"] == pytest.approx(proportions_ztest([360, 20], [9000, 1000])[1])
    assert r["relative_lift"] == pytest.approx(1.0)
    assert r["incremental"] == pytest.approx(180)
    assert r["cost"] == pytest.approx(850)
    assert r["cost_per_incremental_reply"] == pytest.approx(850 / 180)
    o = result.table.set_index("outcome").loc["opt_out_7d"]
    assert o["lift"] == pytest.approx(0.004 - 0.003) and math.isnan(o["cost_per_incremental_reply"])
    assert result.verdict.startswith("The broadcast brought extra replies: 4.0% of recipients")
    assert "Cost per incremental reply: 4.72" in result.verdict
    assert not any("read" in c for c in result.table.columns)


def test_control_lift_never_looks_at_reads():
    base = lift_counts((1000, 20, 25, 3), {"A": (9000, 8500, 360, 400, 36)})
    other = base.assign(read=0)
    a = evaluate_lift(base, cost_per_delivered=0.1, as_of=LATER).table
    b = evaluate_lift(other, cost_per_delivered=0.1, as_of=LATER).table
    assert len(a) > 0 and a["lift"].notna().any()
    pd.testing.assert_frame_equal(a, b)


def test_control_lift_verdicts():
    few = evaluate_lift(lift_counts((50, 1, 1, 0), {"A": (500, 480, 15, 16, 1)}), as_of=LATER)
    assert few.verdict.startswith("Too few recipients to tell whether the broadcast brought extra replies")
    none = lift_counts((20000, 400, 500, 10), {"A": (20000, 19000, 402, 505, 12)})
    assert evaluate_lift(none, as_of=LATER).verdict.startswith("No measurable effect")
    early = evaluate_lift(none, as_of=T + timedelta(days=1))
    assert early.verdict.startswith("Too early to read") and not early.final
    no_gain = evaluate_lift(lift_counts((1000, 30, 30, 0), {"A": (1000, 990, 30, 30, 0)}),
                            cost_per_delivered=0.1, as_of=LATER).table
    assert math.isnan(no_gain.set_index("outcome").loc["reply_72h", "cost_per_incremental_reply"])
    per_variant = evaluate_lift(lift_counts((1000, 20, 25, 3), {"A": (4500, 4250, 180, 200, 18),
                                                                "B": (4500, 4250, 90, 100, 18)}),
                                by_variant=True, as_of=LATER)
    assert per_variant.table["arm"].unique().tolist() == ["A", "B"]
    with pytest.raises(InvalidValue, match="no control group"):
        evaluate_lift(lift_counts((0, 0, 0, 0), {"A": (100, 90, 3, 3, 0)}))


def test_plan_before_sending():
    p = plan(0.6, 0.05, delivery_rate=0.95, audience=3000, control_fraction=0.1)
    need = sample_size(0.6, 0.05)
    assert p.delivered_per_variant == need
    assert p.recipients_per_variant == math.ceil(need / 0.95)
    assert "too few to tell" in p.verdict
    assert p.detectable_effect == pytest.approx(detectable_effect(3000 * 0.9 / 2 * 0.95, 0.6))
    assert "enough" in plan(0.6, 0.05, audience=10_000).verdict


# --- from the workspace -------------------------------------------------------------------------

@pytest.fixture
def ab_world(ws):
    """The A/B world of stats_world.build_ab_world."""
    return build_ab_world(ws)


def test_ab_test_from_the_workspace(ab_world):
    stats = Stats(ab_world)
    result = stats.ab_test(9, as_of=LATER)
    t = result.table.set_index("variant")
    assert list(t.index) == ["A", "B"]  # the control group is not a variant
    assert t["delivered"].tolist() == [4, 4]
    assert t["outcome"].tolist() == [2, 3]  # 3's read after 80 h is outside the horizon
    assert result.srm.observed == {"A": 4, "B": 4, "control": 2}
    assert result.srm.expected == pytest.approx({"A": 4.5, "B": 4.5, "control": 1.0})
    assert result.verdict.startswith("Too few recipients to tell B from A")
    # The open-rate table counts every read, the A/B test only those within 72 h.
    assert stats.open_rates("variant").set_index("variant").loc["A", "read"] == 3
    reply = stats.ab_test(9, "reply", as_of=LATER).table.set_index("variant")
    assert reply["outcome"].tolist() == [1, 0]
    assert stats.ab_test(9, "opt_out", as_of=LATER).table["outcome"].tolist() == [0, 1]
    assert not stats.ab_test(9, as_of=T + timedelta(hours=1)).final


def test_control_lift_from_the_workspace_uses_the_scheduled_time(ab_world):
    stats = Stats(ab_world)
    result = stats.control_lift(9, cost_per_delivered=0.2, as_of=LATER)
    t = result.table.set_index("outcome")
    # Treated: 8 assigned, replies within 72 h: contact 1; within 7 days: 1 and 3.
    assert t.loc["reply_72h", ["treated_n", "treated_events"]].tolist() == [8, 1]
    assert t.loc["reply_7d", "treated_events"] == 2
    # Control: 2 assigned; 9 wrote 5 h after the scheduled time, 10's message was earlier.
    assert t.loc["reply_72h", ["control_n", "control_events"]].tolist() == [2, 1]
    assert t.loc["opt_out_7d", ["treated_events", "control_events"]].tolist() == [1, 0]
    assert t.loc["reply_72h", "lift"] == pytest.approx(1 / 8 - 1 / 2)
    assert t.loc["reply_72h", "cost"] == pytest.approx(0.2 * 8)
    assert math.isnan(t.loc["reply_72h", "cost_per_incremental_reply"])  # no gain: no price
    # Reads change nothing.
    with ab_world.transaction() as con:
        record_status_events(con, pd.DataFrame({
            "message_id": ["m9-4", "m9-8"], "status": ["read", "read"],
            "at": [T + timedelta(hours=2)] * 2}))
    again = stats.control_lift(9, cost_per_delivered=0.2, as_of=LATER).table
    pd.testing.assert_frame_equal(result.table, again)


def test_plan_ab_takes_the_baseline_from_history(ab_world):
    stats = Stats(ab_world)
    p = stats.plan_ab(0.1, audience=1000)
    # History: 8 delivered of 8 sent, 6 read (5, 6, 7, 1, 2 and 3's late read).
    assert p.baseline_rate == pytest.approx(6 / 8)
    assert p.delivery_rate == pytest.approx(1.0)
    assert p.delivered_per_variant == sample_size(0.75, 0.1)
    with pytest.raises(InvalidValue):
        stats.plan_ab(0.1, metric="clicks")


def test_lift_without_control_group_is_refused(ab_world):
    with ab_world.transaction() as con:
        add_broadcast(con, 10, 1, T)
        add_recipient(con, 10, 1, 1, sent_at=T, events=[("delivered", T)])
    with pytest.raises(InvalidValue, match="no control group"):
        Stats(ab_world).control_lift(10)
    with pytest.raises(InvalidValue, match="at least two"):
        Stats(ab_world).ab_test(10)
