"""The small-group rule (``min_group``): a group of fewer respondents about an agency enters no figure, an
agency with only such groups is withheld, and nothing else changes."""
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from analysis import (
    FLAG_MISSING_GROUP,
    FLAG_NO_DATA,
    FLAG_WITHHELD,
    agency_ranks,
    answer_weights,
    criteria_table,
    group_shares,
    score_round,
    summary_table,
    validate_settings,
)
from tests.analysis.test_scoring import ITEMS, SCALES, SETTINGS

AGENCIES = pd.DataFrame({"code": ["S1", "S2", "S3", "S4"], "kind": "department",
                         "name": ["Sở 1", "Sở 2 (small groups only)", "Sở 3", "Sở 4 (no data)"]})
SMALL = {**SETTINGS, "min_group": 5}


def _answers(seed=3):
    """S1: 8 CC-CT responses and 3 HĐ-CT responses; S2: the same 3 HĐ-CT responses only; S3: 6 CC-CT and 6 other
    HĐ-CT responses. Under min_group 5, HĐ-CT is small for S1 and S2, nothing is small for S3."""
    rng = np.random.default_rng(seed)
    responses = ([(f"c{i}", "CC-CT", ["S1"]) for i in range(8)]
              + [(f"h{i}", "HĐ-CT", ["S1", "S2"]) for i in range(3)]
              + [(f"d{i}", "CC-CT", ["S3"]) for i in range(6)]
              + [(f"g{i}", "HĐ-CT", ["S3"]) for i in range(6)])
    rows = []
    for response, group, targets in responses:
        for t in targets:
            for item in (["I01", "I02", "I20", "I21"] if group == "CC-CT" else ["E01", "E18"]):
                opts = SCALES[ITEMS.set_index("item").loc[item, "scale"]]
                rows.append((response, t, "department", group, item, str(rng.choice(opts))))
    return pd.DataFrame(rows, columns=["response_id", "agency", "agency_kind", "group", "item", "option"])


def _tables(a, settings):
    cfg = validate_settings(settings, items=ITEMS, scales=SCALES)
    res = score_round(a, items=ITEMS, scales=SCALES, settings=settings)
    criteria = criteria_table(AGENCIES, {"A1": "Một", "A8": "Tám"}, cfg, res)
    summary = summary_table(AGENCIES, a, cfg, res, criteria, agency_ranks(res, draws=500, seed=1, level=0.95))
    return cfg, res, criteria.set_index(["agency", "criterion"]), summary.set_index("agency")


def test_a_small_group_is_left_out_as_if_it_had_not_answered():
    a = _answers()
    _, res, criteria, summary = _tables(a, SMALL)
    # the same responses without HĐ-CT's answers about S1 (they still rate S2, so the design is the same)
    _, _, alone, alone_summary = _tables(a[~((a["agency"] == "S1") & (a["group"] == "HĐ-CT"))], SETTINGS)
    cols = ["score", "points", "points_se", "points_ci_lo", "points_ci_hi", "n", "n_eff", "tltc"]
    assert_allclose(criteria.loc["S1", cols].to_numpy(float), alone.loc["S1", cols].to_numpy(float),
                    rtol=1e-12)
    assert (criteria.loc["S1", "flag"].str.split(",").map(lambda f: FLAG_MISSING_GROUP in f)).all()
    assert (criteria.loc["S1", "missing_groups"] == "HĐ-CT").all()
    cols = ["survey_points", "survey_points_se", "satisfaction", "satisfaction_se", "tltc", "n"]
    assert_allclose(summary.loc["S1", cols].to_numpy(float), alone_summary.loc["S1", cols].to_numpy(float),
                    rtol=1e-12)
    # n counts the shown group only: the three council members' size is not told by the difference
    assert summary.loc["S1", "n"] == 8
    # the points are the CC-CT mean alone, not a mix with the three council members
    rs = res.respondent_scores
    cc = rs[(rs["agency"] == "S1") & (rs["group"] == "CC-CT")]["A1"].mean()
    assert_allclose(criteria.loc[("S1", "A1"), "score"], cc, rtol=1e-12)


def test_an_agency_with_only_small_groups_is_withheld_with_its_reason():
    cfg, res, criteria, summary = _tables(_answers(), SMALL)
    s2 = criteria.loc["S2"]
    figures = ["score", "points", "points_se", "points_ci_lo", "points_ci_hi", "n", "n_eff", "n_groups",
               "tltc"]
    assert s2[figures].isna().all().all() and (s2["flag"] == FLAG_WITHHELD).all()
    assert (criteria.loc["S4", "flag"] == FLAG_NO_DATA).all() and (criteria.loc["S4", "n"] == 0).all()
    row = summary.loc["S2"]
    numbers = ["survey_points", "survey_points_se", "survey_points_ci_lo", "survey_points_ci_hi", "satisfaction",
               "satisfaction_se", "satisfaction_ci_lo", "satisfaction_ci_hi", "tltc", "n", "n_eff_min", "rank",
               "rank_lo", "rank_hi", "points_A1", "points_A8"]
    assert row[numbers].isna().all() and row["withheld"] and row["flags"] == FLAG_WITHHELD
    assert not summary.loc[["S1", "S3", "S4"], "withheld"].any()
    assert summary.loc["S4", "flags"] == FLAG_NO_DATA and summary.loc["S4", "n"] == 0
    sat = res.satisfaction.set_index("agency")
    assert np.isnan(sat.loc["S2", "satisfaction"]) and sat.loc["S2", "flag"] == FLAG_WITHHELD
    rates = res.positive_rates.set_index(["agency", "criterion"])
    assert np.isnan(rates.loc[("S2", "ALL"), "tltc"]) and rates.loc[("S2", "ALL"), "flag"] == FLAG_WITHHELD
    groups = res.groups.set_index(["agency", "group"])
    assert groups.loc[("S2", "HĐ-CT"), "respondents"] == 3 and groups.loc[("S2", "HĐ-CT"), "small"]
    assert not groups.loc[("S3", "HĐ-CT"), "small"]


