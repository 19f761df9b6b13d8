"""Multistage designs, calibration, lonely-PSU rules and users' replicate weights against R ``survey``.

Every expected value is R's printed output (R 4.2 with ``survey`` 4.1, ``options(digits=10)``), typed from
the R call written above it, after ``library(survey); data(api)``; each is checked to half a unit of its
last printed digit (about 1e-9 relative).
"""
import numpy as np
import pandas as pd
import pytest

from analysis import Design, domain_means, weighting
from tests.analysis.oracles import printed

POP_CAL = [6194, 755, 1018, 3914069]   # (Intercept), stypeH, stypeM, api99: the calibration totals


def _check(row, est, est_digits, se, se_digits):
    printed(row["est"], est, est_digits), printed(row["se"], se, se_digits)


# --------------------------------------------------------------------------------------------------
# multistage designs
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dclus2(apiclus2):
    # dclus2 <- svydesign(id=~dnum+snum, fpc=~fpc1+fpc2, data=apiclus2): the weights come from the fpc
    return Design(apiclus2, psu=["dnum", "snum"], fpc=["fpc1", "fpc2"])


def test_two_stage_cluster_design(dclus2, apiclus2):
    # svymean(~api00, dclus2): api00 670.81181 30.09903
    _check(dclus2.mean("api00").iloc[0], 670.81181, 5, 30.09903, 5)
    # svytotal(~enroll, dclus2, na.rm=TRUE): enroll 2639272.9 799637.77
    _check(dclus2.total("enroll").iloc[0], 2639272.9, 1, 799637.77, 2)
    # svyratio(~api.stu, ~enroll, dclus2, na.rm=TRUE): 0.8197370421, SE 0.01885056331
    _check(dclus2.ratio("api.stu", "enroll").iloc[0], 0.8197370421, 10, 0.01885056331, 11)
    # degf(dclus2): 39 (the first stage's districts minus one)
    assert dclus2.df == 39
    np.testing.assert_allclose(dclus2.weights, apiclus2["pw"], rtol=1e-12)


def test_two_stage_domains_and_quantile(dclus2):
    # svyby(~api00, ~stype, dclus2, svymean)
    #   E 692.8104009 29.92660424 / H 598.3406593 17.69416713 / M 642.3520000 45.09131630
    by = dclus2.mean("api00", by="stype").set_index("stype")
    for stype, est, se in (("E", 692.8104009, 29.92660424), ("H", 598.3406593, 17.69416713),
                           ("M", 642.3520000, 45.09131630)):
        _check(by.loc[stype], est, 7, se, 8)
    # svyquantile(~api00, dclus2, 0.5, ci=TRUE): 653, (580, 766), se 45.97835442
    q = dclus2.quantile("api00", 0.5).iloc[0]
    assert [q["est"], q["ci_lo"], q["ci_hi"]] == [653, 580, 766]
    printed(q["se"], 45.97835442, 8)


def test_without_fpc_only_the_first_stage_counts(apiclus2):
    # svymean(~api00, svydesign(id=~dnum+snum, weights=~pw, data=apiclus2)): 670.81181 30.71158
    d = Design(apiclus2, weight="pw", psu=["dnum", "snum"])
    _check(d.mean("api00").iloc[0], 670.81181, 5, 30.71158, 5)


def test_multistage_arguments_are_checked(apiclus2):
    with pytest.raises(ValueError, match="one fpc column per stage"):
        Design(apiclus2, psu=["dnum", "snum"], fpc=["fpc1"])
    with pytest.raises(ValueError, match="at most one column per stage"):
        Design(apiclus2, psu="dnum", fpc=["fpc1", "fpc2"])
    with pytest.raises(ValueError, match="smaller than the number of sampled units"):
        Design(apiclus2.assign(f2=1.5), psu=["dnum", "snum"], fpc=["fpc1", "f2"])
    with pytest.raises(ValueError, match="constant within each stratum of its stage"):
        Design(apiclus2.assign(f2=apiclus2["fpc2"] + apiclus2["snum"] % 2), psu=["dnum", "snum"], fpc=["fpc1", "f2"])
    with pytest.raises(ValueError, match="psu must name a column for every stage"):
        Design(apiclus2, psu=["dnum", None], fpc=["fpc1", "fpc2"])
    with pytest.raises(ValueError, match="missing column"):
        Design(apiclus2, psu=["dnum", "school"], fpc=["fpc1", "fpc2"])


