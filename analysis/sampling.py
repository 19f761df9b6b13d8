"""Sample-size recommendations for quota planning (Yamane's formula with a floor), and response rates."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["recommend_sample_size", "recommend_sample_sizes", "response_rates"]


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


def response_rates(issued: int, complete: int, partial: int = 0) -> tuple[float, float]:
    """AAPOR RR1 and RR2 (Standard Definitions) of a channel whose every issued unit is eligible: RR1 =
    I / issued, RR2 = (I + P) / issued, with I the complete and P the partial responses; NaN when none issued.

    Every invitation code or paper sheet issued went to a sampled, eligible person, so the unknown-eligibility
    terms of the AAPOR denominator are empty and RR1 = RR3, RR2 = RR4.
    """
    if issued <= 0:
        return float("nan"), float("nan")
    return complete / issued, (complete + partial) / issued
