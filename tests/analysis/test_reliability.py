"""The reliability flag follows the width of the interval, with no floating-point edge."""
import numpy as np
import pytest

from analysis import imprecise


def test_flag_follows_precision_not_size():
    # est, se, ci_lo, ci_hi on a 4-point criterion: ±0.3 is fine, ±0.41 too wide, no variance flagged
    est = [2.0, 2.0, 2.0, np.nan]
    se = [0.15, 0.2, np.nan, np.nan]
    lo = [1.7, 1.59, np.nan, np.nan]
    hi = [2.3, 2.41, np.nan, np.nan]
    assert imprecise(est, se, lo, hi, 4.0).tolist() == [False, True, True, False]


def test_a_half_width_equal_to_the_threshold_in_decimals_is_not_flagged():
    # 0.4 - 0.3 is 0.10000000000000003 in binary floating point, 0.3 - 0.2 is 0.09999999999999998
    flags = imprecise([0.3, 0.3], [0.05, 0.05], [0.2, 0.2], [0.4, 0.4], 1.0, max_half_width=0.1)
    assert not flags.any()
    assert imprecise([0.3], [0.05], [0.2], [0.4000001], 1.0, max_half_width=0.1).tolist() == [True]


def test_asymmetric_interval_uses_the_longer_side_and_bad_threshold_is_refused():
    assert imprecise([0.05], [0.02], [0.04], [0.2], 1.0, max_half_width=0.1).tolist() == [True]
    with pytest.raises(ValueError, match="max_half_width"):
        imprecise([0.5], [0.1], [0.4], [0.6], 1.0, max_half_width=0)