# --------------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dclus1(apiclus1):
    # dclus1 <- svydesign(id=~dnum, weights=~pw, data=apiclus1, fpc=~fpc)
    return Design(apiclus1, weight="pw", psu="dnum", fpc="fpc")


@pytest.mark.parametrize("calfun, mean, total, by_comp_imp", [
    # cal <- calibrate(dclus1, ~stype+api99, c(6194, 755, 1018, 3914069)); svymean(~api00, cal);
    # svytotal(~enroll, cal); svyby(~api00, ~comp.imp, cal, svymean)
    ("linear", (665.30907, 5, 3.44175), (3638487.2, 385524.43),
     ((649.7061255, 12.562563536), (672.0489960, 6.518152798))),
    # the same with calfun="raking"
    ("raking", (665.3938, 4, 3.43775), (3616588.6, 387618.63),
     ((650.4941914, 12.720416739), (671.8307019, 6.576913108))),
])
def test_calibration_matches_r(dclus1, calfun, mean, total, by_comp_imp):
    cal = dclus1.calibrate(["stype", "api99"], POP_CAL, calfun=calfun)
    m, t = cal.mean("api00").iloc[0], cal.total("enroll").iloc[0]
    _check(m, mean[0], mean[1], mean[2], 5)
    _check(t, total[0], 1, total[1], 2)
    by = cal.mean("api00", by="comp.imp").set_index("comp.imp")
    for level, (est, se) in zip(("No", "Yes"), by_comp_imp):
        printed(by.loc[level, "est"], est, 7), printed(by.loc[level, "se"], se, 9)


@pytest.mark.parametrize("calfun, mean, total, g_range", [
    # calibrate(dclus1, ~stype+api99, c(6194, 755, 1018, 3914069), calfun="logit", bounds=c(0.7, 1.7)):
    # svymean 665.46097 3.41998; svytotal 3657885.1 378603.95; range(weights(cal)/weights(dclus1))
    # 0.7008753272 1.6968813101
    ("logit", (665.46097, 5, 3.41998), (3657885.1, 378603.95), (0.7008753272, 1.6968813101)),
    # the same with calfun="linear": 665.4878 3.41754; 3655490.6 376312.09; 0.7 1.7
    ("linear", (665.4878, 4, 3.41754), (3655490.6, 376312.09), (0.7, 1.7)),
])
def test_bounded_calibration_matches_r(dclus1, calfun, mean, total, g_range):
    cal = dclus1.calibrate(["stype", "api99"], POP_CAL, calfun=calfun, bounds=(0.7, 1.7))
    m, t = cal.mean("api00").iloc[0], cal.total("enroll").iloc[0]
    _check(m, mean[0], mean[1], mean[2], 5)
    _check(t, total[0], 1, total[1], 2)
    g = cal.weights / dclus1.weights
    printed(g.min(), g_range[0], 10), printed(g.max(), g_range[1], 10)


def test_calibration_totals_hold_and_population_is_named(dclus1, apiclus1):
    named = {"(Intercept)": 6194, "stypeH": 755, "stypeM": 1018, "api99": 3914069}
    cal = dclus1.calibrate(["stype", "api99"], named, calfun="raking")
    mm = weighting.model_matrix(apiclus1, ["stype", "api99"])
    np.testing.assert_allclose(mm.to_numpy().T @ cal.weights.to_numpy(), POP_CAL, rtol=1e-7)
    # the replicate designs recalibrate every replicate: the total of the calibration variable has no variance
    jk = dclus1.jackknife().calibrate(["stype", "api99"], named)
    assert jk.total("api99").iloc[0]["se"] < 1e-6 * 3914069
    with pytest.raises(ValueError, match="missing \\['stypeM'\\]"):
        dclus1.calibrate(["stype", "api99"], {k: v for k, v in named.items() if k != "stypeM"})
    with pytest.raises(ValueError, match="finite bounds"):
        dclus1.calibrate(["stype"], POP_CAL[:3], calfun="logit")
    with pytest.raises(ValueError, match="did not converge"):
        dclus1.calibrate(["stype", "api99"], POP_CAL, calfun="logit", bounds=(0.99, 1.01))
    with pytest.raises(ValueError, match="calfun must be"):
        dclus1.calibrate(["stype"], POP_CAL[:3], calfun="quadratic")


