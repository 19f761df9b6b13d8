"""domain_means / mean_covariance: R `survey` reference values and invariants."""
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from analysis import domain_means, mean_covariance

# R survey tests/deff.R, data "kigyo"
URIAGE = [15, 143, 21, 51, 337, 50, 274, 145, 15, 86]
PPS_W = [20, 200, 11, 25, 550, 30, 250, 100, 10, 55]


def test_kigyo_srs():
    # R: svymean(~uriage, svydesign(id=~1, weights=~srs.w), deff=TRUE): 113.700, SE 35.626, deff 1.0101
    df = pd.DataFrame({"uriage": URIAGE, "w": 100.0})
    row = domain_means(df, "uriage", None, "w").iloc[0]
    assert (round(row.est, 3), round(row.se, 3), round(row.deff, 4)) == (113.700, 35.626, 1.0101)


def test_kigyo_pps():
    # R: svymean(~uriage, svydesign(id=~1, weights=~pps.w), deff="replace"): 243.914, SE 48.752, deff 1.9741
    df = pd.DataFrame({"uriage": URIAGE, "w": PPS_W})
    row = domain_means(df, "uriage", None, "w", deff="replace").iloc[0]
    assert (round(row.est, 3), round(row.se, 3), round(row.deff, 4)) == (243.914, 48.752, 1.9741)


def test_fpc_domains_keep_zero_rows(fpc_data):
    # R survey tests/domain.R: svyby(~x, ~I(x>4), svydesign(id=~psuid, strata=~stratid, weight=~weight,
    # data=fpc, nest=TRUE), svymean): 3.314286 (SE 0.3117042), 6.195000 (SE 0.7555129)
    df = fpc_data.assign(big=fpc_data["x"] > 4)
    out = domain_means(df, "x", "big", "weight", strata="stratid", psu="psuid")
    assert_allclose(out["est"], [3.314286, 6.195000], atol=5e-7)
    assert_allclose(out["se"], [0.3117042, 0.7555129], atol=5e-8)
    assert (out["df"] == 8 - 2).all()


def test_unweighted_proportion():
    # Stata auto, foreign: 22/74, SE .0534958, t(73) CI .1906803-.4039143 (Statalist 2004 printout)
    df = pd.DataFrame({"foreign": [1] * 22 + [0] * 52})
    row = domain_means(df, "foreign", None).iloc[0]
    assert_allclose([row.est, row.se, row.ci_lo, row.ci_hi], [22 / 74, 0.0534958, 0.1906803, 0.4039143],
                    atol=5e-8)
    assert row.df == 73


def test_api_strat(apistrat):
    # R: svymean(~api00, svydesign(id=~1, strata=~stype, weights=~pw, fpc=~fpc, data=apistrat)): 662.29, SE 9.4089
    row = domain_means(apistrat, "api00", None, "pw", strata="stype", fpc="fpc").iloc[0]
    assert round(row.est, 2) == 662.29
    assert round(row.se, 4) == 9.4089


def test_api_clus1(apiclus1):
    # R: svymean(~api00, svydesign(id=~dnum, weights=~pw, fpc=~fpc, data=apiclus1)): 644.17, SE 23.542
    row = domain_means(apiclus1, "api00", None, "pw", psu="dnum", fpc="fpc").iloc[0]
    assert round(row.est, 2) == 644.17
    assert round(row.se, 3) == 23.542
    assert row.df == 14


def test_fpc_as_fraction_equals_population_size(apistrat):
    frac = apistrat.groupby("stype")["stype"].transform("size") / apistrat["fpc"]
    a = domain_means(apistrat.assign(f=frac), "api00", None, "pw", strata="stype", fpc="f")
    b = domain_means(apistrat, "api00", None, "pw", strata="stype", fpc="fpc")
    assert_allclose(a["se"], b["se"], rtol=1e-12)


def test_proportion_logit_ci_and_edges():
    df = pd.DataFrame({"y": [1, 0, 1, 1, 0, 0, 0, 1, 1, 1] + [1] * 5, "d": ["a"] * 10 + ["b"] * 5})
    out = domain_means(df, "y", "d", proportion=True).set_index("d")
    p, se, t = out.loc["a", "est"], out.loc["a", "se"], out.loc["a", "df"]
    from scipy import stats
    half = stats.t.ppf(0.975, t) * se / (p * (1 - p))
    lo = 1 / (1 + np.exp(-(np.log(p / (1 - p)) - half)))
    assert_allclose(out.loc["a", "ci_lo"], lo, rtol=1e-12)
    # p = 1: Korn-Graubard / Clopper-Pearson style bound, upper = 1, lower in (0, 1)
    assert out.loc["b", "est"] == 1 and out.loc["b", "ci_hi"] == 1 and 0 < out.loc["b", "ci_lo"] < 1
    with pytest.raises(ValueError, match="only 0, 1"):
        domain_means(df.assign(y=2.0), "y", "d", proportion=True)


def test_empty_domain_gives_nan_not_zero():
    df = pd.DataFrame({"y": [1.0, 2.0, np.nan], "z": [1.0, 2.0, 3.0], "d": ["a", "a", "b"]})
    out = domain_means(df, ["y", "z"], "d").set_index(["d", "variable"])
    assert np.isnan(out.loc[("b", "y"), "est"]) and out.loc[("b", "y"), "n"] == 0
    assert out.loc[("b", "z"), "est"] == 3.0


