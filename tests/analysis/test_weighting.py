"""Weighting: post-stratification, raking, trimming, diagnostics."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from analysis import calibrate, model_matrix, poststratify, rake, trim, weight_diagnostics

# R survey example: pop.types <- data.frame(stype=c("E","H","M"), Freq=c(4421,755,1018));
# pop.schwide <- data.frame(sch.wide=c("No","Yes"), Freq=c(1072,5122))
POP_TYPES = pd.Series({"E": 4421.0, "H": 755.0, "M": 1018.0})
POP_SCHWIDE = pd.Series({"No": 1072.0, "Yes": 5122.0})


def _margins(w, frame, col):
    return w.groupby(frame[col]).sum()


def test_poststratify_apiclus1_margins(apiclus1):
    w = poststratify(apiclus1, "stype", POP_TYPES, "pw")
    assert_allclose(_margins(w, apiclus1, "stype").loc[POP_TYPES.index], POP_TYPES, rtol=1e-12)
    # within a cell the weights keep their ratios
    assert_allclose((w / apiclus1["pw"]).groupby(apiclus1["stype"]).std(), 0, atol=1e-12)


def test_rake_apiclus1_margins(apiclus1):
    w = rake(apiclus1, {"stype": POP_TYPES, "sch.wide": POP_SCHWIDE}, "pw")
    assert w.index.equals(apiclus1.index) and w.name == "weight"
    assert_allclose(_margins(w, apiclus1, "stype").loc[POP_TYPES.index], POP_TYPES, rtol=1e-8)
    assert_allclose(_margins(w, apiclus1, "sch.wide").loc[POP_SCHWIDE.index], POP_SCHWIDE, rtol=1e-8)


def _random_frame(rng, n=500):
    return pd.DataFrame({"a": rng.integers(0, 4, n), "b": rng.integers(0, 3, n), "c": rng.integers(0, 2, n),
                         "w0": rng.lognormal(size=n)})


def _random_margins(rng, frame, total=1e4):
    out = {}
    for col in ("a", "b", "c"):
        v = rng.uniform(1, 3, frame[col].nunique())
        out[col] = pd.Series(v / v.sum() * total, index=sorted(frame[col].unique()))
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_raked_margins_hit_targets_and_order_independent(seed):
    rng = np.random.default_rng(seed)
    df = _random_frame(rng)
    margins = _random_margins(rng, df)
    w = rake(df, margins, "w0")
    for col, target in margins.items():
        assert_allclose(_margins(w, df, col).loc[target.index], target, rtol=1e-8)
    w_rev = rake(df, dict(reversed(list(margins.items()))), "w0")
    assert_allclose(w, w_rev, rtol=1e-6)


def test_rake_from_cell_constant_weights_equals_rake_with_cell_margin():
    rng = np.random.default_rng(3)
    df = _random_frame(rng, 800)
    df["cell"] = df["a"].astype(str) + "-" + df["b"].astype(str)
    base = df.groupby("cell")["w0"].transform("mean")  # constant within cells
    df["base"] = base
    margins = {"c": pd.Series({0: 3000.0, 1: 7000.0})}
    cell_totals = df.groupby("cell")["base"].sum()
    cell_totals *= 1e4 / cell_totals.sum()
    w_design = rake(df.assign(base=df["base"] * 1e4 / df["base"].sum()), margins | {"cell": cell_totals}, "base")
    w_from_one = rake(df, margins | {"cell": cell_totals})
    assert_allclose(w_design, w_from_one, rtol=1e-6)


def test_rake_bounds_hold_and_impossible_bounds_raise():
    rng = np.random.default_rng(4)
    df = _random_frame(rng, 2000)
    margins = _random_margins(rng, df, total=df["w0"].sum())
    free = rake(df, margins, "w0")
    g = free / df["w0"]
    lo, hi = g.min() + 0.1 * (1 - g.min()), g.max() - 0.1 * (g.max() - 1)
    w = rake(df, margins, "w0", bounds=(lo, hi))
    g = w / df["w0"]
    assert g.min() >= lo - 1e-9 and g.max() <= hi + 1e-9
    for col, target in margins.items():
        assert_allclose(_margins(w, df, col).loc[target.index], target, rtol=1e-8)
    with pytest.raises(ValueError, match="bounds"):
        rake(df, margins, "w0", bounds=(0.99, 1.01), max_iter=200)
    with pytest.raises(ValueError, match="cannot be met"):
        rake(df, margins, "w0", bounds=(2.0, 3.0))


@pytest.mark.parametrize("margins, msg", [
    ({"a": pd.Series({0: 50.0, 1: 50.0}), "b": pd.Series({0: 10.0, 1: 20.0})}, "totals disagree"),
    ({"a": pd.Series({0: 50.0, 1: 40.0, 2: 10.0})}, "no sample weight"),
    ({"a": pd.Series({0: 100.0})}, "not in the population totals"),
])
def test_rake_bad_margins(margins, msg):
    df = pd.DataFrame({"a": [0, 0, 1, 1], "b": [0, 1, 0, 1]})
    with pytest.raises(ValueError, match=msg):
        rake(df, margins)


def test_rake_non_convergence_raises():
    # structural zero: the cell (a=1, b=1) is empty, the margins are not reachable exactly
    df = pd.DataFrame({"a": [0, 0, 1], "b": [0, 1, 0]})
    margins = {"a": pd.Series({0: 1.0, 1: 9.0}), "b": pd.Series({0: 1.0, 1: 9.0})}
    with pytest.raises(ValueError, match="did not converge"):
        rake(df, margins, max_iter=50)


def test_poststratify_errors_and_multiindex():
    df = pd.DataFrame({"s": ["a", "a", "b"], "t": [1, 2, 1]})
    with pytest.raises(ValueError, match="no sample weight"):
        poststratify(df, "s", pd.Series({"a": 1.0, "b": 1.0, "c": 1.0}))
    with pytest.raises(ValueError, match="not in the population totals"):
        poststratify(df, "s", pd.Series({"a": 1.0}))
    tot = pd.Series([2.0, 4.0, 6.0], index=pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1)]))
    assert poststratify(df, ["s", "t"], tot).tolist() == [2.0, 4.0, 6.0]


def test_trim_matches_r_convention_and_keeps_total():
    w = pd.Series([1.0, 2.0, 3.0, 10.0, 20.0], name="pw")
    once = trim(w, upper=8.0, strict=False)
    # R trimWeights: excess (2 + 12) shared equally by the 3 untrimmed units
    assert_allclose(once, [1 + 14 / 3, 2 + 14 / 3, 3 + 14 / 3, 8, 8])
    strict = trim(w, upper=7.5)
    assert strict.max() <= 7.5 + 1e-12 and strict.sum() == pytest.approx(w.sum())
    assert strict.name == "pw"
    low = trim(pd.Series([0.1, 1.0, 2.0, 3.0]), lower=0.5)
    assert low.min() >= 0.5 - 1e-12 and low.sum() == pytest.approx(6.1)
    with pytest.raises(ValueError, match="cannot trim"):
        trim(w, upper=1.0)


def test_weight_diagnostics():
    w = pd.Series([1.0, 1.0, 2.0, 4.0])
    d = weight_diagnostics(w).iloc[0]
    assert d["n"] == 4 and d["sum"] == 8.0 and d["median"] == 1.5
    assert_allclose(d["n_eff"], 64 / 22)
    assert_allclose(d["deff_w"], 4 / (64 / 22))
    by = weight_diagnostics(w, pd.Series(["x", "x", "y", "y"]))
    assert list(by.index) == ["x", "y"] and by.loc["x", "deff_w"] == 1.0


def test_inputs_not_mutated():
    df = pd.DataFrame({"a": [0, 1, 0, 1], "w": [1.0, 2.0, 3.0, 4.0]})
    before = df.copy()
    rake(df, {"a": pd.Series({0: 5.0, 1: 5.0})}, "w")
    poststratify(df, "a", pd.Series({0: 5.0, 1: 5.0}), "w")
    trim(df["w"], upper=3.0)
    pd.testing.assert_frame_equal(df, before)


def test_model_matrix_follows_r_names_and_levels():
    frame = pd.DataFrame({"stype": pd.Categorical(["M", "E", "H"], categories=["M", "E", "H"]),
                          "sex": ["m", "f", "f"], "x": [1.0, 2.0, 3.0]})
    mm = model_matrix(frame, ["stype", "sex", "x"])
    # R: model.matrix(~stype+sex+x) with factor levels M, E, H and sex sorted: f first
    assert list(mm.columns) == ["(Intercept)", "stypeE", "stypeH", "sexm", "x"]
    assert mm["stypeE"].tolist() == [0.0, 1.0, 0.0] and mm["sexm"].tolist() == [1.0, 0.0, 0.0]
    assert list(model_matrix(frame, ["x"], intercept=False).columns) == ["x"]


def test_calibrate_meets_the_totals_and_refuses_bad_input():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"g": rng.choice(["a", "b"], 200), "x": rng.uniform(1, 5, 200), "w": rng.uniform(1, 3, 200)})
    totals = {"(Intercept)": 500.0, "gb": 260.0, "x": 1500.0}
    for calfun, bounds in (("linear", None), ("raking", None), ("logit", (0.2, 3.0)), ("linear", (0.2, 3.0))):
        w = calibrate(frame, ["g", "x"], totals, "w", calfun=calfun, bounds=bounds)
        mm = model_matrix(frame, ["g", "x"]).to_numpy()
        np.testing.assert_allclose(mm.T @ w.to_numpy(), list(totals.values()), rtol=1e-6)
        if bounds:
            g = w / frame["w"]
            assert g.min() >= 0.2 - 1e-9 and g.max() <= 3.0 + 1e-9
    with pytest.raises(ValueError, match="3 calibration columns"):
        calibrate(frame, ["g", "x"], [500.0, 260.0], "w")
    with pytest.raises(ValueError, match="unknown \\['gc'\\]"):
        calibrate(frame, ["g", "x"], {**totals, "gc": 1.0}, "w")
    with pytest.raises(ValueError, match="lo < 1 < hi"):
        calibrate(frame, ["g", "x"], totals, "w", bounds=(1.2, 3.0))
    with pytest.raises(ValueError, match="missing column"):
        calibrate(frame, ["nope"], [1.0, 2.0], "w")
    with pytest.raises(ValueError, match="calibration column 'g' has missing values"):
        calibrate(frame.assign(g=None), ["g"], [1.0, 2.0], "w")
