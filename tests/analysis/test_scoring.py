"""Scoring (methodology §5.5): hand-computed example, flags, settings validation."""
import copy

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from analysis import (
    ANSWER_COLUMNS,
    FLAG_MISSING_GROUP,
    FLAG_NO_DATA,
    coefficient_preset,
    item_values,
    score_round,
)

ITEMS = pd.DataFrame({
    "item": ["I01", "I02", "I20", "I21", "E01", "E18"],
    "scale": ["DG4", "DG4", "TS4", "HL5", "DG4", "HL5"],
    "criterion": ["A1", "A1", "A8", "A8", "A1", "A8"],
})
SCALES = {"DG4": ["1", "2", "3", "4"], "TS4": ["1", "2", "3", "4"], "HL5": ["1", "2", "3", "4", "5"]}
SETTINGS = {
    "coefficients": {"DG4": "linear", "TS4": "linear", "HL5": "linear"},
    "max_points": {"department": {"A1": 4, "A8": 2}},
    "group_weights": {"department": {"CC-CT": 0.6, "HĐ-CT": 0.4}},
    "min_respondents": {"CC-CT": 2, "HĐ-CT": 1},
    "satisfaction_scale": "HL5",
    "positive": {"DG4": ["3", "4"], "HL5": ["4", "5"], "TS4": ["3", "4"]},
}


def _answers():
    rows = [
        # two CC-CT responses about S1
        ("r1", "S1", "CC-CT", "I01", "4"), ("r1", "S1", "CC-CT", "I02", "3"), ("r1", "S1", "CC-CT", "I20", "2"),
        ("r1", "S1", "CC-CT", "I21", "5"),
        ("r2", "S1", "CC-CT", "I01", "2"), ("r2", "S1", "CC-CT", "I02", "K"), ("r2", "S1", "CC-CT", "I20", "4"),
        ("r2", "S1", "CC-CT", "I21", "3"),
        # one HĐ-CT matrix response rating S1 and S2
        ("h1", "S1", "HĐ-CT", "E01", "3"), ("h1", "S1", "HĐ-CT", "E18", "4"),
        ("h1", "S2", "HĐ-CT", "E01", "1"), ("h1", "S2", "HĐ-CT", "E18", "K"),
        # S3: only excluded answers
        ("h1", "S3", "HĐ-CT", "E01", "K"), ("h1", "S3", "HĐ-CT", "E18", None),
    ]
    a = pd.DataFrame(rows, columns=["response_id", "agency", "group", "item", "option"])
    a.insert(2, "agency_kind", "department")
    return a