def test_single_psu_stratum_contributes_zero():
    # documented choice: R options(survey.lonely.psu = "certainty")
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 10.0], "s": [1, 1, 1, 2]})
    with_lonely = domain_means(df, "y", None, strata="s").iloc[0]
    z = (df["y"] - df["y"].mean()) / 4
    expected = 3 / 2 * ((z[:3] - z[:3].mean()) ** 2).sum()
    assert_allclose(with_lonely.se ** 2, expected, rtol=1e-12)


def _loop_reference(df, value, by, w, strata, psu):
    """Straightforward per-domain R svyby computation (zero rows kept), for comparison."""
    rows = []
    n_h = df.groupby(strata)[psu].nunique()
    for dom in sorted(df[by].dropna().unique()):
        m = ((df[by] == dom) & df[value].notna()).to_numpy()
        wm = np.where(m, df[w], 0.0)
        y = np.nan_to_num(df[value].to_numpy())
        W = wm.sum()
        ybar = (wm * y).sum() / W
        z = pd.Series(wm * (y - ybar) / W)
        zp = z.groupby([df[strata], df[psu]]).sum()
        # PSUs of stratum h without rows in the domain have Z = 0 and still count in n_h
        var = sum(n_h[h] / (n_h[h] - 1) * ((zh ** 2).sum() - zh.sum() ** 2 / n_h[h])
                  for h, zh in zp.groupby(level=0) if n_h[h] > 1)
        rows.append((dom, ybar, np.sqrt(var), int(m.sum())))
    return pd.DataFrame(rows, columns=[by, "est", "se", "n"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_equals_loop(seed):
    rng = np.random.default_rng(seed)
    n = 400
    df = pd.DataFrame({"y": rng.normal(3, 1, n), "d": rng.integers(0, 6, n), "s": rng.integers(0, 4, n),
                       "w": rng.lognormal(size=n)})
    df["p"] = rng.integers(0, 30, n)  # respondents: a PSU holds rows of several domains
    df.loc[rng.random(n) < 0.15, "y"] = np.nan
    got = domain_means(df, "y", "d", "w", strata="s", psu="p")
    ref = _loop_reference(df, "y", "d", "w", "s", "p")
    assert_allclose(got["est"], ref["est"], rtol=1e-12)
    assert_allclose(got["se"], ref["se"], rtol=1e-12)
    assert (got["n"].to_numpy() == ref["n"].to_numpy()).all()


def test_integer_weights_equal_replicated_rows():
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"y": rng.normal(size=30), "d": rng.integers(0, 3, 30), "w": rng.integers(1, 4, 30)})
    rep = df.loc[df.index.repeat(df["w"])]
    a = domain_means(df, "y", "d", "w")
    b = domain_means(rep, "y", "d")
    assert_allclose(a["est"], b["est"], rtol=1e-12)


def test_equal_weights_equal_unweighted():
    rng = np.random.default_rng(6)
    df = pd.DataFrame({"y": rng.normal(size=50), "d": rng.integers(0, 3, 50), "s": rng.integers(0, 2, 50)})
    a = domain_means(df.assign(w=7.5), "y", "d", "w", strata="s")
    b = domain_means(df, "y", "d", strata="s")
    for col in ("est", "se", "n_eff", "deff_w"):
        assert_allclose(a[col], b[col], rtol=1e-12)


def test_covariance_diagonal_and_disjoint():
    rng = np.random.default_rng(7)
    n = 300
    df = pd.DataFrame({"y": rng.normal(size=n), "d": rng.integers(0, 4, n), "w": rng.lognormal(size=n),
                       "g": rng.integers(0, 3, n), "r": rng.integers(0, 60, n)})
    cov = mean_covariance(df, "y", "d", "w", strata="g", psu="r")
    se = domain_means(df, "y", "d", "w", strata="g", psu="r")["se"].to_numpy()
    assert_allclose(np.diag(cov), se ** 2, rtol=1e-10)
    assert np.abs(cov.to_numpy() - np.diag(np.diag(cov))).max() > 0
    disjoint = mean_covariance(df, "y", "d", "w")  # every row its own PSU, no strata
    off = disjoint.to_numpy() - np.diag(np.diag(disjoint))
    assert np.abs(off).max() < 1e-3 * np.diag(disjoint).min()


def test_multiple_by_columns_and_no_mutation():
    df = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "a": list("xxyyxy"), "b": [1, 2, 1, 2, 1, 2]})
    before = df.copy()
    out = domain_means(df, "y", ["a", "b"])
    assert list(out.columns[:3]) == ["a", "b", "variable"]
    assert_allclose(out["est"], [3.0, 2.0, 3.0, 5.0])
    pd.testing.assert_frame_equal(df, before)


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(values="missing"), ValueError, "missing column"),
    (dict(values="txt"), TypeError, "numeric"),
    (dict(weight="neg"), ValueError, "negative"),
    (dict(level=1.5), ValueError, "level"),
    (dict(fpc="bad_fpc", strata="s"), ValueError, "constant within"),
])
def test_bad_inputs(kwargs, exc, msg):
    df = pd.DataFrame({"y": [1.0, 2, 3, 4], "txt": list("abcd"), "neg": [1, -1, 1, 1], "s": [1, 1, 2, 2],
                       "bad_fpc": [10, 11, 10, 10], "d": [1, 1, 2, 2]})
    args = dict(values="y", by="d") | kwargs
    with pytest.raises(exc, match=msg):
        domain_means(df, args.pop("values"), args.pop("by"), **args)
    with pytest.raises(TypeError):
        domain_means([1, 2], "y", None)
