"""analysis.citizens: the shares per level and their targets, judged by the same rules as every round's."""
from __future__ import annotations

import numpy as np
import pytest
import pandas as pd

from analysis import citizens
from analysis.targets import assign_targets

RULES = [{"indicator": "satisfaction", "at_least": 80.0},
         {"indicator": "YT3", "at_least": 85.0, "kinds": ["commune"]},
         {"indicator": "satisfaction", "at_least": 60.0, "agencies": ["XA2"]}]


def _frame(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for agency, kind, p in (("SO1", "department", 0.95), ("XA1", "commune", 0.9), ("XA2", "commune", 0.5)):
        for _ in range(40):
            rows.append({"agency": agency, "kind": kind, "investigator": None, "S1": "2",
                         "C9": "5" if rng.random() < p else "2", "G1": "4" if rng.random() < p else "1",
                         "H1": "1"})
    return pd.DataFrame(rows)


def test_targets_follow_the_most_specific_rule_at_each_level():
    res = citizens.citizen_results(
        _frame(), populations={"SO1": 400, "XA1": 900, "XA2": 300}, elements=[("YT3", "C9")], overall="G1",
        satisfied={"C9": ["4", "5"], "G1": ["4", "5"]}, excluded_options={}, improvements=["H1"], screening="S1",
        eligible=["2"], targets=RULES)
    shares = res.shares.set_index(["level", "domain", "measure"])
    expected = {("province", "", "overall"): 0.80, ("province", "", "YT3"): np.nan,
                ("kind", "commune", "YT3"): 0.85, ("kind", "department", "YT3"): np.nan,
                ("kind", "commune", "overall"): 0.80, ("agency", "XA2", "overall"): 0.60,
                ("agency", "XA1", "YT3"): 0.85, ("agency", "SO1", "YT3"): np.nan, ("agency", "SO1", "overall"): 0.80}
    for key, target in expected.items():
        assert shares.loc[key, "target"] == target or (np.isnan(target) and np.isnan(shares.loc[key, "target"])), key
    # the verdict is the PAR rounds' (analysis.targets); none without a target
    assert pd.isna(shares.loc[("agency", "SO1", "YT3"), "verdict"])
    assert set(res.shares["verdict"].dropna()) <= {"dat", "khong_dat", "chua_du_can_cu"}
    assert shares.loc[("agency", "XA2", "overall"), "verdict"] in {"khong_dat", "chua_du_can_cu"}
    # the same rules give PAR rounds' agencies the same targets
    par = assign_targets(pd.DataFrame({"agency": ["XA2", "SO1"], "agency_kind": ["commune", "department"]}), RULES)
    assert dict(zip(par["agency"], par["target"], strict=True)) == {"XA2": 60.0, "SO1": 80.0}


def test_no_rule_no_target():
    res = citizens.citizen_results(
        _frame(), populations={"SO1": 400, "XA1": 900, "XA2": 300}, elements=[("YT3", "C9")], overall="G1",
        satisfied={"C9": ["4", "5"], "G1": ["4", "5"]}, excluded_options={}, improvements=["H1"], screening="S1",
        eligible=["2"])
    assert res.shares["target"].isna().all() and res.shares["verdict"].isna().all()


def test_results_per_commune_of_residence_are_domains_of_the_whole_design():
    """Households of XA1 rated their ward and SO1; those of XA2 their ward; SO1's other respondents (online) name
    no commune, and a pooled one none either: each commune's share is the weighted share of the responses naming
    it, whatever agency they rated, with weights N / n of the agency rated."""
    frame = _frame()
    frame["commune"] = None
    frame.loc[frame["agency"] == "XA1", "commune"] = "XA1"
    frame.loc[frame["agency"] == "XA2", "commune"] = "XA2"
    frame.loc[frame.index[frame["agency"] == "SO1"][:15], "commune"] = "XA1"
    frame.loc[frame.index[frame["agency"] == "SO1"][15:17], "commune"] = citizens.POOLED
    populations = {"SO1": 400, "XA1": 900, "XA2": 300}
    res = citizens.citizen_results(
        frame, populations=populations, elements=[("YT3", "C9")], overall="G1",
        satisfied={"C9": ["4", "5"], "G1": ["4", "5"]}, excluded_options={}, improvements=["H1"], screening="S1",
        eligible=["2"], targets=RULES)
    communes = res.shares[res.shares["level"] == "commune"].set_index(["domain", "measure"])
    assert set(communes.index.get_level_values(0)) == {"XA1", "XA2"}  # no "" and no pooled domain
    w = frame["agency"].map(populations) / frame.groupby("agency")["agency"].transform("size")
    for commune in ("XA1", "XA2"):
        mine = frame["commune"] == commune
        expected = (w[mine] * frame.loc[mine, "G1"].isin(["4", "5"])).sum() / w[mine].sum()
        got = communes.loc[(commune, "overall")]
        assert got["est"] == pytest.approx(expected, abs=1e-12) and got["n"] == mine.sum()
        assert got["ci_lo"] <= expected <= got["ci_hi"] and got["target"] == 0.80  # the rule for every agency
        # Taylor linearisation of the domain ratio over every stratum (agency), finite population corrected
        y = frame["G1"].isin(["4", "5"]).astype(float)
        z = w * mine * (y - expected) / w[mine].sum()
        variance = sum((1 - len(g) / populations[a]) * len(g) / (len(g) - 1) * ((g - g.mean()) ** 2).sum()
                       for a, g in z.groupby(frame["agency"]))
        assert got["se"] == pytest.approx(variance ** 0.5, rel=1e-9)
    assert set(res.improvements["level"]) == {"province", "kind", "agency", "commune"}
    without = citizens.citizen_results(
        frame.drop(columns="commune"), populations=populations, elements=[("YT3", "C9")], overall="G1",
        satisfied={"C9": ["4", "5"], "G1": ["4", "5"]}, excluded_options={}, improvements=["H1"], screening="S1",
        eligible=["2"])
    assert "commune" not in set(without.shares["level"])


def test_a_quarantined_investigator_is_left_out_where_named_and_where_pooled():
    """DTV-01 is named in cell 1 and may be in cell 2's pool: its named rows and cell 2's pool go, cell 3's
    pool stays."""
    frame = pd.DataFrame({"cell": [1, 1, 2, 2, 3, 3, 3], "S1": ["2"] * 6 + ["1"],
                          "investigator": ["dtv01", "dtv02", "*", "*", "*", "dtv01", "*"]})
    kept, excluded = citizens.counted(frame, screening="S1", eligible=["2"], quarantined={"dtv01"}, pools_out={2})
    assert kept.index.tolist() == [1, 4] and excluded == {"screened_out": 1, "quarantined": 4}
    kept, excluded = citizens.counted(frame, screening="S1", eligible=["2"], quarantined={"dtv01"})
    assert kept.index.tolist() == [1, 2, 3, 4] and excluded["quarantined"] == 2