# --------------------------------------------------------------------------------------------------
# strata with a single PSU
# --------------------------------------------------------------------------------------------------
def _lonely(apiclus1, rule):
    # options(survey.lonely.psu=rule); d <- svydesign(id=~1, weights=~pw, strata=~dnum, data=apiclus1):
    # district 413 has one school, an elementary school
    return Design(apiclus1, weight="pw", strata="dnum", lonely_psu=rule)


def test_adjust_leaves_the_lonely_psu_uncentred_for_totals(apiclus1):
    d = _lonely(apiclus1, "adjust")
    # svytotal(~enroll, d): 3404940.1 161998.58; svymean(~api00, d): 644.1694 5.82806
    _check(d.total("enroll").iloc[0], 3404940.1, 1, 161998.58, 2)
    printed(d.mean("api00").iloc[0]["se"], 5.82806, 5)
    # svyby(~enroll, ~stype, d, svytotal): E 94101.73398, H 172635.56861, M 153763.87040
    by = d.total("enroll", by="stype").set_index("stype")["se"]
    for stype, se in (("E", 94101.73398), ("H", 172635.56861), ("M", 153763.87040)):
        printed(by[stype], se, 5)


def test_average_inflates_only_the_domains_that_touch_the_lonely_stratum(apiclus1):
    d = _lonely(apiclus1, "average")
    # svymean(~api00, d): 6.00955; svytotal(~enroll, d): 167409.46
    printed(d.mean("api00").iloc[0]["se"], 6.00955, 5)
    printed(d.total("enroll").iloc[0]["se"], 167409.46, 2)
    # svyby(~api00, ~stype, d, svymean): E 7.970301451, H 23.419057798, M 20.817079812 (H and M as under
    # "certainty": they never touch district 413)
    by = d.mean("api00", by="stype").set_index("stype")["se"]
    fast = domain_means(apiclus1, "api00", "stype", "pw", strata="dnum", lonely_psu="average")
    fast = fast.set_index("stype")["se"]
    for stype, se in (("E", 7.970301451), ("H", 23.419057798), ("M", 20.817079812)):
        printed(by[stype], se, 9)
        printed(fast[stype], se, 9)   # the vectorised engine of the scoring follows the same rule
    # a calibrated design keeps every row in each domain, so every domain is inflated:
    # svyby(~api00, ~stype, postStratify(d, ~stype, data.frame(stype=c("E","H","M"),
    # Freq=c(4421,755,1018))), svymean): E 7.970301451, H 24.241027828, M 21.547724737
    post = d.poststratify("stype", pd.Series({"E": 4421.0, "H": 755.0, "M": 1018.0}))
    by = post.mean("api00", by="stype").set_index("stype")["se"]
    for stype, se in (("E", 7.970301451), ("H", 24.241027828), ("M", 21.547724737)):
        printed(by[stype], se, 9)
    np.testing.assert_allclose(np.sqrt(np.diag(d.covariance("api00", "stype"))),
                               d.mean("api00", by="stype")["se"], rtol=1e-12)


def test_remove_drops_the_lonely_stratum(apiclus1):
    d = _lonely(apiclus1, "remove")
    # svymean(~api00, d): 644.1694 5.80578; svytotal(~enroll, d): 3404940.1 161732.9;
    # svyby(~enroll, ~stype, d, svytotal): E 93643.62143
    printed(d.mean("api00").iloc[0]["se"], 5.80578, 5)
    printed(domain_means(apiclus1, "api00", None, "pw", strata="dnum", lonely_psu="remove").iloc[0]["se"], 5.80578, 5)
    printed(d.total("enroll").iloc[0]["se"], 161732.9, 1)
    printed(d.total("enroll", by="stype").set_index("stype").loc["E", "se"], 93643.62143, 5)