def test_ranks_are_among_the_agencies_not_withheld():
    _, res, _, summary = _tables(_answers(), SMALL)
    ranked = summary["rank"].dropna()
    assert sorted(ranked.index) == ["S1", "S3"] and sorted(ranked.astype(int)) == [1, 2]
    assert summary.loc[ranked.idxmin(), "survey_points"] == summary.loc[["S1", "S3"], "survey_points"].max()
    assert summary.loc[["S1", "S3"], ["rank_lo", "rank_hi"]].isin([1, 2]).all().all()


def test_answer_weights_give_every_score_from_the_groups_shown():
    a = _answers()
    cfg, res, criteria, _ = _tables(a, SMALL)
    meta = ITEMS.set_index("item")
    a = a.assign(criterion=a["item"].map(meta["criterion"]), scale=a["item"].map(meta["scale"]),
                 response=a["response_id"]).astype("category")
    w = answer_weights(a, cfg, res, response="response")
    small = (a["group"] == "HĐ-CT").to_numpy() & a["agency"].isin(["S1", "S2"]).to_numpy()
    assert (w.loc[small, "weight"] == 0).all()
    assert (w.loc[~small & w["value"].notna().to_numpy(), "weight"] > 0).all()
    rebuilt = (w["weight"] * w["value"].fillna(0)).groupby([a["agency"], a["criterion"]], observed=True).sum()
    scores = criteria["score"].dropna()
    assert sorted(scores.index.get_level_values(0).unique()) == ["S1", "S3"]
    assert_allclose(rebuilt.loc[scores.index].to_numpy(), scores.to_numpy(), rtol=1e-12)


def test_agencies_without_small_groups_are_as_if_the_small_groups_had_never_answered():
    """Their figures are those of the round without the small groups' answers: the design of the variance
    is that of the answers published (the three HĐ-CT sheets of S1 and S2 leave the HĐ-CT stratum)."""
    a = _answers()
    _, res1, crit1, sum1 = _tables(a[~a["response_id"].str.startswith("h")], SETTINGS)
    _, res5, crit5, sum5 = _tables(a, SMALL)
    pd.testing.assert_frame_equal(crit5.loc[["S3"]], crit1.loc[["S3"]], check_exact=True)
    ranks = ["rank", "rank_lo", "rank_hi"]   # S2 is ranked only under min_group 1
    pd.testing.assert_frame_equal(sum5.loc[["S3"]].drop(columns=ranks), sum1.loc[["S3"]].drop(columns=ranks),
                                  check_exact=True)
    for name in ("points", "totals", "satisfaction", "positive_rates", "estimates"):
        one, five = getattr(res1, name), getattr(res5, name)
        pd.testing.assert_frame_equal(five[five["agency"] == "S3"].reset_index(drop=True),
                                      one[one["agency"] == "S3"].reset_index(drop=True), check_exact=True,
                                      check_dtype=False)
    # min_group 1 is the rule without the setting
    plain = score_round(a, items=ITEMS, scales=SCALES, settings={**SETTINGS, "min_group": 1})
    unset = score_round(a, items=ITEMS, scales=SCALES, settings=SETTINGS)
    pd.testing.assert_frame_equal(plain.points, unset.points, check_exact=True)
    pd.testing.assert_frame_equal(plain.estimates, unset.estimates, check_exact=True)


@pytest.mark.parametrize("value", [0, -1, True, "5", 2.5])
def test_min_group_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match=r"settings\['min_group'\] must be an integer >= 1"):
        validate_settings({**SETTINGS, "min_group": value}, items=ITEMS, scales=SCALES)


def test_group_shares_needs_the_group_sizes_for_the_small_group_rule():
    table = pd.DataFrame({"agency": ["S1", "S1"], "agency_kind": "department", "group": ["CC-CT", "HĐ-CT"],
                          "n": [8, 3], "mean": [0.5, 0.7]})
    kw = {"group_weights": SETTINGS["group_weights"], "min_respondents": SETTINGS["min_respondents"]}
    assert_allclose(group_shares(table, "mean", **kw), [0.6, 0.4])
    with pytest.raises(ValueError, match="respondents"):
        group_shares(table, "mean", **kw, min_group=5)
    sizes = table.rename(columns={"n": "respondents"})
    assert_allclose(group_shares(table, "mean", **kw, min_group=5, groups=sizes), [0.6, 0.0])
