"""The validity rule: which answers count, so that a notebook on exported answers can apply it as the
service does.

A response's answers about one agency (the pair ``response_id`` × ``agency``) count only when it answers at
least ``min_answered_share`` of its form's rated items; an answer is an option that carries a score, so a
blank or an excluded option ("K", không biết) is not one. A blank (a skipped question: no row, or a missing
option) stays apart from "K" in the data, so a table can tell item nonresponse from "don't know"; for this
rule both are no answer. The rule is the round's setting ``validity.min_answered_share``.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from analysis._checks import require_columns, require_frame
from analysis.tables import pair_codes

__all__ = ["answered_enough", "scored_answers"]


def scored_answers(option: pd.Series | pd.Categorical, excluded: Sequence[str]) -> np.ndarray:
    """True for every answer that carries a score: an option given that is not one of *excluded*."""
    values = pd.Categorical(option) if not isinstance(option, pd.Categorical) else option
    return (values.codes >= 0) & ~np.asarray(values.isin(list(excluded)))


def answered_enough(answers: pd.DataFrame, *, rated_items: Mapping[str, int] | Hashable | np.ndarray,
                    min_answered_share: float, excluded: Sequence[str] = ("K",),
                    response: Hashable = "response_id") -> np.ndarray:
    """Rows of the response × agency pairs that answer enough of their form's rated items.

    Parameters
    ----------
    answers : DataFrame
        Long answers (``response_id``, ``agency``, ``option``; ``group`` when *rated_items* maps forms),
        one row per item a response has a row for, as in the exported answers file.
    rated_items : mapping, column name or array
        The number of rated items of each row's form: a mapping group → count, the name of a column, or one
        value per row (a round whose questionnaire versions differ gives it per row).
    min_answered_share : float
        The share in (0, 1] of the rated items a pair must answer.
    excluded : sequence of str
        Options that are no answer (don't know).
    response : column name
        The response identifier (``response_id``).

    Returns
    -------
    ndarray of bool
        True for the rows of the pairs that count.

    Examples
    --------
    >>> a = pd.DataFrame({"response_id": [1, 1, 2, 2], "agency": "SNV", "group": "CC-CT",
    ...                   "option": ["3", "K", "4", "5"]})
    >>> answered_enough(a, rated_items={"CC-CT": 2}, min_answered_share=0.75).tolist()
    [False, False, True, True]
    """
    require_frame(answers, "answers")
    require_columns(answers, [response, "agency", "option"], "answers")
    share = float(min_answered_share)
    if not 0 <= share <= 1:
        raise ValueError(f"min_answered_share must be in [0, 1], got {min_answered_share!r}")
    if isinstance(rated_items, Mapping):
        require_columns(answers, ["group"], "answers")
        n_rated = answers["group"].astype(str).map(rated_items).to_numpy(dtype=float)
        if np.isnan(n_rated).any():
            missing = sorted(set(answers["group"].astype(str)) - set(rated_items))
            raise ValueError(f"rated_items has no count for group(s) {missing}")
    elif isinstance(rated_items, np.ndarray):
        n_rated = rated_items.astype(float)
    else:
        require_columns(answers, [rated_items], "answers")
        n_rated = answers[rated_items].to_numpy(dtype=float)
    if len(n_rated) != len(answers):
        raise ValueError(f"rated_items gives {len(n_rated)} counts for {len(answers)} answers")
    unit, n_units = pair_codes(_codes(answers[response]), _codes(answers["agency"]))
    answered = np.bincount(unit, weights=scored_answers(answers["option"], excluded), minlength=n_units)
    return answered[unit] >= n_rated * share - 1e-9


def _codes(column: pd.Series) -> np.ndarray:
    """Integer codes of a column's values (its own when it is categorical or integer)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy()
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.to_numpy()
    return pd.factorize(column)[0]
