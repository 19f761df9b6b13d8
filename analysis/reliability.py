"""When an estimate is too imprecise to publish without a warning, and why.

A flag must follow precision: a small agency whose few answers agree can be precise, a large one whose
answers scatter can be imprecise, so a rule on the (Kish) effective sample size alone flags the wrong
ones. The rule here looks at the confidence interval itself, on the estimate's full scale (the
maximum points of a criterion or of the total, 100 % for a percentage): an estimate is flagged when its
interval reaches further than ``max_half_width`` of that scale from the estimate, or when it has no
usable variance at all (one sampling unit in a stratum, so no spread can be measured).
"""
from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_MAX_HALF_WIDTH", "DEFAULT_PRECISION", "REASONS", "imprecise", "precision_reasons"]

#: Default threshold: an interval reaching more than 10 % of the scale from the estimate.
DEFAULT_MAX_HALF_WIDTH = 0.10
#: Half-widths are compared after rounding to this many decimals, so that a value equal to the
#: threshold in decimal terms is never flagged because of the last bit of a binary float.
_COMPARE_DECIMALS = 9


def imprecise(est, se, ci_lo, ci_hi, scale, *, max_half_width: float = DEFAULT_MAX_HALF_WIDTH) -> np.ndarray:
    """Boolean flags: the estimate exists and its interval is too wide, or it has no variance.

    Parameters
    ----------
    est, se, ci_lo, ci_hi : array-like
        Estimates with their standard errors and confidence limits (same shape).
    scale : float or array-like
        The full range of each estimate (maximum points; 1 for a share; 100 for a percentage).
    max_half_width : float
        Largest acceptable half-width as a share of *scale*, in (0, 1].

    Returns
    -------
    ndarray of bool
        False where the estimate itself is missing (that case has its own flag).

    Notes
    -----
    half-width = max(est − ci_lo, ci_hi − est), the longer side (logit intervals are asymmetric).

    Examples
    --------
    >>> imprecise([2.0, 2.0, 2.0], [0.1, 0.3, float("nan")], [1.8, 1.4, float("nan")],
    ...           [2.2, 2.6, float("nan")], 4.0).tolist()
    [False, True, True]
    """
    if not isinstance(max_half_width, (int, float)) or isinstance(max_half_width, bool) \
            or not 0 < max_half_width <= 1:
        raise ValueError(f"max_half_width must be a number in (0, 1], got {max_half_width!r}")
    est, se, lo, hi = (np.asarray(x, dtype=np.float64) for x in (est, se, ci_lo, ci_hi))
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), est.shape)
    present = ~np.isnan(est)
    with np.errstate(invalid="ignore"):
        half = np.fmax(est - lo, hi - est)
        no_variance = ~np.isfinite(se) | ~np.isfinite(half)
        share = np.round(np.where(scale > 0, half / np.where(scale > 0, scale, 1.0), np.inf), _COMPARE_DECIMALS)
        wide = share > max_half_width
    return present & (no_variance | wide)


#: Why an estimate is flagged, worst first: too few respondents, too small an effective sample (unequal
#: weights), a variance resting on too few responses (degrees of freedom; a sampling cell of one response), or an
#: interval too wide for its scale.
REASONS = ("it_nguoi_tra_loi", "mau_hieu_dung_nho", "it_bac_tu_do", "khoang_rong")
#: The round's ``precision`` settings when it names none. Chosen on the bundled rounds' simulated data
#: (docs/analysis.md): an estimate resting on fewer than 10 responses, or whose variance has fewer than 8 degrees
#: of freedom (the National Center for Health Statistics' threshold for proportions), is not published as
#: reliable; a share whose 95 % interval reaches more than 25 points from it neither.
DEFAULT_PRECISION = {"min_n": 10, "min_n_eff": 10, "min_df": 8, "max_half_width_pct": 0.25}


def precision_reasons(est, se, ci_lo, ci_hi, scale, *, n, n_eff, df, lonely, max_half_width: float,
                      min_n: int, min_n_eff: float, min_df: int) -> np.ndarray:
    """The reasons (:data:`REASONS`, comma-separated, "" for none) each estimate is not reliable.

    *n* (responses), *n_eff* (Kish effective sample) and *df* (degrees of freedom of the variance) may hold NaN
    where they do not apply; *lonely* marks estimates resting on a sampling cell with one response. A missing
    estimate has no reason (it has its own flag). The interval rule is :func:`imprecise`'s (an estimate
    without a variance counts as too wide only when it has no interval either).
    """
    est = np.asarray(est, dtype=np.float64)
    present = ~np.isnan(est)
    n, n_eff, df = (np.broadcast_to(np.asarray(x, dtype=np.float64), est.shape) for x in (n, n_eff, df))
    lonely = np.broadcast_to(np.asarray(lonely, dtype=bool), est.shape)
    lo, hi = np.asarray(ci_lo, dtype=np.float64), np.asarray(ci_hi, dtype=np.float64)
    se = np.where(np.isnan(np.asarray(se, dtype=np.float64)) & np.isfinite(lo) & np.isfinite(hi), 0.0, se)
    with np.errstate(invalid="ignore"):
        rules = [n < min_n, n_eff < min_n_eff, (df < min_df) | lonely,
                 imprecise(est, se, lo, hi, scale, max_half_width=max_half_width)]
    names = np.asarray(REASONS, dtype=object)
    hit = np.stack(rules, axis=-1) & present[..., None]
    return np.array([",".join(names[row]) for row in hit.reshape(-1, len(REASONS))],
                    dtype=object).reshape(est.shape)