@pytest.mark.parametrize("rule, mean_se, total_se, awards_se", [
    # one_h <- apistrat[apistrat$stype != "H" | apistrat$snum == 627, ]   (one high school: stratum H is lonely)
    # options(survey.lonely.psu=rule); d <- svydesign(id=~1, strata=~stype, weights=~pw, data=one_h)
    # svymean(~api00, d); svytotal(~enroll, d); svyby(~api00, ~awards, d, svymean)
    ("adjust", (10.6307, 4), (98480.463, 3), (19.40155704, 12.61948626)),
    ("average", (13.00226, 5), (113773.9, 1), (23.69084128, 12.61948626)),
    ("remove", (10.6163, 4), (92896.003, 3), (19.34349090, 12.61948626)),
])
def test_lonely_psu_rules_on_one_high_school(apistrat, rule, mean_se, total_se, awards_se):
    # every rule: svymean 666.7948, svytotal 2722740.5, svyby No 639.6532876, Yes 679.4901358; school 627 has
    # awards "No", so the domain "Yes" never touches the lonely stratum and "average" leaves it as it is
    one_h = apistrat[(apistrat["stype"] != "H") | (apistrat["snum"] == 627)]
    d = Design(one_h, weight="pw", strata="stype", lonely_psu=rule)
    _check(d.mean("api00").iloc[0], 666.7948, 4, *mean_se)
    _check(d.total("enroll").iloc[0], 2722740.5, 1, *total_se)
    fast = domain_means(one_h, "api00", "awards", "pw", strata="stype", lonely_psu=rule)
    for by in (d.mean("api00", by="awards").set_index("awards"), fast.set_index("awards")):
        _check(by.loc["No"], 639.6532876, 7, awards_se[0], 8)
        _check(by.loc["Yes"], 679.4901358, 7, awards_se[1], 8)


# --------------------------------------------------------------------------------------------------
# replicate weights a user already has
# --------------------------------------------------------------------------------------------------
SCD = pd.DataFrame({"ESA": [1, 1, 2, 2, 3, 3], "ambulance": [1, 2] * 3, "arrests": [120, 78, 185, 228, 670, 530.0],
                    "alive": [25, 24, 30, 49, 80, 70.0]})   # data(scd)
BRR_HALVES = np.array([[1, 0, 1, 0, 1, 0], [1, 0, 0, 1, 0, 1], [0, 1, 1, 0, 0, 1], [0, 1, 0, 1, 1, 0]]).T


def _with(frame, columns: dict) -> tuple[pd.DataFrame, list]:
    return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1), list(columns)


def test_brr_and_fay_of_the_svrepdesign_example():
    # rw <- 2*cbind(c(1,0,1,0,1,0), c(1,0,0,1,0,1), c(0,1,1,0,0,1), c(0,1,0,1,1,0))
    # brr <- svrepdesign(data=scd, type="BRR", repweights=rw, combined.weights=FALSE)
    frame, cols = _with(SCD, {f"r{k}": 2.0 * BRR_HALVES[:, k] for k in range(4)})
    brr = Design.from_replicates(frame, None, cols, type="BRR", combined_weights=False)
    # svyratio(~alive, ~arrests, brr): 0.1535063501, SE 0.00941840067
    _check(brr.ratio("alive", "arrests").iloc[0], 0.1535063501, 10, 0.00941840067, 11)
    # svymean(~alive, brr): 46.333333 3.58236; svytotal(~arrests, brr): 1811 152.35813
    _check(brr.mean("alive").iloc[0], 46.333333, 6, 3.58236, 5)
    _check(brr.total("arrests").iloc[0], 1811, 0, 152.35813, 5)
    assert brr.df == 3
    # fay <- svrepdesign(data=scd, type="Fay", rho=0.3, repweights=ifelse(rw>0, 1.7, 0.3), combined.weights=FALSE)
    # svyratio(~alive, ~arrests, fay): SE 0.009525187478
    frame, cols = _with(SCD, {f"r{k}": np.where(BRR_HALVES[:, k] > 0, 1.7, 0.3) for k in range(4)})
    fay = Design.from_replicates(frame, None, cols, type="Fay", rho=0.3, combined_weights=False)
    printed(fay.ratio("alive", "arrests").iloc[0]["se"], 0.009525187478, 12)


