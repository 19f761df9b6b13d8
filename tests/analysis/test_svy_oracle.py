"""The Design object against svy 0.35 (a pinned test oracle that reproduces R ``survey``), to 1e-6.

Columns go to svy with their dots as underscores (``sch.wide`` is ``sch_wide``). svy's JK1 replicates
take no finite population correction (R's multiply the scale by 1 − f: ``scale=(1-15/757)*14/15`` in
``tests/testoutput/DBIcheck.Rout.save`` of ``cran/survey``), so the replicate comparisons use designs
without ``fpc``; its bootstrap scale is 1/R where R's and ours is 1/(R − 1), so the bootstrap comparison
hands svy our replicate weights with our scale.
"""
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from analysis import Design
from tests.analysis.oracles import oracle

svy = oracle("svy")
pl = oracle("polars")

POP_TYPES = {"E": 4421.0, "H": 755.0, "M": 1018.0}
POP_SCHWIDE = {"No": 1072.0, "Yes": 5122.0}
POP_COMPIMP = {"No": 1712.0, "Yes": 4482.0}   # R survey tests/rakecheck.R: pop.imp
COLUMNS = {"est": "est", "se": "se", "lci": "ci_lo", "uci": "ci_hi", "df": "df", "n": "n"}
INTERVAL_COLUMNS = {k: v for k, v in COLUMNS.items() if k != "n"}   # results without a count


def _svy_name(col: str) -> str:
    return col.replace(".", "_")


def _sample(frame, extra_columns=None, **design):
    data = frame.rename(columns=_svy_name)
    if extra_columns is not None:
        data = pd.concat([data, extra_columns], axis=1)
    return svy.Sample(data=pl.from_pandas(data), design=svy.Design(**design))


def _theirs(result) -> pd.DataFrame:
    return result.to_polars().to_pandas()


def _same(ours: pd.DataFrame, theirs, keys=(), columns=COLUMNS):
    t = _theirs(theirs) if not isinstance(theirs, pd.DataFrame) else theirs
    ours = ours.rename(columns=_svy_name)
    if keys:
        t = t.sort_values(list(keys)).reset_index(drop=True)
        ours = ours.sort_values(list(keys)).reset_index(drop=True)
        assert ours[list(keys)].astype(str).equals(t[list(keys)].astype(str))
    assert len(ours) == len(t)
    for theirs_col, our_col in columns.items():
        assert_allclose(ours[our_col].to_numpy(float), t[theirs_col].to_numpy(float), rtol=1e-6,
                        err_msg=our_col)


@pytest.fixture(scope="module")
def clus1_raked(apiclus1):
    ours = Design(apiclus1, weight="pw", psu="dnum", fpc="fpc").rake(
        {"stype": pd.Series(POP_TYPES), "sch.wide": pd.Series(POP_SCHWIDE)}, tol=1e-12)
    theirs = _sample(apiclus1, psu="dnum", wgt="pw", pop_size="fpc").weighting.rake(
        controls={"stype": POP_TYPES, "sch_wide": POP_SCHWIDE}, tol=1e-12, max_iter=1000)
    return ours, theirs


@pytest.fixture(scope="module")
def clus1_post(apiclus1):
    ours = Design(apiclus1, weight="pw", psu="dnum", fpc="fpc").poststratify("stype", pd.Series(POP_TYPES))
    theirs = _sample(apiclus1, psu="dnum", wgt="pw", pop_size="fpc").weighting.poststratify(
        controls=POP_TYPES, cells="stype")
    return ours, theirs


@pytest.fixture(scope="module")
def strat_raked(apistrat):
    # a stratified cluster design (districts within school types) raked on two margins across the strata
    ours = Design(apistrat, weight="pw", strata="stype", psu="dnum").rake(
        {"sch.wide": pd.Series(POP_SCHWIDE), "comp.imp": pd.Series(POP_COMPIMP)}, tol=1e-12)
    theirs = _sample(apistrat, stratum="stype", psu="dnum", wgt="pw").weighting.rake(
        controls={"sch_wide": POP_SCHWIDE, "comp_imp": POP_COMPIMP}, tol=1e-12, max_iter=1000)
    return ours, theirs


def test_raked_mean_total_and_ratio(clus1_raked):
    ours, s = clus1_raked
    _same(ours.mean("api00"), s.estimation.mean("api00"))
    _same(ours.total("enroll"), s.estimation.total("enroll"))
    _same(ours.ratio("api00", "api99"), s.estimation.ratio(y="api00", x="api99"))


