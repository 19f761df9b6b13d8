"""Sample sizes, sample selection and response rates: Yamane's formula with a floor (quota planning), the
size a precision target needs, systematic selection within a cell, systematic PPS selection of clusters
(communes), and response rates."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["pps_systematic", "precision_sample_size", "recommend_sample_size", "recommend_sample_sizes",
           "response_rates", "systematic_sample"]

#: The normal quantile of a two-sided 95 % interval.
Z95 = 1.959963984540054


def _check_options(margin: float, floor: int) -> None:
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin < 1:
        raise ValueError(f"margin must be a number strictly between 0 and 1, got {margin!r}")
    if isinstance(floor, bool) or not isinstance(floor, (int, np.integer)) or floor < 0:
        raise ValueError(f"floor must be a non-negative integer, got {floor!r}")


def recommend_sample_size(population: int, *, margin: float = 0.10, floor: int = 15) -> int:
    """Recommended number of respondents for a population of size N.

    Parameters
    ----------
    population : int
        Population size N (>= 0).
    margin : float
        Margin of error e, strictly between 0 and 1.
    floor : int
        Minimum sample size (capped at N).

    Returns
    -------
    int
        n = min(N, max(floor, ceil(N / (1 + N e²)))).

    Notes
    -----
    Yamane (1967): n = N / (1 + N e²), the 95 % sample size for a proportion near 0.5 with a finite
    population correction. A tolerance of 1e-9 guards the ceiling against floating-point noise.

    Examples
    --------
    >>> recommend_sample_size(60)
    38
    >>> recommend_sample_size(10)
    10
    """
    if isinstance(population, bool) or not isinstance(population, (int, np.integer)) or population < 0:
        raise ValueError(f"population must be a non-negative integer, got {population!r}")
    _check_options(margin, floor)
    n_pop = int(population)
    yamane = math.ceil(n_pop / (1 + n_pop * margin * margin) - 1e-9)
    return min(n_pop, max(int(floor), yamane))


def recommend_sample_sizes(populations: pd.Series, *, margin: float = 0.10, floor: int = 15) -> pd.Series:
    """Vectorised :func:`recommend_sample_size` over a Series of population sizes.

    Returns
    -------
    Series
        Integer sample sizes with the index and name of *populations*.

    Examples
    --------
    >>> recommend_sample_sizes(pd.Series([60, 10, 1000])).tolist()
    [38, 10, 91]
    """
    if not isinstance(populations, pd.Series):
        raise TypeError(f"populations must be a pandas Series, got {type(populations).__name__}")
    _check_options(margin, floor)
    if not pd.api.types.is_numeric_dtype(populations.dtype) or pd.api.types.is_bool_dtype(populations.dtype):
        raise TypeError(f"populations must be numeric, got dtype {populations.dtype}")
    vals = populations.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.any(~np.isfinite(vals)) or np.any(vals < 0) or np.any(vals != np.round(vals)):
        raise ValueError("populations must be non-negative integers without missing values")
    yamane = np.ceil(vals / (1 + vals * margin * margin) - 1e-9)
    out = np.minimum(vals, np.maximum(floor, yamane)).astype(np.int64)
    return pd.Series(out, index=populations.index, name=populations.name)


def precision_sample_size(population: int, *, proportion: float, half_width: float, z: float = Z95) -> int:
    """The sample that estimates a share near ``proportion`` to ``± half_width`` (simple random sampling
    without replacement from ``population``).

    n0 = z² p (1 - p) / d², then the finite population correction n = n0 / (1 + (n0 - 1) / N), rounded up
    and capped at N (Cochran 1977, eq. 4.2). With a target share such as 0.9, this is the size that tells
    a cell's share from the target within ``half_width``.

    Examples
    --------
    >>> precision_sample_size(10_000, proportion=0.5, half_width=0.05)
    370
    >>> precision_sample_size(200, proportion=0.9, half_width=0.05)
    83
    >>> precision_sample_size(5, proportion=0.9, half_width=0.01)
    5
    """
    if isinstance(population, bool) or not isinstance(population, (int, np.integer)) or population < 0:
        raise ValueError(f"population must be a non-negative integer, got {population!r}")
    if not 0 < proportion < 1:
        raise ValueError(f"proportion must be strictly between 0 and 1, got {proportion!r}")
    if not 0 < half_width < 1:
        raise ValueError(f"half_width must be strictly between 0 and 1, got {half_width!r}")
    if population == 0:
        return 0
    n0 = z * z * proportion * (1 - proportion) / (half_width * half_width)
    return min(int(population), math.ceil(n0 / (1 + (n0 - 1) / population) - 1e-9))


def systematic_sample(size: int, n: int, rng: np.random.Generator) -> list[int]:
    """Positions (0-based, increasing) of a systematic sample of ``n`` out of ``size`` units in their
    listed order: a random start in ``[0, k)`` and steps of ``k = size / n`` (a fractional interval, so
    exactly ``n`` units are taken whatever ``size``).

    Examples
    --------
    >>> systematic_sample(10, 5, np.random.default_rng(1))
    [1, 3, 5, 7, 9]
    >>> systematic_sample(3, 5, np.random.default_rng(1))
    [0, 1, 2]
    """
    if n < 0 or size < 0:
        raise ValueError("size and n must be non-negative")
    if n >= size:
        return list(range(size))
    if n == 0:
        return []
    step = size / n
    start = rng.uniform(0, step)
    return [min(size - 1, int(math.floor(start + i * step))) for i in range(n)]


def pps_systematic(sizes: list[int] | np.ndarray, m: int, rng: np.random.Generator) -> list[int]:
    """Indices (increasing) of ``m`` clusters drawn with probability proportional to size, systematically
    over the cumulated sizes in their listed order.

    A cluster at least as large as the interval is taken with certainty and the rest drawn among the
    others, repeatedly, so that no cluster is drawn twice (Cochran 1977, §9A.4; the usual rule for
    certainty units). Clusters of size 0 are never drawn.

    Examples
    --------
    >>> pps_systematic([500, 10, 10, 10, 10], 2, np.random.default_rng(3))[0]
    0
    >>> len(pps_systematic([5, 5, 5, 5], 4, np.random.default_rng(0)))
    4
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    if np.any(sizes < 0) or not np.all(np.isfinite(sizes)):
        raise ValueError("sizes must be non-negative numbers")
    eligible = [i for i, s in enumerate(sizes) if s > 0]
    if m < 0:
        raise ValueError("m must be non-negative")
    if m >= len(eligible):
        return eligible
    certain: list[int] = []
    rest = eligible
    while True:
        left = m - len(certain)
        total = sizes[rest].sum()
        big = [i for i in rest if sizes[i] * left >= total]
        if not big or left == 0:
            break
        certain += big
        rest = [i for i in rest if i not in big]
    left = m - len(certain)
    if left <= 0:
        return sorted(certain[:m])
    cumulated = np.cumsum(sizes[rest])
    step = cumulated[-1] / left
    start = rng.uniform(0, step)
    points = start + step * np.arange(left)
    picked = {rest[int(np.searchsorted(cumulated, p, side="right"))] for p in points}
    return sorted(certain + list(picked))
def response_rates(issued: int, complete: int, partial: int = 0) -> tuple[float, float]:
    """AAPOR RR1 and RR2 (Standard Definitions) of a channel whose every issued unit is eligible: RR1 =
    I / issued, RR2 = (I + P) / issued, with I the complete and P the partial responses; NaN when none issued.

    Every invitation code or paper sheet issued went to a sampled, eligible person, so the unknown-eligibility
    terms of the AAPOR denominator are empty and RR1 = RR3, RR2 = RR4.
    """
    if issued <= 0:
        return float("nan"), float("nan")
    return complete / issued, (complete + partial) / issued
