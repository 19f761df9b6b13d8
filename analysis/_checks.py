"""Input checks shared by the analysis modules.

Every check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, bad content)
with a message naming the offending argument, so callers in the service layer can show it as is.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd


def require_frame(obj: object, name: str = "frame") -> pd.DataFrame:
    """Return *obj* if it is a DataFrame, else raise TypeError."""
    if not isinstance(obj, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(obj).__name__}")
    return obj


def as_column_list(cols: Hashable | Sequence[Hashable] | None, name: str) -> list[Hashable]:
    """Normalise a column name or a list of names to a list (``None`` gives ``[]``)."""
    if cols is None:
        return []
    if isinstance(cols, (str, int, tuple)) or not isinstance(cols, Iterable):
        return [cols]
    out = list(cols)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} lists a column more than once: {out}")
    return out


def require_columns(frame: pd.DataFrame, cols: Iterable[Hashable], name: str = "frame") -> None:
    """Raise ValueError naming every column of *cols* that *frame* lacks."""
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it has {list(frame.columns)}")


def numeric_values(series: pd.Series, name: str) -> np.ndarray:
    """Return a float64 array of *series*, raising TypeError if it is not numeric or boolean."""
    if not (pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)):
        raise TypeError(f"column {name!r} must be numeric, got dtype {series.dtype}")
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def weight_values(frame: pd.DataFrame, weight: Hashable | None, name: str = "weight") -> np.ndarray:
    """Weights from column *weight* (or 1.0 for every row); finite and non-negative."""
    if weight is None:
        return np.ones(len(frame))
    require_columns(frame, [weight], "frame")
    w = numeric_values(frame[weight], str(weight))
    return check_weight_array(w, f"{name} column {weight!r}")


def check_weight_array(w: np.ndarray, name: str) -> np.ndarray:
    """Raise ValueError unless every weight is finite and >= 0."""
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} has missing or infinite values")
    if np.any(w < 0):
        raise ValueError(f"{name} has negative values")
    return w


def require_level(level: float) -> float:
    """Confidence level strictly between 0 and 1."""
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not 0 < level < 1:
        raise ValueError(f"level must be a number strictly between 0 and 1, got {level!r}")
    return float(level)


def require_positive_int(value: object, name: str) -> int:
    """Integer >= 1 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def require_no_missing(frame: pd.DataFrame, cols: Iterable[Hashable], what: str) -> None:
    """Raise ValueError if any of *cols* has a missing value."""
    for c in cols:
        if frame[c].isna().any():
            raise ValueError(f"{what} column {c!r} has missing values")
