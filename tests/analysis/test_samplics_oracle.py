"""Cross-check of the domain means against samplics 0.6.1 (a pinned test oracle)."""
import warnings

import numpy as np
import pandas as pd
from numpy.testing import assert_allclose

from analysis import domain_means
from tests.analysis.oracles import oracle

oracle("samplics")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # samplics warns on import that it is archived
    from samplics.estimation import TaylorEstimator
    from samplics.utils.types import PopParam


def test_domain_means_match_samplics():
    # complete data: samplics drops missing rows, which shifts n_h (see statistics.md §1.2)
    rng = np.random.default_rng(11)
    n = 600
    df = pd.DataFrame({"y": rng.normal(3, 1, n), "d": rng.integers(0, 5, n), "s": rng.integers(0, 3, n),
                       "p": rng.integers(0, 40, n), "w": rng.lognormal(size=n)})
    df["psu"] = df["s"].astype(str) + "-" + df["p"].astype(str)
    ours = domain_means(df, "y", "d", "w", strata="s", psu="psu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        te = TaylorEstimator(PopParam.mean)
        te.estimate(y=df["y"], samp_weight=df["w"], stratum=df["s"], psu=df["psu"], domain=df["d"])
    assert_allclose(ours["est"], [te.point_est[k] for k in sorted(te.point_est)], rtol=1e-6)
    assert_allclose(ours["se"], [te.stderror[k] for k in sorted(te.stderror)], rtol=1e-6)
    assert_allclose(ours["ci_lo"], [te.lower_ci[k] for k in sorted(te.lower_ci)], rtol=1e-6)
