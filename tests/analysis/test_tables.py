"""Published tables of a scored round, each checked against a plain pandas computation."""
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from analysis import (
    FLAG_NO_DATA,
    agency_ranks,
    answer_weights,
    criteria_table,
    item_distributions,
    score_round,
    response_weight_diagnostics,
    summary_table,
    validate_settings,
)
from tests.analysis.test_scoring import ITEMS, SCALES, SETTINGS, _random_answers

AGENCIES = pd.DataFrame({"code": ["S1", "S2", "S3", "S4"], "kind": "department",
                         "name": ["Sở 1", "Sở 2", "Sở 3", "Sở 4 (no data)"]})


@pytest.fixture(scope="module")
def scored():
    a = _random_answers(seed=5, n_responses=60)
    a["response"] = a["response_id"].astype(str)
    meta = ITEMS.set_index("item")
    a["criterion"], a["scale"] = a["item"].map(meta["criterion"]), a["item"].map(meta["scale"])
    a["option"] = a["option"].where(a["option"] != "", None)
    a["valid"] = a["option"].notna() & (a["option"] != "K")
    a = a.astype({c: "category" for c in ["agency", "agency_kind", "group", "item", "option", "response",
                                          "criterion", "scale"]})
    a["agency"] = a["agency"].cat.set_categories(AGENCIES["code"])
    cfg = validate_settings(SETTINGS, items=ITEMS, scales=SCALES)
    res = score_round(a, items=ITEMS, scales=SCALES, settings=SETTINGS)
    return a, cfg, res


def test_answer_weights_recompute_every_score(scored):
    a, cfg, res = scored
    w = answer_weights(a, cfg, res, response="response")
    assert w.index.equals(a.index)
    s = (w["weight"] * w["value"].fillna(0)).groupby([a["agency"], a["criterion"]], observed=True).sum()
    pts = res.points.set_index(["agency", "criterion"])["score"].dropna()
    assert_allclose(s.reindex(pts.index).to_numpy(), pts.to_numpy(), rtol=1e-12)
    # an answer without a value carries no weight; nothing scored without a result
    assert (w.loc[w["value"].isna(), "weight"] == 0).all()
    none = answer_weights(a, cfg, None, response="response")
    assert (none["weight"] == 0).all() and none["value"].equals(w["value"])


def test_response_weight_diagnostics_are_kish_of_the_response_sums(scored):
    a, cfg, res = scored
    w = answer_weights(a, cfg, res, response="response")["weight"].to_numpy()
    diag = response_weight_diagnostics(a, w, response="response").set_index(["agency", "criterion"])
    response_w = pd.Series(w).groupby([a["agency"], a["criterion"], a["response"]], observed=True).sum()
    response_w = response_w[response_w > 0]
    for (agency, criterion), ws in response_w.groupby(level=[0, 1]):
        row = diag.loc[(agency, criterion)]
        assert row["n"] == len(ws)
        assert_allclose(row["n_eff"], ws.sum() ** 2 / (ws ** 2).sum(), rtol=1e-12)
        assert_allclose([row["min"], row["max"]], [ws.min(), ws.max()], rtol=1e-12)


def test_item_distributions_count_and_suppress_small_groups(scored):
    a, cfg, res = scored
    dist = item_distributions(a, cfg, response="response", item="item", min_group=12)
    for row in dist.itertuples():
        rows = a[(a["agency"] == row.agency) & (a["group"] == row.group) & (a["item"] == row.item)]
        responses = a.loc[(a["agency"] == row.agency) & (a["group"] == row.group), "response"].nunique()
        assert row.n_responses == responses
        assert row.suppressed == (responses < 12)
        if row.suppressed:
            assert row.counts is None and np.isnan(row.mean_value) and row.n_valid == 0
        else:
            assert row.counts == rows["option"].astype(object).fillna("").value_counts().sort_index().to_dict()
            assert row.n_valid == rows["valid"].sum()
    assert dist["suppressed"].any() and not dist["suppressed"].all()


def test_tables_rank_and_flag_every_agency(scored):
    a, cfg, res = scored
    criteria = criteria_table(AGENCIES, {"A1": "Một", "A8": "Tám"}, cfg, res)
    assert len(criteria) == 4 * 2
    assert (criteria.loc[criteria["agency"] == "S4", "flag"] == FLAG_NO_DATA).all()
    ranks = agency_ranks(res, draws=500, seed=1, level=0.95)
    summary = summary_table(AGENCIES, a, cfg, res, criteria, ranks).set_index("agency")
    scored_points = summary["survey_points"].dropna()
    assert summary.loc["S4", "n"] == 0 and np.isnan(summary.loc["S4", "survey_points"])
    assert FLAG_NO_DATA in summary.loc["S4", "flags"]
    # rank 1 is the highest total among the agencies that have a variance
    ranked = summary["rank"].dropna()
    assert summary.loc[ranked.idxmin(), "survey_points"] == scored_points[ranked.index].max()
    n = a.groupby("agency", observed=True)["response_id"].nunique()
    assert (summary.loc[n.index, "n"] == n).all()
    empty = summary_table(AGENCIES, a.iloc[:0], cfg, None, criteria_table(AGENCIES, {}, cfg, None), None)
    assert empty["survey_points"].isna().all() and (empty["flags"] == FLAG_NO_DATA).all()