def test_hand_computed_example():
    res = score_round(_answers(), items=ITEMS, scales=SCALES, settings=SETTINGS)
    pts = res.points.set_index(["agency", "criterion"])
    # A1 (DG4 linear 0, 1/3, 2/3, 1):
    #   r1: (1 + 2/3)/2 = 5/6; r2: "2" -> 1/3 ("K" excluded); CC-CT mean = (5/6 + 1/3)/2 = 7/12, n = 2 >= 2
    #   h1: "3" -> 2/3; HĐ-CT mean = 2/3, n = 1 >= 1
    #   S = (.6 * 7/12 + .4 * 2/3) / 1 = 0.35 + 0.266667 = 0.616667; points = round(4 * S, 2) = 2.47
    assert_allclose(pts.loc[("S1", "A1"), "score"], 0.6 * 7 / 12 + 0.4 * 2 / 3)
    assert pts.loc[("S1", "A1"), "points"] == 2.47
    # A8: r1: TS4 "2" -> 1/3, HL5 "5" -> 1 -> 2/3; r2: TS4 "4" -> 1, HL5 "3" -> .5 -> .75; CC-CT = 17/24
    #   h1: HL5 "4" -> .75; S = .6 * 17/24 + .4 * .75 = .425 + .3 = .725; points = round(2 * .725, 2) = 1.45
    assert_allclose(pts.loc[("S1", "A8"), "score"], 0.725)
    assert pts.loc[("S1", "A8"), "points"] == 1.45
    tot = res.totals.set_index("agency")
    assert tot.loc["S1", "survey_points"] == pytest.approx(2.47 + 1.45)
    # TLHL: CC-CT 1 of 2 HL5 answers in {4,5} -> .5; HĐ-CT 1 of 1 -> 1; 100 * (.6 * .5 + .4 * 1) = 70
    assert tot.loc["S1", "satisfaction"] == pytest.approx(70.0)
    # TLTC over DG4 + TS4: CC-CT positives I01 "4", I02 "3", I20 "4" of 5 valid -> .6; HĐ-CT E01 "3" -> 1
    #   100 * (.6 * .6 + .4 * 1) = 76
    assert tot.loc["S1", "tltc"] == pytest.approx(76.0)
    # the design-based estimate reproduces S(t, c)
    est = res.estimates.set_index(["agency", "criterion"])
    assert_allclose(est.loc[("S1", "A1"), "est"], pts.loc[("S1", "A1"), "score"], rtol=1e-12)
    assert_allclose(est.loc[("S1", "A1"), "points_est"], 4 * pts.loc[("S1", "A1"), "score"], rtol=1e-12)
    sat = res.satisfaction_groups.set_index(["agency", "group"])
    assert sat.loc[("S1", "CC-CT"), "ci_lo"] < 0.5 < sat.loc[("S1", "CC-CT"), "ci_hi"]


def test_group_renormalisation_flag_and_nan_without_data():
    res = score_round(_answers(), items=ITEMS, scales=SCALES, settings=SETTINGS)
    pts = res.points.set_index(["agency", "criterion"])
    # S2: only HĐ-CT -> S = its mean (weights renormalised over qualifying groups), flagged
    assert pts.loc[("S2", "A1"), "score"] == 0.0 and pts.loc[("S2", "A1"), "points"] == 0.0
    assert pts.loc[("S2", "A1"), "flag"].split(",") == [FLAG_MISSING_GROUP, "tin_cay_thap"]  # one response
    assert pts.loc[("S2", "A1"), "missing_groups"] == "CC-CT"
    # S3 has no valid answer at all: NaN and flag, never 0
    for crit in ("A1", "A8"):
        assert np.isnan(pts.loc[("S3", crit), "points"]) and pts.loc[("S3", crit), "flag"] == FLAG_NO_DATA
    tot = res.totals.set_index("agency")
    assert np.isnan(tot.loc["S3", "survey_points"]) and tot.loc["S3", "flag"] == FLAG_NO_DATA
    assert np.isnan(tot.loc["S2", "survey_points"])  # A8 has no valid answer for S2
    assert set(res.flags.query("indicator != 'tltc' and flag != 'tin_cay_thap'")["agency"]) == {"S2", "S3"}
    # S1 rests on two CC-CT responses and one HĐ-CT response: its intervals are far wider than ±10 % of the scale
    assert pts.loc[("S1", "A1"), "flag"] == "tin_cay_thap"
    # the A8 positive rate of S1 comes from CC-CT only (HĐ-CT has no TS4 item): renormalised + flagged
    rates = res.positive_rates.set_index(["agency", "criterion"])
    assert rates.loc[("S1", "A8"), "flag"] == FLAG_MISSING_GROUP
    assert rates.loc[("S3", "ALL"), "flag"] == FLAG_NO_DATA and np.isnan(rates.loc[("S3", "ALL"), "tltc"])


def test_small_group_below_n_min_is_dropped():
    a = _answers()
    a = a[a["response_id"] != "r2"]  # CC-CT now has one response < n_min = 2
    pts = score_round(a, items=ITEMS, scales=SCALES, settings=SETTINGS).points.set_index(["agency", "criterion"])
    assert_allclose(pts.loc[("S1", "A1"), "score"], 2 / 3)  # HĐ-CT only
    assert pts.loc[("S1", "A1"), "flag"].split(",") == [FLAG_MISSING_GROUP, "tin_cay_thap"]  # one response


