"""The pipeline's precision: finite population correction from the cells' populations, each estimate's own
degrees of freedom, an interval when every answer agrees, precision reasons per indicator, the variance minimum."""
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from analysis import DEFAULT_PRECISION, precision_reasons, score_round, validate_settings
from tests.analysis.test_scoring import ITEMS, SCALES, SETTINGS


def _round(seed=5, cc=(8, 6, 4), hd=10, satisfied=None):
    """CC-CT sheets about S1, S2, S3 (one quota cell each) and HĐ-CT sheets rating all three (one cell).
    *satisfied*: an agency whose every satisfaction answer is positive."""
    rng = np.random.default_rng(seed)
    rows = []
    for t, n in zip(("S1", "S2", "S3"), cc):
        for r in range(n):
            for item in ("I01", "I02", "I20", "I21"):
                opt = "5" if (item == "I21" and t == satisfied) else str(rng.choice(SCALES[_scale(item)]))
                rows.append((f"c{t}{r}", t, "CC-CT", item, opt, f"CC-CT/{t}"))
    for r in range(hd):
        for t in ("S1", "S2", "S3"):
            for item in ("E01", "E18"):
                opt = "4" if (item == "E18" and t == satisfied) else str(rng.choice(SCALES[_scale(item)]))
                rows.append((f"h{r}", t, "HĐ-CT", item, opt, "HĐ-CT"))
    a = pd.DataFrame(rows, columns=["response_id", "agency", "group", "item", "option", "stratum"])
    a.insert(2, "agency_kind", "department")
    return a


def _scale(item):
    return ITEMS.set_index("item").loc[item, "scale"]


def test_known_populations_give_the_finite_population_correction_and_unknown_ones_none():
    a = _round()
    plain = score_round(a, items=ITEMS, scales=SCALES, settings=SETTINGS)
    # CC-CT cells: 16, 12 and 3 staff (3 < 4 sheets of S3: unusable, no correction); HĐ-CT unknown
    staff = {"CC-CT/S1": 16.0, "CC-CT/S2": 12.0, "CC-CT/S3": 3.0}
    res = score_round(a.assign(population=a["stratum"].map(staff)), items=ITEMS, scales=SCALES, settings=SETTINGS)
    cells = res.cells.set_index("stratum")
    assert cells.loc["CC-CT/S1", ["respondents", "population", "fraction"]].tolist() == [8, 16.0, 0.5]
    assert cells.loc["CC-CT/S3", "fraction"] == 0 and cells.loc["HĐ-CT", "fraction"] == 0
    assert np.isnan(cells.loc["HĐ-CT", "population"])
    # CC-CT alone (one cell per agency): half of S1's cell sampled halves its variance
    cc_only = a[a["group"] == "CC-CT"]
    one = score_round(cc_only, items=ITEMS, scales=SCALES, settings=SETTINGS).estimates.set_index(
        ["agency", "criterion"])
    fpc = score_round(cc_only.assign(population=cc_only["stratum"].map(staff)), items=ITEMS, scales=SCALES,
                      settings=SETTINGS).estimates.set_index(["agency", "criterion"])
    assert_allclose(fpc.loc["S1", "se"], one.loc["S1", "se"] * np.sqrt(1 - 8 / 16), rtol=1e-12)
    assert_allclose(fpc.loc["S2", "se"], one.loc["S2", "se"] * np.sqrt(1 - 6 / 12), rtol=1e-12)
    assert_allclose(fpc.loc["S3", "se"], one.loc["S3", "se"], rtol=1e-12)
    # the estimates themselves do not move
    assert_allclose(res.points["score"], plain.points["score"], rtol=0)
    with pytest.raises(ValueError, match="population"):
        score_round(a.assign(population=0.0), items=ITEMS, scales=SCALES, settings=SETTINGS)


def test_each_estimate_has_the_degrees_of_freedom_of_the_sheets_it_rests_on():
    a = _round()
    # without HĐ-CT's A1 answers, S1's A1 rests on CC-CT alone (8 sheets, one cell): df 7, not the agency's 16
    b = a[~((a["group"] == "HĐ-CT") & (a["item"] == "E01"))]
    est = score_round(b, items=ITEMS, scales=SCALES, settings=SETTINGS).estimates.set_index(["agency", "criterion"])
    assert est.loc[("S1", "A1"), "df"] == 8 - 1
    assert est.loc[("S1", "A8"), "df"] == 8 + 10 - 2
    half = est.loc[("S1", "A1"), "ci_hi"] - est.loc[("S1", "A1"), "est"]
    assert_allclose(half, stats.t.ppf(0.975, 7) * est.loc[("S1", "A1"), "se"], rtol=1e-12)
    tot = score_round(b, items=ITEMS, scales=SCALES, settings=SETTINGS).totals.set_index("agency")
    assert tot.loc["S1", "survey_points_df"] == 8 + 10 - 2


