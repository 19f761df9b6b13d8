"""Targets with three answers and change since the previous round, recomputed by hand, against R and by
simulation."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import change, domain_means, targets

# R 4.2: p <- c(...); print(sprintf("%.15g", p.adjust(p, "BH")))
R_P = [0.001, 0.008, 0.039, 0.041, 0.042, 0.060, 0.074, 0.205, 0.212, 0.216, 0.222, 0.251, 0.269, 0.275, 0.34,
       0.341, 0.384, 0.569, 0.594, 0.696, 0.762, 0.94, 0.942, 0.975, 0.986, 1]
R_BH = [0.026, 0.104, 0.2184, 0.2184, 0.2184, 0.26, 0.274857142857143, 0.510714285714286, 0.510714285714286,
        0.510714285714286, 0.510714285714286, 0.510714285714286, 0.510714285714286, 0.510714285714286, 0.554125,
        0.554125, 0.587294117647059, 0.812842105263158, 0.812842105263158, 0.9048, 0.943428571428572, 1, 1, 1, 1,
        1]
# p.adjust(c(0.04, 0.01, 0.03, 0.2, 0.005), "BH"): unsorted input keeps its order
R_Q = [0.04, 0.01, 0.03, 0.2, 0.005]
R_Q_BH = [0.05, 0.025, 0.05, 0.2, 0.025]


def test_benjamini_hochberg_equals_r_p_adjust():
    np.testing.assert_allclose(change.bh_adjust(R_P), R_BH, rtol=1e-12)
    np.testing.assert_allclose(change.bh_adjust(R_Q), R_Q_BH, rtol=1e-12)
    # a missing p-value is left out of the family, not counted as a test
    with_nan = change.bh_adjust([0.04, np.nan, 0.01, 0.03, 0.2, 0.005])
    assert np.isnan(with_nan[1])
    np.testing.assert_allclose(np.delete(with_nan, 1), R_Q_BH, rtol=1e-12)


def test_wilson_bounds_and_the_sample_a_decision_needs():
    lo, hi = targets.wilson_bounds(42 / 48, 48)
    assert (round(float(lo), 3), round(float(hi), 3)) == (0.776, 0.934)
    assert targets.needed_effective_n(0.95, 0.90) == 98
    assert targets.recommended_sample(98, 1.5) == 147
    assert targets.recommended_sample(98, 0.8) == 98  # a design effect under 1 never lowers the plan
    lo97, _ = targets.wilson_bounds(0.95, 97)
    lo98, _ = targets.wilson_bounds(0.95, 98)
    assert lo97 < 0.90 <= lo98
    assert targets.needed_effective_n(0.90, 0.90) is None
    # below the target: the upper bound must fall under it
    m = targets.needed_effective_n(0.80, 0.90)
    assert targets.wilson_bounds(0.80, m)[1] < 0.90 <= targets.wilson_bounds(0.80, m - 1)[1]


def _row(estimate, se, n, target, scale="share"):
    return {"agency": "X", "indicator": "i", "scale": scale, "estimate": estimate, "se": se, "n": n,
            "target": target}


def test_three_answers_at_their_exact_boundaries():
    # an SRS of 48 with 42 satisfied: SE² = p(1-p)/48, so n_eff = 48 and the bounds are Wilson's above
    p = 42 / 48
    se = 100 * math.sqrt(p * (1 - p) / 48)
    lo, hi = (100 * float(b) for b in targets.wilson_bounds(p, 48))
    cases = pd.DataFrame([_row(100 * p, se, 48, 90), _row(100 * p, se, 48, lo), _row(100 * p, se, 48, lo + 1e-9),
                          _row(100 * p, se, 48, hi), _row(100 * p, se, 48, hi + 1e-9),
                          _row(20.0, 0.5, 30, 20.0 - 1.6448536269514722 * 0.5, "points"),
                          _row(20.0, 0.5, 30, 20.5, "points"), _row(20.0, 0.5, 30, 21.0, "points"),
                          _row(np.nan, np.nan, 0, 90)])
    out = targets.target_verdicts(cases)
    assert out["verdict"].tolist() == [targets.CHUA_DU_CAN_CU, targets.DAT, targets.CHUA_DU_CAN_CU,
                                       targets.CHUA_DU_CAN_CU, targets.KHONG_DAT, targets.DAT,
                                       targets.CHUA_DU_CAN_CU, targets.KHONG_DAT, None]
    # a point estimate above the target is not "Đạt" by itself: 91.7 % of 12 cannot show ≥ 90 %
    small = targets.target_verdicts(pd.DataFrame([_row(100 * 11 / 12, 100 * math.sqrt(11 / 144 / 12), 12, 90)]))
    assert small["verdict"].iloc[0] == targets.CHUA_DU_CAN_CU
    assert small["n_eff_needed"].iloc[0] > 12


def test_most_specific_target_applies():
    agencies = pd.DataFrame({"agency": ["SNV", "SXD", "TAMKY"], "agency_kind": ["department", "department",
                                                                                "district"]})
    rules = [{"indicator": "satisfaction", "at_least": 90},
             {"indicator": "satisfaction", "at_least": 85, "agencies": ["SXD"]},
             {"indicator": "survey_points", "at_least": 20, "kinds": ["district"]}]
    got = targets.assign_targets(agencies, rules)
    assert sorted(map(tuple, got[["agency", "indicator", "target"]].to_numpy().tolist())) == [
        ("SNV", "satisfaction", 90.0), ("SXD", "satisfaction", 85.0), ("TAMKY", "satisfaction", 90.0),
        ("TAMKY", "survey_points", 20.0)]


def test_merged_baseline_and_change_verdicts_by_hand():
    est, se = change.combine_baseline([80.0, 60.0], [4.0, 6.0], [30, 10])
    assert est == pytest.approx(0.75 * 80 + 0.25 * 60)
    assert se == pytest.approx(math.sqrt(0.75 ** 2 * 16 + 0.25 ** 2 * 36))
    assert np.isnan(change.combine_baseline([80.0, np.nan], [4.0, 6.0], [30, 10])[0])
    pairs = pd.DataFrame({"agency": ["A", "B", "C", "D"], "indicator": "satisfaction",
                          "before": [70.0, 70.0, 70.0, 70.0], "before_se": [3.0, 3.0, 3.0, np.nan],
                          "after": [85.0, 64.0, 60.0, 80.0], "after_se": [4.0, 4.0, 3.0, 4.0]})
    out = change.compare(pairs)
    d_se = math.sqrt(9 + 16)
    assert out["diff_se"].iloc[0] == pytest.approx(d_se)
    p = [2 * (1 - _phi(15 / 5)), 2 * (1 - _phi(6 / 5)), 2 * (1 - _phi(10 / math.sqrt(18)))]
    np.testing.assert_allclose(out["p_value"].iloc[:3], p, rtol=1e-9)
    np.testing.assert_allclose(out["p_adjusted"].iloc[:3], change.bh_adjust(p))
    assert out["change"].tolist() == [change.IMPROVED, change.NO_CHANGE, change.DECLINED, None]
    # the intervals of C overlap (70 ± 5.9 and 60 ± 5.9), yet the difference is clear
    assert 70 - 1.96 * 3 < 60 + 1.96 * 3


def _phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_rank_moves_only_beyond_its_interval():
    assert change.rank_moved((3, 6), (5, 9)) is False
    assert change.rank_moved((1, 2), (4, 7)) is True
    assert change.rank_moved((1, pd.NA), (4, 7)) is None


def _round(rng, p, reps, n):
    """Per replication and agency, n respondents each answering 4 satisfaction items positive with chance p."""
    agencies = len(p)
    y = rng.binomial(4, np.repeat(p, n)[None, :].repeat(reps, 0)) / 4
    return pd.DataFrame({"rep": np.repeat(np.arange(reps), agencies * n),
                         "agency": np.tile(np.repeat(np.arange(agencies), n), reps),
                         "unit": np.arange(reps * agencies * n), "y": y.ravel()})


def _estimates(frame):
    est = domain_means(frame, "y", ["rep", "agency"], psu="unit")
    return est["est"].to_numpy() * 100, est["se"].to_numpy() * 100


def test_interval_of_a_change_covers_the_true_change_about_95_percent():
    """Two independent rounds, 12 agencies whose true satisfaction moves by known amounts, 400 replications:
    the 95 % interval of the difference covers the true change in about 95 % of the 4,800 cases."""
    rng = np.random.default_rng(20)
    p1 = np.linspace(0.55, 0.92, 12)
    p2 = np.clip(p1 + np.linspace(-0.1, 0.1, 12), 0, 1)
    reps, n = 400, 40
    b, b_se = _estimates(_round(rng, p1, reps, n))
    a, a_se = _estimates(_round(rng, p2, reps, n))
    pairs = pd.DataFrame({"agency": np.tile(np.arange(12), reps), "indicator": np.repeat(np.arange(reps), 12),
                          "before": b, "before_se": b_se, "after": a, "after_se": a_se})
    out = change.compare(pairs)
    truth = np.tile(100 * (p2 - p1), reps)
    covered = (out["diff_ci_lo"] <= truth) & (truth <= out["diff_ci_hi"])
    assert 0.935 <= covered.mean() <= 0.965, covered.mean()


def test_independent_se_is_conservative_for_an_overlapping_panel():
    """The same respondents answer both rounds (half of them keep their answers): the independent SE
    overstates the true spread of the difference, never understates it."""
    rng = np.random.default_rng(21)
    p = np.full(6, 0.8)
    reps, n = 400, 40
    first = _round(rng, p, reps, n)
    second = _round(rng, p, reps, n)
    keep = rng.random(len(first)) < 0.5
    second["y"] = np.where(keep, first["y"], second["y"])
    b, b_se = _estimates(first)
    a, a_se = _estimates(second)
    diff = (a - b).reshape(reps, 6)
    se = np.sqrt(a_se ** 2 + b_se ** 2).reshape(reps, 6)
    assert se.mean() >= diff.std(axis=0, ddof=1).mean() * 1.2


def test_next_round_sample_from_the_continued_round():
    """95 % at n_eff 98 observed on 147 respondents (design effect 1.5): a true 95 % against 90 % needs 98
    effective, 147 respondents; capped by a smaller population; nothing for a withheld or unmatched agency."""
    se95 = 100 * math.sqrt(0.95 * 0.05 / 98)
    before = pd.DataFrame({
        "agency": ["A", "B1", "B2", "C", "D"], "agency_kind": ["so"] * 5,
        "satisfaction": [95.0, 80.0, 100.0, 90.0, 70.0], "satisfaction_se": [se95, 4.0, np.nan, 3.0, 5.0],
        "survey_points": [np.nan] * 5, "survey_points_se": [np.nan] * 5, "n": [147, 100, 100, 60, 30],
        "withheld": [False, False, False, False, True]})
    now = pd.DataFrame({"agency": ["A", "A2", "B", "C", "D", "E"], "agency_kind": ["so"] * 6,
                        "population": [1000, 100, np.nan, 80, 50, 40]})
    mapping = {"A": ["A"], "A2": ["A"], "B": ["B1", "B2"], "C": ["C"], "D": ["D"]}
    out = targets.next_round_samples(before, mapping, now, [{"indicator": "satisfaction", "at_least": 90}])
    out = out.set_index("agency")
    assert list(out.index) == ["A", "A2", "B", "C"]  # D continues a withheld agency, E nothing
    assert out.loc["A", "design_effect"] == pytest.approx(1.5)
    assert out.loc["A", "n_needed"] == 147 and out.loc["A", "sample"] == 147
    assert out.loc["A2", "n_needed"] == 147 and out.loc["A2", "sample"] == 100  # a census of 100
    # a merger: the respondent-weighted 90 %, with SE (4 / 2) from the part that varies, sits on the target
    assert out.loc["B", "estimate"] == pytest.approx(90) and pd.isna(out.loc["B", "n_needed"])
    assert pd.isna(out.loc["B", "sample"]) and pd.isna(out.loc["C", "sample"])
    none = targets.next_round_samples(before, {}, now, [{"indicator": "satisfaction", "at_least": 90}])
    assert none.empty and "sample" in none