def test_presets_and_item_values():
    assert coefficient_preset(["1", "2", "3", "4"], "ratio") == {"1": 0.25, "2": 0.5, "3": 0.75, "4": 1.0}
    assert coefficient_preset(["0", "1"], "linear") == {"0": 0.0, "1": 1.0}
    with pytest.raises(ValueError, match="unknown coefficient preset"):
        coefficient_preset(["1", "2"], "log")
    coef = {"DG4": {"1": 0.0, "2": 0.33, "3": 0.67, "4": 1.0, "K": None}}
    a = pd.DataFrame({"item": ["I01"] * 4, "option": ["3", "K", "", None]})
    assert_allclose(item_values(a, coef, {"I01": "DG4"}), [0.67, np.nan, np.nan, np.nan])
    with pytest.raises(ValueError, match="not an option of scale"):
        item_values(a.assign(option="7"), coef, {"I01": "DG4"})
    with pytest.raises(ValueError, match="not in the item table"):
        item_values(a, coef, {})


def test_explicit_coefficients_and_top2():
    s = copy.deepcopy(SETTINGS)
    s["coefficients"]["DG4"] = {"1": 0, "2": 0.33, "3": 0.67, "4": 1}
    pts = score_round(_answers(), items=ITEMS, scales=SCALES, settings=s).points.set_index(["agency", "criterion"])
    assert_allclose(pts.loc[("S1", "A1"), "score"], 0.6 * ((1 + 0.67) / 2 + 0.33) / 2 + 0.4 * 0.67)
    s["coefficients"]["DG4"] = "top2"
    pts = score_round(_answers(), items=ITEMS, scales=SCALES, settings=s).points.set_index(["agency", "criterion"])
    assert_allclose(pts.loc[("S1", "A1"), "score"], 0.6 * (1 + 0) / 2 + 0.4 * 1)


def _bad(path, value):
    s = copy.deepcopy(SETTINGS)
    target = s
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return s


@pytest.mark.parametrize("settings, msg", [
    (_bad(["group_weights", "department"], {"CC-CT": 0, "HĐ-CT": 0}), r"group_weights'\]\['department'\] sums to 0"),
    (_bad(["max_points", "department", "A5"], 3), "criterion 'A5'.*has no items"),
    (_bad(["coefficients", "TS4"], KeyError), "scale 'TS4'.*no entry in settings\\['coefficients'\\]"),
    (_bad(["coefficients", "TS4"], "cubic"), "unknown preset 'cubic'"),
    (_bad(["min_respondents", "HĐ-CT"], 0), "min_respondents'\\]\\['HĐ-CT'\\] must be an integer >= 1"),
    (_bad(["lonely_psu"], "drop"), "lonely_psu'\\] must be one of"),
    (_bad(["positive", "HL5"], ["9"]), "unknown options"),
    (_bad(["satisfaction_scale"], KeyError), "lacks key"),
])
def test_bad_settings(settings, msg):
    with pytest.raises(ValueError, match=msg):
        score_round(_answers(), items=ITEMS, scales=SCALES, settings=settings)


def test_bad_answers():
    with pytest.raises(ValueError, match="missing column"):
        score_round(_answers().drop(columns="group"), items=ITEMS, scales=SCALES, settings=SETTINGS)
    with pytest.raises(ValueError, match="agency kind"):
        score_round(_answers().assign(agency_kind="province"), items=ITEMS, scales=SCALES, settings=SETTINGS)
    with pytest.raises(TypeError, match="strings"):
        a = _answers()
        a["option"] = 1
        score_round(a, items=ITEMS, scales=SCALES, settings=SETTINGS)


def test_inputs_not_mutated_and_categoricals_give_same_result():
    a = _answers()
    before = a.copy()
    r1 = score_round(a, items=ITEMS, scales=SCALES, settings=SETTINGS)
    pd.testing.assert_frame_equal(a, before)
    r2 = score_round(a.astype("category"), items=ITEMS, scales=SCALES, settings=SETTINGS)
    assert_allclose(r1.points["points"], r2.points["points"])