def test_jk1_with_combined_weights(apiclus1):
    # cl <- sort(unique(apiclus1$dnum)); jk <- sapply(cl, function(k) ifelse(apiclus1$dnum==k, 0, apiclus1$pw*15/14))
    # r1 <- svrepdesign(data=cbind(apiclus1, jk), type="JK1", repweights="jk[0-9]+", weights=~pw, scale=14/15)
    jk = {f"jk{k}": np.where(apiclus1["dnum"] == d, 0.0, apiclus1["pw"] * 15 / 14)
          for k, d in enumerate(sorted(apiclus1["dnum"].unique()))}
    frame, cols = _with(apiclus1, jk)
    r1 = Design.from_replicates(frame, "pw", cols, type="JK1", scale=14 / 15)
    # svymean(~api00, r1): 644.1694 26.59416; svytotal(~enroll, r1): 3404940.1 941610.74
    _check(r1.mean("api00").iloc[0], 644.1694, 4, 26.59416, 5)
    _check(r1.total("enroll").iloc[0], 3404940.1, 1, 941610.74, 2)
    # svyratio(~api.stu, ~enroll, r1): 0.8497087417 0.009612800811
    _check(r1.ratio("api.stu", "enroll").iloc[0], 0.8497087417, 10, 0.009612800811, 12)
    # svyquantile(~api00, r1, c(0.25, 0.5), ci=TRUE): 552 (482, 629) se 34.26914220; 652 (551, 722) se 39.86410419;
    # degf(r1) 14
    q = r1.quantile("api00", [0.25, 0.5])
    assert q[["est", "ci_lo", "ci_hi"]].to_numpy().tolist() == [[552, 482, 629], [652, 551, 722]]
    printed(q["se"].iloc[0], 34.26914220, 8), printed(q["se"].iloc[1], 39.86410419, 8)
    assert r1.df == 14 and (q["df"] == 14).all()
    # the scale R guesses for combined JK1 weights: (R - 1)/R
    guessed = Design.from_replicates(frame, "pw", cols, type="JK1")
    printed(guessed.mean("api00").iloc[0]["se"], 26.59416, 5)


@pytest.fixture(scope="module")
def jkn(apistrat):
    # nh <- table(apistrat$stype)[apistrat$stype]; one replicate per school i, deleting it and reweighting its stratum:
    # jn <- sapply(seq_len(nrow(apistrat)), function(i) ifelse(seq_len(nrow(apistrat))==i, 0,
    #              ifelse(apistrat$stype==apistrat$stype[i], apistrat$pw*nh/(nh-1), apistrat$pw)))
    # rs <- as.numeric((nh-1)/nh)
    n = len(apistrat)
    nh = apistrat.groupby("stype")["pw"].transform("size").to_numpy()
    same = apistrat["stype"].to_numpy()[:, None] == apistrat["stype"].to_numpy()[None, :]
    reps = np.where(same, (apistrat["pw"].to_numpy() * nh / (nh - 1))[:, None], apistrat["pw"].to_numpy()[:, None])
    np.fill_diagonal(reps, 0.0)
    frame, cols = _with(apistrat, {f"j{i}": reps[:, i] for i in range(n)})
    return frame, cols, (nh - 1) / nh


def test_jkn_with_rscales_and_mse(jkn):
    frame, cols, rscales = jkn
    # rn <- svrepdesign(data=apistrat, type="JKn", repweights=jn, weights=~pw, rscales=rs)
    rn = Design.from_replicates(frame, "pw", cols, type="JKn", rscales=rscales)
    # svymean(~api00, rn): 662.28736 9.53613; svytotal(~enroll, rn): 3687177.5 117319.09
    _check(rn.mean("api00").iloc[0], 662.28736, 5, 9.53613, 5)
    _check(rn.total("enroll").iloc[0], 3687177.5, 1, 117319.09, 2)
    # svyby(~api00, ~comp.imp, rn, svymean): No 635.4123560 16.23595292; Yes 676.4022861 11.89711689
    by = rn.mean("api00", by="comp.imp").set_index("comp.imp")
    _check(by.loc["No"], 635.4123560, 7, 16.23595292, 8)
    _check(by.loc["Yes"], 676.4022861, 7, 11.89711689, 8)
    # svyratio(~api.stu, ~enroll, svrepdesign(..., rscales=rs, mse=TRUE)): 0.8369568869 0.007986097684
    mse = Design.from_replicates(frame, "pw", cols, type="JKn", rscales=rscales, mse=True)
    _check(mse.ratio("api.stu", "enroll").iloc[0], 0.8369568869, 10, 0.007986097684, 12)
    with pytest.raises(ValueError, match="needs rscales"):
        Design.from_replicates(frame, "pw", cols, type="JKn")