def test_raked_domains(clus1_raked):
    ours, s = clus1_raked
    _same(ours.mean("api00", by="comp.imp"), s.estimation.mean("api00", by="comp_imp"), keys=["comp_imp"])
    _same(ours.total("enroll", by="stype"), s.estimation.total("enroll", by="stype"), keys=["stype"])
    _same(ours.ratio("api00", "api99", by="comp.imp"),
          s.estimation.ratio(y="api00", x="api99", by="comp_imp"), keys=["comp_imp"])


def test_poststratified_means_totals_ratios_and_domain_df(clus1_post):
    ours, s = clus1_post
    _same(ours.mean("api00"), s.estimation.mean("api00"))
    _same(ours.mean("api00", by="sch.wide"), s.estimation.mean("api00", by="sch_wide"), keys=["sch_wide"])
    _same(ours.total("enroll", by="stype"), s.estimation.total("enroll", by="stype"), keys=["stype"])
    _same(ours.total("api.stu", by="comp.imp"), s.estimation.total("api_stu", by="comp_imp"),
          keys=["comp_imp"])
    _same(ours.ratio("api.stu", "enroll"), s.estimation.ratio(y="api_stu", x="enroll"))
    _same(ours.ratio("api.stu", "enroll", by="sch.wide"),
          s.estimation.ratio(y="api_stu", x="enroll", by="sch_wide"), keys=["sch_wide"])


def test_raked_stratified_cluster_design_and_domains_across_strata(strat_raked):
    ours, s = strat_raked
    _same(ours.mean("api00"), s.estimation.mean("api00"))
    _same(ours.total("enroll"), s.estimation.total("enroll"))
    _same(ours.ratio("api.stu", "enroll"), s.estimation.ratio(y="api_stu", x="enroll"))
    # domains crossing the strata, and domains inside one stratum: their own degrees of freedom
    by = ["stype", "comp_imp"]
    got = ours.mean("api00", by=["stype", "comp.imp"])
    _same(got, s.estimation.mean("api00", by=by), keys=by)
    assert got["df"].nunique() > 1 and (got["df"] < ours.df).all()
    _same(ours.total("enroll", by="comp.imp"), s.estimation.total("enroll", by="comp_imp"), keys=["comp_imp"])


def test_stratified_cluster_domains_and_ratio(apistrat):
    ours = Design(apistrat, weight="pw", strata="stype", psu="dnum")
    s = _sample(apistrat, stratum="stype", psu="dnum", wgt="pw")
    _same(ours.mean("api00", by="stype"), s.estimation.mean("api00", by="stype"), keys=["stype"])
    _same(ours.mean("api00", by="comp.imp"), s.estimation.mean("api00", by="comp_imp"), keys=["comp_imp"])
    _same(ours.ratio("api00", "api99"), s.estimation.ratio(y="api00", x="api99"))


def _quantiles(ours: pd.DataFrame, theirs, keys=()):
    """Our quantile table against svy's list of one Estimate per probability."""
    for p, est in zip(sorted(ours["q"].unique()), theirs, strict=True):
        _same(ours[ours["q"] == p].drop(columns=["variable", "q"]), est, keys=keys, columns=INTERVAL_COLUMNS)


def test_quantiles_of_a_stratified_design(apistrat):
    ours = Design(apistrat, weight="pw", strata="stype", fpc="fpc").quantile("api00",
                                                                              [0.1, 0.25, 0.5, 0.75, 0.9])
    s = _sample(apistrat, stratum="stype", wgt="pw", pop_size="fpc")
    _quantiles(ours, s.estimation.quantile("api00", p=[0.1, 0.25, 0.5, 0.75, 0.9]))


def test_quantiles_by_domain_with_domain_df(apiclus1):
    ours = Design(apiclus1, weight="pw", psu="dnum", fpc="fpc").quantile("api00", [0.25, 0.5], by="stype")
    s = _sample(apiclus1, psu="dnum", wgt="pw", pop_size="fpc")
    _quantiles(ours, s.estimation.quantile("api00", p=[0.25, 0.5], by="stype"), keys=["stype"])
    assert sorted(ours["df"].unique()) == [7, 11, 14]   # the districts each school type touches, minus one


def test_quantiles_of_calibrated_designs(clus1_raked, clus1_post):
    for ours, s in (clus1_raked, clus1_post):
        _quantiles(ours.quantile("api00", [0.5, 0.75], by="comp.imp"),
                   s.estimation.quantile("api00", p=[0.5, 0.75], by="comp_imp"), keys=["comp_imp"])