def test_estimates_match_domain_means_with_group_weights():
    rng = np.random.default_rng(0)
    rows = []
    for r in range(60):
        grp = ["CC-CT", "HĐ-CT"][r % 2]
        targets = ["S1", "S2", "S3"] if grp == "HĐ-CT" else [f"S{r % 3 + 1}"]
        for t in targets:
            for item in (["I01", "I02", "I21"] if grp == "CC-CT" else ["E01", "E18"]):
                opts = SCALES[ITEMS.set_index("item").loc[item, "scale"]]
                rows.append((f"r{r}", t, "department", grp, item, str(rng.choice(opts + ["K"]))))
    a = pd.DataFrame(rows, columns=["response_id", "agency", "agency_kind", "group", "item", "option"])
    res = score_round(a, items=ITEMS, scales=SCALES, settings=SETTINGS)
    est = res.estimates.set_index(["agency", "criterion"])
    pts = res.points.set_index(["agency", "criterion"])
    assert_allclose(est["est"], pts.loc[est.index, "score"], rtol=1e-12)
    # HĐ-CT responses rate all three agencies: the totals are correlated
    cov = res.total_covariance.to_numpy()
    assert np.all(np.isfinite(cov)) and np.abs(cov - np.diag(np.diag(cov))).max() > 0
    assert_allclose(np.sqrt(np.diag(cov)), res.totals.set_index("agency")["survey_points_se"], rtol=1e-12)
    # the SE of a criterion is the fixed-share composite's, computed here independently with pandas
    assert_allclose(est.xs("A1", level="criterion")["se"], _composite_se(res, "A1"), rtol=1e-12)


def _composite_se(res, criterion):
    """SE of S = Σ_g a_g M_g, a_g = w_g / Σ_qualifying w_g: z = a_g (m − M_g) / n_g per response, summed per
    respondent (PSU) within stratum; V = Σ_h n_h/(n_h − 1) Σ_p (Z_hp − Z̄_h)², n_h over all the stratum's
    respondents (those not rating the agency have Z = 0)."""
    sc = res.respondent_scores
    gm = res.group_means.query("criterion == @criterion").set_index(["agency", "group"])
    rows = sc[sc[criterion].notna()].copy()
    gw = SETTINGS["group_weights"]["department"]
    qualifies = {(t, g): gm.loc[(t, g), "n"] >= SETTINGS["min_respondents"][g] for t, g in gm.index}
    total_w = {t: sum(gw[g] for (t2, g), ok in qualifies.items() if t2 == t and ok) for t in gm.index.levels[0]}
    rows["z"] = [gw[g] / total_w[t] * (y - gm.loc[(t, g), "mean"]) / gm.loc[(t, g), "n"] if qualifies[(t, g)] else 0.0
                 for t, g, y in zip(rows["agency"], rows["group"], rows[criterion])]
    z = rows.pivot_table(index=["stratum", "response_id"], columns="agency", values="z", aggfunc="sum")
    psus = sc[["stratum", "response_id"]].drop_duplicates().set_index(["stratum", "response_id"]).index
    z = z.reindex(psus).fillna(0.0)
    var = 0.0
    for _, block in z.groupby(level="stratum"):
        n_h = len(block)
        var = var + n_h / (n_h - 1) * ((block - block.mean()) ** 2).sum()
    return np.sqrt(var.sort_index()).to_numpy()