def test_all_positive_answers_get_a_korn_graubard_interval_with_the_kinds_design_effect():
    a = _round(satisfied="S2", cc=(8, 8, 8), hd=12)
    res = score_round(a, items=ITEMS, scales=SCALES, settings=SETTINGS)
    sat = res.satisfaction.set_index("agency")
    assert sat.loc["S2", "satisfaction"] == 100
    assert np.isnan(sat.loc["S2", "satisfaction_se"])   # not estimable, never 0
    others = sat.drop("S2")
    v = (others["satisfaction_se"] / 100) ** 2
    deff = max(1.0, v.sum() / (v / others["satisfaction_deff"]).sum())
    n, df = sat.loc["S2", "satisfaction_n"], sat.loc["S2", "satisfaction_df"]
    n_eff = n / deff * (stats.t.ppf(0.025, n - 1) / stats.t.ppf(0.025, df)) ** 2
    assert_allclose(sat.loc["S2", "satisfaction_ci_lo"], 100 * stats.beta.ppf(0.025, n_eff, 1), rtol=1e-12)
    assert sat.loc["S2", "satisfaction_ci_hi"] == 100 and sat.loc["S2", "satisfaction_ci_lo"] < 100 * (0.025 ** (1 / n))


def test_precision_reasons_name_every_rule_that_fails():
    rules = {"min_n": 10, "min_n_eff": 10, "min_df": 8}
    reasons = precision_reasons(
        [0.5, 0.5, 0.5, 0.5, 0.5, np.nan], [0.01, 0.01, 0.01, 0.01, 0.2, np.nan], [0.48, 0.48, 0.48, 0.48, 0.1, 0],
        [0.52, 0.52, 0.52, 0.52, 0.9, 1], 1.0, n=[30, 5, 30, 30, 30, 1], n_eff=[30, 5, 6, 30, 30, 1],
        df=[29, 4, 29, 3, 29, 0], lonely=[False, False, False, False, False, True], max_half_width=0.1, **rules)
    assert reasons.tolist() == ["", "it_nguoi_tra_loi,mau_hieu_dung_nho,it_bac_tu_do", "mau_hieu_dung_nho",
                                "it_bac_tu_do", "khoang_rong", ""]


def test_every_indicator_says_why_it_is_not_reliable():
    a = _round(cc=(12, 12, 6), hd=12)
    settings = {**SETTINGS, "precision": {"min_n": 20, "min_df": 8}}
    res = score_round(a, items=ITEMS, scales=SCALES, settings=settings)
    pts = res.points.set_index(["agency", "criterion"])
    flagged = pts["reliability"] != ""
    assert (pts["flag"].str.contains("tin_cay_thap") == flagged).all()
    # S3 rests on 6 + 12 sheets, S1 and S2 on 24: only S3's criteria have too few respondents
    few = pts["reliability"].str.contains("it_nguoi_tra_loi")
    assert few.loc["S3"].all() and not few.loc[["S1", "S2"]].any()
    sat = res.satisfaction.set_index("agency")["reliability"]
    assert "it_nguoi_tra_loi" in sat["S3"] and "it_nguoi_tra_loi" not in sat["S1"]
    assert "reliability" in res.totals.columns
    assert validate_settings(settings, items=ITEMS, scales=SCALES).precision == {**DEFAULT_PRECISION, "min_n": 20,
                                                                                 "min_df": 8}
    with pytest.raises(ValueError, match=r"settings\['precision'\] has unknown key"):
        validate_settings({**SETTINGS, "precision": {"min_sheets": 3}}, items=ITEMS, scales=SCALES)
    with pytest.raises(ValueError, match="max_half_width_pct"):
        validate_settings({**SETTINGS, "precision": {"max_half_width_pct": 2}}, items=ITEMS, scales=SCALES)


def test_a_group_under_the_variance_minimum_does_not_count():
    a = _round(cc=(3, 8, 8))
    res = score_round(a, items=ITEMS, scales=SCALES, settings={**SETTINGS, "min_variance_responses": 4})
    pts = res.points.set_index(["agency", "criterion"])
    assert pts.loc[("S1", "A1"), "missing_groups"] == "CC-CT" and "thieu_du_lieu" in pts.loc[("S1", "A1"), "flag"]
    assert pts.loc[("S2", "A1"), "missing_groups"] == ""
    with pytest.raises(ValueError, match="min_variance_responses"):
        validate_settings({**SETTINGS, "min_variance_responses": 0}, items=ITEMS, scales=SCALES)


def test_a_round_whose_every_group_is_withheld_still_scores():
    a = _round(cc=(2, 2, 2), hd=2)
    res = score_round(a, items=ITEMS, scales=SCALES, settings={**SETTINGS, "min_group": 5})
    assert res.points["score"].isna().all() and res.totals["survey_points"].isna().all()
    assert res.cells.empty
