"""The Design object against svy 0.35 (a pinned test oracle that reproduces R ``survey``)."""
import pandas as pd
from numpy.testing import assert_allclose

from analysis import Design
from tests.analysis.oracles import oracle

svy = oracle("svy")
pl = oracle("polars")

POP_TYPES = {"E": 4421.0, "H": 755.0, "M": 1018.0}
POP_SCHWIDE = {"No": 1072.0, "Yes": 5122.0}
COLUMNS = {"est": "est", "se": "se", "lci": "ci_lo", "uci": "ci_hi", "df": "df", "n": "n"}


def _sample(frame, **design):
    return svy.Sample(data=pl.from_pandas(frame.rename(columns={"sch.wide": "sch_wide"})),
                      design=svy.Design(**design))


def _same(ours: pd.DataFrame, theirs, keys=()):
    t = theirs.to_polars().to_pandas()
    if keys:
        t = t.sort_values(list(keys)).reset_index(drop=True)
        ours = ours.sort_values(list(keys)).reset_index(drop=True)
    for theirs_col, our_col in COLUMNS.items():
        assert_allclose(ours[our_col].to_numpy(float), t[theirs_col].to_numpy(float), rtol=1e-6, err_msg=our_col)


def test_raked_mean_and_total(apiclus1):
    ours = Design(apiclus1, weight="pw", psu="dnum", fpc="fpc").rake(
        {"stype": pd.Series(POP_TYPES), "sch.wide": pd.Series(POP_SCHWIDE)})
    s = _sample(apiclus1, psu="dnum", wgt="pw", pop_size="fpc").weighting.rake(
        controls={"stype": POP_TYPES, "sch_wide": POP_SCHWIDE}, tol=1e-10, max_iter=1000)
    _same(ours.mean("api00"), s.estimation.mean("api00"))
    _same(ours.total("enroll"), s.estimation.total("enroll"))


def test_poststratified_domain_means_and_domain_df(apiclus1):
    ours = Design(apiclus1, weight="pw", psu="dnum", fpc="fpc").poststratify("stype", pd.Series(POP_TYPES))
    s = _sample(apiclus1, psu="dnum", wgt="pw", pop_size="fpc").weighting.poststratify(
        controls=POP_TYPES, cells="stype")
    _same(ours.mean("api00", by="sch.wide").rename(columns={"sch.wide": "sch_wide"}),
          s.estimation.mean("api00", by="sch_wide"), keys=["sch_wide"])
    _same(ours.total("enroll", by="stype"), s.estimation.total("enroll", by="stype"), keys=["stype"])


def test_stratified_cluster_domains_and_ratio(apistrat):
    ours = Design(apistrat, weight="pw", strata="stype", psu="dnum")
    s = _sample(apistrat, stratum="stype", psu="dnum", wgt="pw")
    _same(ours.mean("api00", by="stype"), s.estimation.mean("api00", by="stype"), keys=["stype"])
    _same(ours.ratio("api00", "api99"), s.estimation.ratio(y="api00", x="api99"))