def _random_answers(seed=1, n_responses=80):
    """Random responses (some HĐ-CT responses rate several agencies), with blanks, "" and excluded answers."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_responses):
        grp = ["CC-CT", "HĐ-CT"][r % 2]
        targets = ["S1", "S2", "S3"] if grp == "HĐ-CT" else [f"S{r % 3 + 1}"]
        for t in targets:
            for item in (["I01", "I02", "I20", "I21"] if grp == "CC-CT" else ["E01", "E18"]):
                opts = SCALES[ITEMS.set_index("item").loc[item, "scale"]]
                rows.append((r, t, "department", grp, item, rng.choice(opts + ["K", "", None])))
    return pd.DataFrame(rows, columns=["response_id", "agency", "agency_kind", "group", "item", "option"])


def _naive_scores(a):
    """m(r, c) by a plain pandas group-by over (response_id, agency, criterion)."""
    coef = {s: coefficient_preset(opts, "linear") for s, opts in SCALES.items()}
    meta = ITEMS.set_index("item")
    v = [coef[meta.loc[i, "scale"]].get(o, np.nan) if isinstance(o, str) else np.nan
         for i, o in zip(a["item"], a["option"])]
    long = a.assign(v=v, criterion=a["item"].map(meta["criterion"]))
    means = long.groupby(["response_id", "agency", "criterion"], observed=True)["v"].mean()
    return means.unstack("criterion")


@pytest.mark.parametrize("layout", ["grouped", "shuffled", "string ids", "categorical"])
def test_respondent_scores_do_not_depend_on_row_order_or_column_types(layout):
    a = _random_answers()
    if layout == "shuffled":  # units split into many runs of rows
        a = a.sample(frac=1, random_state=3).reset_index(drop=True)
    elif layout == "string ids":
        a["response_id"] = "r" + a["response_id"].astype(str)
    elif layout == "categorical":
        a = a.astype({c: "category" for c in ANSWER_COLUMNS})
    res = score_round(a, items=ITEMS, scales=SCALES, settings=SETTINGS)
    got = res.respondent_scores.set_index(["response_id", "agency"])[["A1", "A8"]]
    ref = _naive_scores(a)
    assert len(got) == len(ref) == a.groupby(["response_id", "agency"], observed=True).ngroups
    assert_allclose(got.to_numpy(), ref.loc[got.index, ["A1", "A8"]].to_numpy(), rtol=1e-12)
    # units are listed in order of first appearance
    first = a.drop_duplicates(["response_id", "agency"])
    assert got.index.tolist() == list(zip(first["response_id"], first["agency"]))
    if layout != "grouped":
        base = score_round(_random_answers(), items=ITEMS, scales=SCALES, settings=SETTINGS)
        assert_allclose(res.points["score"], base.points["score"], rtol=1e-12)
        def rates(r):  # rows follow the agency codes, i.e. first appearance for plain columns
            g = r.satisfaction_groups.astype({"agency": object, "agency_kind": object, "group": object})
            return g.sort_values(["agency", "group"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(rates(res), rates(base))


def test_inconsistent_group_or_kind_is_found_across_runs():
    a = _random_answers()
    # the same response × target in two separate runs with different groups
    b = pd.concat([a, a.iloc[[0]].assign(group="HĐ-CT")], ignore_index=True)
    with pytest.raises(ValueError, match="group must be constant"):
        score_round(b, items=ITEMS, scales=SCALES, settings=SETTINGS)
    c = a.copy()
    c.loc[c.index[-1], "agency_kind"] = "district"
    settings = copy.deepcopy(SETTINGS)
    settings["max_points"]["district"] = settings["max_points"]["department"]
    settings["group_weights"]["district"] = settings["group_weights"]["department"]
    with pytest.raises(ValueError, match="agency_kind must be constant"):
        score_round(c, items=ITEMS, scales=SCALES, settings=settings)
    with pytest.raises(ValueError, match="without response_id"):
        score_round(a.astype({"response_id": float}).assign(response_id=lambda d: d["response_id"].where(
            d.index != 5)), items=ITEMS, scales=SCALES, settings=SETTINGS)


def test_strata_are_the_sampling_cells_and_a_single_response_cell_is_flagged():
    rng = np.random.default_rng(3)
    rows = []
    for r in range(48):
        grp = ["CC-CT", "HĐ-CT"][r % 2]
        targets = ["S1", "S2", "S3"] if grp == "HĐ-CT" else [f"S{r % 3 + 1}"]
        for t in targets:
            for item in (["I01", "I02", "I21"] if grp == "CC-CT" else ["E01", "E18"]):
                opts = SCALES[ITEMS.set_index("item").loc[item, "scale"]]
                rows.append((f"r{r}", t, "department", grp, item, str(rng.choice(opts))))
    a = pd.DataFrame(rows, columns=["response_id", "agency", "agency_kind", "group", "item", "option"])
    # the quota cells: CC-CT per agency, one HĐ-CT cell for the round
    a["stratum"] = np.where(a["group"] == "CC-CT", "CC-CT/" + a["agency"], "HĐ-CT")
    res = score_round(a, items=ITEMS, scales=SCALES, settings=SETTINGS)
    est = res.estimates.set_index(["agency", "criterion"])
    assert_allclose(est.xs("A1", level="criterion")["se"], _composite_se(res, "A1"), rtol=1e-12)
    # each agency's df: its PSUs (8 CC-CT + 24 HĐ-CT responses) minus its strata (2)
    assert (est["df"] == 8 + 24 - 2).all()
    assert not est["lonely"].any()

    # S3 keeps one CC-CT response: its cell has one PSU, n_min 1 lets it count, the estimate is flagged
    keep = (a["group"] != "CC-CT") | (a["agency"] != "S3") | (a["response_id"] == "r2")
    res = score_round(a[keep], items=ITEMS, scales=SCALES,
                      settings={**SETTINGS, "min_respondents": {"CC-CT": 1, "HĐ-CT": 1}})
    pts = res.points.set_index(["agency", "criterion"])
    assert "tin_cay_thap" in pts.loc[("S3", "A1"), "flag"]
    est = res.estimates.set_index(["agency", "criterion"])
    assert est.loc[("S3", "A1"), "lonely"] and not est.loc[("S1", "A1"), "lonely"]
    assert est.loc[("S3", "A1"), "se"] > 0  # "adjust": the single response is centred at the mean of all
    assert "tin_cay_thap" in res.totals.set_index("agency").loc["S3", "flag"]
    # the other rules, as analysis.Design: "remove" adds nothing; "average" inflates only S3, whose two
    # strata include the lonely one (factor 2/1); S1 and S2 never touch it
    by_rule = {rule: score_round(a[keep], items=ITEMS, scales=SCALES,
                                 settings={**SETTINGS, "min_respondents": {"CC-CT": 1, "HĐ-CT": 1},
                                           "lonely_psu": rule})
               for rule in ("certainty", "remove", "average")}
    var = {rule: r.estimates.set_index(["agency", "criterion"])["se"] ** 2 for rule, r in by_rule.items()}
    total = {rule: r.totals.set_index("agency")["survey_points_se"] ** 2 for rule, r in by_rule.items()}
    assert_allclose(var["remove"], var["certainty"], rtol=1e-12)
    factor = np.where(var["remove"].index.get_level_values("agency") == "S3", 2.0, 1.0)
    assert_allclose(var["average"], var["remove"] * factor, rtol=1e-12)
    assert_allclose(total["average"], total["remove"] * np.where(total["remove"].index == "S3", 2.0, 1.0), rtol=1e-12)
    with pytest.raises(ValueError, match="one group"):
        score_round(a.assign(stratum="all"), items=ITEMS, scales=SCALES, settings=SETTINGS)


def test_min_respondents_default_to_two():
    settings = {**SETTINGS, "min_respondents": {"CC-CT": 2}}   # HĐ-CT has no entry
    res = score_round(_answers(), items=ITEMS, scales=SCALES, settings=settings)
    # S1 has one HĐ-CT response: with the default minimum of 2 it no longer counts
    pts = res.points.set_index(["agency", "criterion"])
    assert_allclose(pts.loc[("S1", "A1"), "score"], 7 / 12)
    assert "HĐ-CT" in pts.loc[("S1", "A1"), "missing_groups"]
