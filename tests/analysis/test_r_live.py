"""The Design object against R ``survey`` itself, run live on cases the printed-value tests do not hold.

One ``Rscript`` run computes every case and prints ``key value`` lines with 15 significant digits; the
replicate weights R draws (bootstrap, BRR, JKn) are written to a CSV that the Python side reads, so both
use the same replicates. Each number must agree to 1e-8 relative. Without R and its ``survey`` package
the module is skipped with the reason, except in CI (``CI=true``), where that is an error.
"""
import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from analysis import Design

R_SCRIPT = r"""
suppressMessages(library(survey)); data(api); options(warn=-1)
out <- function(key, x) cat(key, format(unname(as.numeric(x)), digits=15), "\n")
est <- function(key, e) { out(paste0(key, ".est"), coef(e)); out(paste0(key, ".se"), SE(e)) }
args <- commandArgs(TRUE)

# a two-stage design: several variables, domain totals, a ratio by domain, fpc given as fractions
dclus2 <- svydesign(id=~dnum+snum, fpc=~fpc1+fpc2, data=apiclus2)
est("clus2.mean.ell_meals", svymean(~ell+meals, dclus2))
est("clus2.total.enroll.by.comp", svyby(~enroll, ~comp.imp, dclus2, svytotal, na.rm=TRUE))
est("clus2.ratio.by.stype", svyby(~api.stu, ~stype, denominator=~enroll, dclus2, svyratio, na.rm=TRUE))
frac <- transform(apiclus2, f1=40/fpc1, f2=ave(snum, dnum, FUN=length)/fpc2)
est("clus2frac.mean", svymean(~api00, svydesign(id=~dnum+snum, fpc=~f1+f2, data=frac)))
# strata at both stages (districts by size, then schools by type within each district), lonely units at stage 2
for (rule in c("certainty", "adjust")) {
  options(survey.lonely.psu=rule)
  d <- svydesign(id=~dnum+snum, strata=~big+stype, fpc=~fpc1+fpc2, data=transform(apiclus2, big=fpc2>20), nest=TRUE)
  est(paste0("strat2.", rule, ".total"), svytotal(~enroll, d, na.rm=TRUE))
  est(paste0("strat2.", rule, ".by.comp"), svyby(~api00, ~comp.imp, d, svymean))
}
options(survey.lonely.psu="certainty")
# calibration of a two-stage design and of a stratified one
est("clus2cal.mean", svymean(~api00, calibrate(dclus2, ~stype, c(6194, 755, 1018))))
types <- data.frame(stype=c("E", "H", "M"), Freq=c(4421, 755, 1018))
est("clus2post.total", svytotal(~enroll, postStratify(dclus2, ~stype, types), na.rm=TRUE))
rk <- rake(dclus2, list(~stype, ~sch.wide), list(types, data.frame(sch.wide=c("No", "Yes"), Freq=c(1072, 5122))),
           control=list(maxit=100, epsilon=1e-12))
est("clus2rake.by.comp", svyby(~api00, ~comp.imp, rk, svymean))
c2 <- calibrate(dclus2, ~stype+api99, c(6194, 755, 1018, 3914069), bounds=c(0.5, 2))
est("clus2bounded.ratio.by.comp", svyby(~api.stu, ~comp.imp, denominator=~enroll, c2, svyratio, na.rm=TRUE))
q <- svyquantile(~api00, c2, c(0.3, 0.6), ci=TRUE)$api00
out("clus2bounded.quantile", q)
dstrat <- svydesign(id=~1, strata=~stype, weights=~pw, fpc=~fpc, data=apistrat)
for (cf in c("linear", "raking")) {
  cal <- calibrate(dstrat, ~sch.wide+api99, c(6194, 5122, 3914069), calfun=cf)
  est(paste0("strat.", cf, ".total.by.comp"), svyby(~enroll, ~comp.imp, cal, svytotal))
  est(paste0("strat.", cf, ".ratio"), svyratio(~api.stu, ~enroll, cal))
}
est("strat.logit.mean", svymean(~api00, calibrate(dstrat, ~sch.wide+api99, c(6194, 5122, 3914069),
                                                   calfun="logit", bounds=c(0.8, 1.3))))
# strata of schools within districts: many districts with one sampled school
for (rule in c("adjust", "average", "remove")) {
  options(survey.lonely.psu=rule)
  d <- svydesign(id=~snum, strata=~dnum, weights=~pw, data=apiclus2)
  est(paste0("lonely.", rule, ".total"), svytotal(~enroll, d, na.rm=TRUE))
  est(paste0("lonely.", rule, ".by.stype"), svyby(~api00, ~stype, d, svymean))
}
options(survey.lonely.psu="certainty")
# replicate weights drawn by R, handed to the Python side
set.seed(19)
rb <- as.svrepdesign(dstrat, type="bootstrap", replicates=30)
rn <- as.svrepdesign(svydesign(id=~dnum, strata=~stype, weights=~pw, data=apistrat, nest=TRUE), type="JKn")
pairs <- svydesign(id=~1, strata=~pair, weights=~pw, data=transform(apistrat[order(apistrat$api00), ],
                                                                   pair=rep(1:100, each=2)))
rr <- as.svrepdesign(pairs, type="BRR")
ord <- order(apistrat$api00)
write.csv(data.frame(boot=weights(rb, "analysis"), jkn=weights(rn, "analysis"),
                     brr=weights(rr, "analysis")[order(ord), ]), args[1], row.names=FALSE)
out("boot.scale", rb$scale); out("jkn.rscales", rn$rscales); out("brr.n", ncol(weights(rr, "analysis")))
est("boot.mean.by.comp", svyby(~api00, ~comp.imp, rb, svymean))
est("boot.quantile", svyquantile(~api00, rb, c(0.1, 0.9)))
est("jkn.total", svytotal(~enroll, rn))
est("jkn.mean.raked", svymean(~api00, rake(rn, list(~sch.wide), list(data.frame(sch.wide=c("No", "Yes"),
                                                                                   Freq=c(1072, 5122))))))
est("jkn.mean.calibrated", svymean(~api00, calibrate(rn, ~sch.wide+api99, c(6194, 5122, 3914069),
                                                     calfun="raking")))
est("brr.ratio", svyratio(~api.stu, ~enroll, rr))
est("brr.mean", svymean(~api00, rr))
"""


