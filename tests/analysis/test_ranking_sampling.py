"""rank_intervals and sample-size recommendations."""
import numpy as np
import pandas as pd
import pytest

from analysis import rank_intervals, recommend_sample_size, recommend_sample_sizes


def test_rank_intervals_deterministic_and_grouped():
    est = pd.DataFrame({"est": [10.0, 9.9, 5.0, 7.0, 6.0], "se": [0.5, 0.5, 0.01, 0.01, 0.01],
                        "kind": ["d", "d", "d", "v", "v"]}, index=list("abcde"))
    r1 = rank_intervals(est, by="kind", se="se", seed=1, draws=2000)
    r2 = rank_intervals(est, by="kind", se="se", seed=1, draws=2000)
    pd.testing.assert_frame_equal(r1, r2)
    assert r1["rank"].tolist() == [1, 2, 3, 1, 2]
    assert (r1.loc["a", "rank_lo"], r1.loc["a", "rank_hi"]) == (1, 2)  # a and b overlap
    assert (r1.loc["c", "rank_lo"], r1.loc["c", "rank_hi"]) == (3, 3)
    low = rank_intervals(est, by="kind", se="se", higher_is_better=False, draws=500)
    assert low.loc["d", "rank"] == 2 and low.loc["e", "rank"] == 1


def test_rank_intervals_with_covariance_and_nan():
    est = pd.Series({"a": 1.0, "b": 1.05, "c": np.nan})
    # strongly positively correlated estimates: the difference is precise, ranks are certain
    cov = pd.DataFrame([[1.0, 0.999999, 0], [0.999999, 1.0, 0], [0, 0, 1]], index=est.index, columns=est.index)
    r = rank_intervals(est, cov=cov, draws=2000)
    assert r.loc["b", "rank_hi"] == 1 and r.loc["a", "rank_lo"] == 2
    assert pd.isna(r.loc["c", "rank"])
    with pytest.raises(ValueError, match="give cov or se"):
        rank_intervals(est)


def test_yamane():
    assert recommend_sample_size(60) == 38  # 60 / (1 + 60 * .01) = 37.5 -> 38
    assert recommend_sample_size(10) == 10  # capped at N
    assert recommend_sample_size(20) == 17  # 20 / 1.2 = 16.7 -> 17
    assert recommend_sample_size(16, floor=15) == 15  # 16 / 1.16 = 13.8 -> floor 15
    assert recommend_sample_size(100) == 50
    assert recommend_sample_size(0) == 0
    s = pd.Series([60, 10, 100, 1000], index=list("abcd"))
    assert recommend_sample_sizes(s).tolist() == [recommend_sample_size(int(n)) for n in s]
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError):
            recommend_sample_size(bad)
    with pytest.raises(ValueError, match="margin"):
        recommend_sample_size(10, margin=0)
    with pytest.raises(ValueError):
        recommend_sample_sizes(pd.Series([1.5]))
