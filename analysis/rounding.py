"""Rounding as official tables and spreadsheets do it: half away from zero on the decimal value.

Python's ``round`` and ``numpy.round`` round half to even on the binary float, so 2.385 (stored as
2.38499999999999978...) becomes 2.38, while an analyst re-computing the table in Excel gets
``ROUND(2.385, 2)`` = 2.39. Excel rounds the number as it displays it, i.e. its decimal value to
15 significant digits, half away from zero; :func:`round_half_away` does the same, so every published
value equals what a spreadsheet gives from the same inputs.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

__all__ = ["SIGNIFICANT_DIGITS", "round_half_away"]

#: Digits of the decimal value that is rounded (Excel keeps 15 significant digits).
SIGNIFICANT_DIGITS = 15


def _round_one(x: float, quantum: Decimal) -> float:
    if not np.isfinite(x):
        return float(x)
    return float(Decimal(f"{x:.{SIGNIFICANT_DIGITS}g}").quantize(quantum, rounding=ROUND_HALF_UP))


def round_half_away(values, digits: int = 2):
    """Round to *digits* decimals, half away from zero, on the 15-digit decimal value (Excel ``ROUND``).

    Parameters
    ----------
    values : float, array-like or Series
        Numbers; NaN and infinities pass through.
    digits : int
        Decimal places (>= 0).

    Returns
    -------
    The same kind as *values* (a Series keeps its index and name).

    Examples
    --------
    >>> round_half_away(2.385), round(2.385, 2)
    (2.39, 2.38)
    >>> round_half_away([1.625, -1.625, 0.125], 2).tolist()
    [1.63, -1.63, 0.13]
    """
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or digits < 0:
        raise ValueError(f"digits must be an integer >= 0, got {digits!r}")
    quantum = Decimal(1).scaleb(-int(digits))
    if np.isscalar(values):
        return _round_one(float(values), quantum)
    arr = np.asarray(values, dtype=np.float64)
    out = np.array([_round_one(x, quantum) for x in arr.ravel()], dtype=np.float64).reshape(arr.shape)
    if isinstance(values, pd.Series):
        return pd.Series(out, index=values.index, name=values.name)
    return out