def _r_results(tmp_path) -> tuple[dict, pd.DataFrame]:
    missing = shutil.which("Rscript") is None
    if not missing:
        run = subprocess.run(["Rscript", "-e", "library(survey)"], capture_output=True, text=True, timeout=120)
        missing = run.returncode != 0
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("R with the survey package is required in CI: apt-get install r-base-core r-cran-survey")
        pytest.skip("R with the survey package (Debian: r-base-core r-cran-survey) is not installed")
    script, reps = tmp_path / "cases.R", tmp_path / "replicates.csv"
    script.write_text(R_SCRIPT)
    run = subprocess.run(["Rscript", str(script), str(reps)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    values = {}
    for line in run.stdout.splitlines():
        key, *numbers = line.split()
        values[key] = np.array([float(v) for v in numbers])
    return values, pd.read_csv(reps)


@pytest.fixture(scope="module")
def r_run(tmp_path_factory):
    return _r_results(tmp_path_factory.mktemp("r_live"))


@pytest.fixture(scope="module")
def r(r_run):
    """R's numbers by key."""
    return r_run[0]


def _same(ours: pd.DataFrame, r_values: dict, key: str):
    np.testing.assert_allclose(ours["est"].to_numpy(float), r_values[f"{key}.est"], rtol=1e-8, err_msg=key)
    np.testing.assert_allclose(ours["se"].to_numpy(float), r_values[f"{key}.se"], rtol=1e-8, err_msg=key)


def test_two_stage_designs(r, apiclus2):
    d = Design(apiclus2, psu=["dnum", "snum"], fpc=["fpc1", "fpc2"])
    _same(d.mean(["ell", "meals"]), r, "clus2.mean.ell_meals")
    _same(d.total("enroll", by="comp.imp"), r, "clus2.total.enroll.by.comp")
    _same(d.ratio("api.stu", "enroll", by="stype"), r, "clus2.ratio.by.stype")
    frac = apiclus2.assign(f1=40 / apiclus2["fpc1"],
                           f2=apiclus2.groupby("dnum")["snum"].transform("size") / apiclus2["fpc2"])
    _same(Design(frac, psu=["dnum", "snum"], fpc=["f1", "f2"]).mean("api00"), r, "clus2frac.mean")
    _same(d.calibrate(["stype"], [6194, 755, 1018]).mean("api00"), r, "clus2cal.mean")
    types = pd.Series({"E": 4421.0, "H": 755.0, "M": 1018.0})
    _same(d.poststratify("stype", types).total("enroll"), r, "clus2post.total")
    raked = d.rake({"stype": types, "sch.wide": pd.Series({"No": 1072.0, "Yes": 5122.0})}, tol=1e-12)
    _same(raked.mean("api00", by="comp.imp"), r, "clus2rake.by.comp")
    bounded = d.calibrate(["stype", "api99"], [6194, 755, 1018, 3914069], bounds=(0.5, 2))
    _same(bounded.ratio("api.stu", "enroll", by="comp.imp"), r, "clus2bounded.ratio.by.comp")
    q = bounded.quantile("api00", [0.3, 0.6])   # R's matrix: quantiles, lower ends, upper ends, SEs
    np.testing.assert_allclose(q[["est", "ci_lo", "ci_hi", "se"]].to_numpy().T.ravel(), r["clus2bounded.quantile"],
                               rtol=1e-8)


@pytest.mark.parametrize("rule", ["certainty", "adjust"])
def test_strata_at_both_stages(r, apiclus2, rule):
    frame = apiclus2.assign(big=apiclus2["fpc2"] > 20)
    d = Design(frame, strata=["big", "stype"], psu=["dnum", "snum"], fpc=["fpc1", "fpc2"], lonely_psu=rule)
    _same(d.total("enroll"), r, f"strat2.{rule}.total")
    _same(d.mean("api00", by="comp.imp"), r, f"strat2.{rule}.by.comp")


def test_calibrated_stratified_design(r, apistrat):
    dstrat = Design(apistrat, weight="pw", strata="stype", fpc="fpc")
    for calfun in ("linear", "raking"):
        cal = dstrat.calibrate(["sch.wide", "api99"], [6194, 5122, 3914069], calfun=calfun)
        _same(cal.total("enroll", by="comp.imp"), r, f"strat.{calfun}.total.by.comp")
        _same(cal.ratio("api.stu", "enroll"), r, f"strat.{calfun}.ratio")
    logit = dstrat.calibrate(["sch.wide", "api99"], [6194, 5122, 3914069], calfun="logit", bounds=(0.8, 1.3))
    _same(logit.mean("api00"), r, "strat.logit.mean")


@pytest.mark.parametrize("rule", ["adjust", "average", "remove"])
def test_lonely_psu_rules_on_many_lonely_strata(r, apiclus2, rule):
    d = Design(apiclus2, weight="pw", strata="dnum", psu="snum", lonely_psu=rule)
    _same(d.total("enroll"), r, f"lonely.{rule}.total")
    _same(d.mean("api00", by="stype"), r, f"lonely.{rule}.by.stype")


def test_replicate_weights_drawn_by_r(r_run, apistrat):
    values, reps = r_run
    frame = pd.concat([apistrat, reps], axis=1)

    def cols(prefix):
        return [c for c in reps.columns if c.startswith(prefix + ".")]

    boot = Design.from_replicates(frame, "pw", cols("boot"), type="bootstrap", scale=values["boot.scale"][0])
    _same(boot.mean("api00", by="comp.imp"), values, "boot.mean.by.comp")
    np.testing.assert_allclose(boot.quantile("api00", [0.1, 0.9])["est"], values["boot.quantile.est"], rtol=1e-8)
    jkn = Design.from_replicates(frame, "pw", cols("jkn"), type="JKn", rscales=values["jkn.rscales"])
    _same(jkn.total("enroll"), values, "jkn.total")
    raked = jkn.rake({"sch.wide": pd.Series({"No": 1072.0, "Yes": 5122.0})})
    _same(raked.mean("api00"), values, "jkn.mean.raked")
    calibrated = jkn.calibrate(["sch.wide", "api99"], [6194, 5122, 3914069], calfun="raking")
    _same(calibrated.mean("api00"), values, "jkn.mean.calibrated")
    brr = Design.from_replicates(frame, "pw", cols("brr"), type="BRR")
    assert len(cols("brr")) == values["brr.n"][0]
    _same(brr.ratio("api.stu", "enroll"), values, "brr.ratio")
    _same(brr.mean("api00"), values, "brr.mean")