def test_bootstrap_replicates(apistrat):
    # i <- seq_len(nrow(apistrat)); bm <- sapply(1:20, function(r) ((i*7 + r*13) %% 5)/2)   (typed multipliers)
    # rb <- svrepdesign(data=apistrat, type="bootstrap", repweights=bm, weights=~pw, combined.weights=FALSE)
    i = np.arange(1, len(apistrat) + 1)
    frame, cols = _with(apistrat, {f"b{r}": ((i * 7 + r * 13) % 5) / 2 for r in range(1, 21)})
    rb = Design.from_replicates(frame, "pw", cols, type="bootstrap", combined_weights=False)
    # svymean(~api00, rb): 662.28736 11.34344; svytotal(~enroll, rb): 3687177.5 57922.88
    _check(rb.mean("api00").iloc[0], 662.28736, 5, 11.34344, 5)
    _check(rb.total("enroll").iloc[0], 3687177.5, 1, 57922.88, 2)
    # svyquantile(~api00, rb, 0.5, ci=TRUE): 668 (619, 714) se 17.10820787; degf(rb) 4
    q = rb.quantile("api00", 0.5).iloc[0]
    assert [q["est"], q["ci_lo"], q["ci_hi"]] == [668, 619, 714]
    printed(q["se"], 17.10820787, 8)
    assert rb.df == 4


@pytest.mark.parametrize("kind, mean_se, total_se", [
    # i <- seq_len(nrow(apistrat)); m <- sapply(1:8, function(r) 1 + ((i*3 + r*5) %% 7 - 3)/4)   (typed multipliers)
    # d <- svrepdesign(data=apistrat, type=kind, repweights=m, weights=~pw, combined.weights=FALSE)
    # options(digits=12); SE(svymean(~api00, d)); SE(svytotal(~enroll, d))
    ("successive-difference", 12.5580277242, 106448.846737),
    ("ACS", 12.5580277242, 106448.846737),
    ("JK2", 17.7597331243, 150541.402754),
])
def test_successive_difference_acs_and_jk2(apistrat, kind, mean_se, total_se):
    i = np.arange(1, len(apistrat) + 1)
    frame, cols = _with(apistrat, {f"m{r}": 1 + ((i * 3 + r * 5) % 7 - 3) / 4 for r in range(1, 9)})
    d = Design.from_replicates(frame, "pw", cols, type=kind, combined_weights=False)
    printed(d.mean("api00").iloc[0]["se"], mean_se, 10), printed(d.total("enroll").iloc[0]["se"], total_se, 6)
    with pytest.raises(ValueError, match="sets its own rscales"):
        Design.from_replicates(frame, "pw", cols, type=kind, rscales=0.5, combined_weights=False)


def test_replicate_arguments_are_checked(apiclus1):
    frame, cols = _with(apiclus1, {"a": apiclus1["pw"], "b": apiclus1["pw"]})
    with pytest.raises(ValueError, match="type must be"):
        Design.from_replicates(frame, "pw", cols, type="JK3")
    with pytest.raises(ValueError, match="sets its own scale"):
        Design.from_replicates(frame, "pw", cols, type="BRR", scale=0.5)
    with pytest.raises(ValueError, match="rho"):
        Design.from_replicates(frame, "pw", cols, type="Fay")
    with pytest.raises(ValueError, match="at least two"):
        Design.from_replicates(frame, "pw", cols[:1], type="JK1")
    with pytest.raises(ValueError, match="missing values"):
        Design.from_replicates(frame.assign(a=np.nan), "pw", cols, type="JK1")
    with pytest.raises(ValueError, match="one per replicate"):
        Design.from_replicates(frame, "pw", cols, type="other", rscales=[1, -1])
