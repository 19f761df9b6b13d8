"""Rank intervals: league tables with their Monte-Carlo uncertainty."""
from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd

from analysis._checks import require_level, require_positive_int

__all__ = ["rank_intervals"]


def rank_intervals(
    estimates: pd.Series | pd.DataFrame,
    *,
    by: Hashable | pd.Series | None = None,
    cov: pd.DataFrame | None = None,
    se: Hashable | pd.Series | None = None,
    draws: int = 10000,
    seed: int = 0,
    level: float = 0.95,
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """Rank units within groups and give a Monte-Carlo interval for each rank.

    Parameters
    ----------
    estimates : Series or DataFrame
        Point estimates indexed by unit (e.g. agency); a DataFrame must have an ``est`` column.
    by : column name or Series, optional
        Group of each unit (e.g. agency kind); units are ranked only against their group.
    cov : DataFrame, optional
        Covariance matrix of the estimates (index and columns = units). Takes precedence over *se*.
    se : column name or Series, optional
        Standard errors (independent estimates, diagonal covariance). One of *cov* / *se* is needed.
    draws : int
        Number of Monte-Carlo draws.
    seed : int
        Seed of ``numpy.random.default_rng``; the result is deterministic for a seed.
    level : float
        Coverage of the rank interval.
    higher_is_better : bool
        Rank 1 goes to the highest estimate (else the lowest).

    Returns
    -------
    DataFrame
        Indexed like *estimates*: the group column (if any), ``est``, ``rank`` (1 = best, ties share
        the best rank), ``rank_lo``, ``rank_hi``. Units with a missing estimate get missing ranks.

    Notes
    -----
    Draw θ⁽ᵇ⁾ ~ N(est, Σ) for b = 1..B within each group, rank every draw, and report the
    (1 − level)/2 and (1 + level)/2 quantiles ("inverted CDF", so integers) of each unit's ranks.

    Examples
    --------
    >>> est = pd.Series({"a": 3.0, "b": 2.0, "c": 1.0})
    >>> rank_intervals(est, se=pd.Series(0.01, index=est.index))[["rank", "rank_lo", "rank_hi"]].to_numpy().tolist()
    [[1, 1, 1], [2, 2, 2], [3, 3, 3]]
    """
    level = require_level(level)
    draws = require_positive_int(draws, "draws")
    if isinstance(estimates, pd.DataFrame):
        if "est" not in estimates.columns:
            raise ValueError("estimates frame must have an 'est' column")
        est = estimates["est"]
    elif isinstance(estimates, pd.Series):
        est = estimates
    else:
        raise TypeError(f"estimates must be a Series or DataFrame, got {type(estimates).__name__}")
    if not est.index.is_unique:
        raise ValueError("estimates must have a unique index (one row per unit)")
    est = est.astype(np.float64)
    groups = _aligned(estimates, by, est.index, "by")
    if cov is not None:
        if not isinstance(cov, pd.DataFrame):
            raise TypeError("cov must be a DataFrame indexed by unit on both axes")
        missing = est.index.difference(cov.index).union(est.index.difference(cov.columns))
        if len(missing):
            raise ValueError(f"cov lacks units {list(missing[:10])}")
        sigma_all = cov.loc[est.index, est.index].to_numpy(dtype=np.float64)
    elif se is not None:
        sd = _aligned(estimates, se, est.index, "se").astype(np.float64)
        sigma_all = np.diag(sd.to_numpy() ** 2)
    else:
        raise ValueError("give cov or se")

    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    n = len(est)
    rank = np.full(n, np.nan)
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    keys = pd.Series(0, index=est.index) if groups is None else groups
    for _, pos in sorted(pd.Series(np.arange(n), index=est.index).groupby(keys.to_numpy(), sort=True).groups.items(),
                         key=lambda kv: str(kv[0])):
        idx = np.asarray(est.index.get_indexer(pos))
        ok = idx[np.isfinite(est.to_numpy()[idx])]
        if ok.size == 0:
            continue
        mu = est.to_numpy()[ok]
        sigma = sigma_all[np.ix_(ok, ok)]
        if np.any(~np.isfinite(sigma)):
            raise ValueError("cov / se has missing values for units with an estimate")
        sign = -1.0 if higher_is_better else 1.0
        rank[ok] = pd.Series(sign * mu).rank(method="min").to_numpy()
        vals, vecs = np.linalg.eigh((sigma + sigma.T) / 2)
        if np.any(vals < -1e-10 * max(1.0, float(np.abs(vals).max()))):
            raise ValueError("covariance matrix is not positive semi-definite")
        root = vecs * np.sqrt(np.clip(vals, 0, None))
        sims = mu + rng.standard_normal((draws, ok.size)) @ root.T
        sim_rank = np.argsort(np.argsort(sign * sims, axis=1, kind="stable"), axis=1) + 1
        lo[ok] = np.quantile(sim_rank, alpha, axis=0, method="inverted_cdf")
        hi[ok] = np.quantile(sim_rank, 1 - alpha, axis=0, method="inverted_cdf")
    out = pd.DataFrame(index=est.index)
    if groups is not None:
        out[groups.name if groups.name is not None else "group"] = groups
    out["est"] = est
    for name, arr in (("rank", rank), ("rank_lo", lo), ("rank_hi", hi)):
        out[name] = pd.array(np.where(np.isnan(arr), pd.NA, arr), dtype="Int64") if np.isnan(arr).any() \
            else arr.astype(np.int64)
    return out


def _aligned(estimates, spec, index, name) -> pd.Series | None:
    if spec is None:
        return None
    if isinstance(spec, pd.Series):
        if not index.isin(spec.index).all():
            raise ValueError(f"{name} must have a value for every unit of estimates")
        return spec.loc[index]
    if isinstance(estimates, pd.DataFrame) and spec in estimates.columns:
        return estimates[spec]
    raise ValueError(f"{name} must be a Series or a column of the estimates frame, got {spec!r}")