@pytest.mark.parametrize("kind", ["mean", "total", "ratio"])
def test_contrasts_of_domains(clus1_raked, kind):
    ours, s = clus1_raked
    coefficients = {"E": 1, "H": -0.5, "M": -0.5}
    if kind == "ratio":
        got = ours.contrast("api00", "stype", coefficients, kind="ratio", denominator="api99")
        theirs = s.estimation.ratio(y="api00", x="api99", by="stype")
    else:
        got = ours.contrast("api00", "stype", coefficients, kind=kind)
        theirs = getattr(s.estimation, kind)("api00", by="stype")
    _same(got, theirs.contrast(coefficients), columns=INTERVAL_COLUMNS)


def test_contrast_of_two_domains_of_a_plain_design(apiclus1):
    design = Design(apiclus1, weight="pw", psu="dnum", fpc="fpc")
    ours = design.contrast("api00", "comp.imp", {"Yes": 1, "No": -1})
    s = _sample(apiclus1, psu="dnum", wgt="pw", pop_size="fpc")
    theirs = s.estimation.mean("api00", by="comp_imp").contrast({"Yes": 1, "No": -1})
    _same(ours, theirs, columns=INTERVAL_COLUMNS)


@pytest.mark.parametrize("mse", [False, True])
def test_jackknife_with_calibration_in_each_replicate(apiclus1, mse):
    center = "estimate" if mse else "rep_mean"
    base = Design(apiclus1, weight="pw", psu="dnum").jackknife(mse=mse)
    s = _sample(apiclus1, psu="dnum", wgt="pw").weighting.create_jk_wgts()
    est = s.estimation
    _same(base.mean("api00"), est.mean("api00", method="replication", variance_center=center),
          columns=INTERVAL_COLUMNS)
    raked = base.rake({"stype": pd.Series(POP_TYPES), "sch.wide": pd.Series(POP_SCHWIDE)}, tol=1e-12)
    est = s.weighting.rake(controls={"stype": POP_TYPES, "sch_wide": POP_SCHWIDE}, tol=1e-12,
                           max_iter=1000).estimation
    _same(raked.mean("api00", by="stype"),
          est.mean("api00", by="stype", method="replication", variance_center=center), keys=["stype"],
          columns=INTERVAL_COLUMNS)
    _same(raked.total("enroll"), est.total("enroll", method="replication", variance_center=center),
          columns=INTERVAL_COLUMNS)
    _same(raked.ratio("api00", "api99"), est.ratio(y="api00", x="api99", method="replication",
                                                   variance_center=center), columns=INTERVAL_COLUMNS)
    post = base.poststratify("stype", pd.Series(POP_TYPES))
    est = s.weighting.poststratify(controls=POP_TYPES, cells="stype").estimation
    _same(post.total("enroll", by="sch.wide"),
          est.total("enroll", by="sch_wide", method="replication", variance_center=center), keys=["sch_wide"],
          columns=INTERVAL_COLUMNS)


def test_bootstrap_replicates_calibrated_like_svy(apistrat):
    # svy's own draws cannot be ours; it gets our replicate weights (before calibration) and our scale,
    # and redoes the calibration in each replicate itself
    replicates = 40
    ours = Design(apistrat, weight="pw", strata="stype", psu="dnum").bootstrap(replicates, seed=3)
    base = ours._rep.base
    reps = pd.DataFrame(base, columns=[f"bw{r + 1}" for r in range(replicates)])
    rep_wgts = svy.RepWeights(method="bootstrap", prefix="bw", n_reps=replicates, scale=1 / (replicates - 1))
    s = _sample(apistrat, reps, stratum="stype", psu="dnum", wgt="pw", rep_wgts=rep_wgts)
    cols = {"est": "est", "se": "se"}
    _same(ours.mean("api00", by="comp.imp"), s.estimation.mean("api00", by="comp_imp", method="replication"),
          keys=["comp_imp"], columns=cols)
    raked = ours.rake({"sch.wide": pd.Series(POP_SCHWIDE), "comp.imp": pd.Series(POP_COMPIMP)}, tol=1e-12)
    est = s.weighting.rake(controls={"sch_wide": POP_SCHWIDE, "comp_imp": POP_COMPIMP}, tol=1e-12,
                           max_iter=1000).estimation
    _same(raked.mean("api00", by="stype"), est.mean("api00", by="stype", method="replication"),
          keys=["stype"], columns=cols)
    _same(raked.total("enroll"), est.total("enroll", method="replication"), columns=cols)
    _same(raked.ratio("api.stu", "enroll"), est.ratio(y="api_stu", x="enroll", method="replication"),
          columns=cols)
