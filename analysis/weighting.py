"""Survey weights: post-stratification, raking (IPF), trimming and diagnostics.

All functions take frames or Series and return a new ``pd.Series`` aligned to the input index; inputs
are never modified. The conventions follow R's ``survey`` package (Lumley): ``postStratify``,
``rake`` and ``trimWeights``, with stricter defaults (raking converges to a relative misfit of 1e-8 and
raises instead of warning when it does not).

Quota samples are not probability samples: weights built here are pseudo-design weights that assume
responses are missing at random within the weighting cells.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from analysis._checks import (
    as_column_list,
    check_weight_array,
    require_columns,
    require_frame,
    require_no_missing,
    require_positive_int,
    weight_values,
)

__all__ = ["calibrate", "model_matrix", "poststratify", "rake", "trim", "weight_diagnostics"]

_TOTAL_RTOL = 1e-9


def _population_totals(totals: object, name: str) -> pd.Series:
    if not isinstance(totals, pd.Series):
        raise TypeError(f"{name} must be a pandas Series of population totals, got {type(totals).__name__}")
    if not totals.index.is_unique:
        raise ValueError(f"{name} has duplicate categories: {list(totals.index[totals.index.duplicated()])}")
    vals = totals.to_numpy(dtype=np.float64, na_value=np.nan) if pd.api.types.is_numeric_dtype(totals.dtype) else None
    if vals is None:
        raise TypeError(f"{name} must hold numeric population totals, got dtype {totals.dtype}")
    if not np.all(np.isfinite(vals)) or np.any(vals < 0):
        raise ValueError(f"{name} must hold finite, non-negative population totals")
    return pd.Series(vals, index=totals.index)


def _category_codes(values: pd.Series | pd.MultiIndex, index: pd.Index, what: str) -> np.ndarray:
    codes = index.get_indexer(values)
    if np.any(codes < 0):
        unknown = pd.unique(np.asarray(values)[codes < 0] if not isinstance(values, pd.MultiIndex)
                            else values[codes < 0])
        raise ValueError(f"sample has {what} not in the population totals: {list(unknown[:10])}")
    return codes


def poststratify(
    frame: pd.DataFrame,
    cells: Hashable | Sequence[Hashable],
    totals: pd.Series,
    weight: Hashable | None = None,
) -> pd.Series:
    """Post-stratify weights so that each cell sums to its population total.

    Parameters
    ----------
    frame : DataFrame
        One row per unit.
    cells : column name or list of column names
        The post-stratification cells (their cross-classification when several).
    totals : Series
        Population total N_g per cell; a MultiIndex (levels in the order of *cells*) for several
        columns. Cells with total 0 get weight 0.
    weight : column name, optional
        Starting weights; 1.0 for every unit when omitted.

    Returns
    -------
    Series
        The new weights, aligned to ``frame.index``, named ``"weight"``.

    Raises
    ------
    ValueError
        If a sample cell is missing from *totals*, or a cell with a positive population total has
        no sample weight (R ``postStratify`` without ``partial=TRUE``).

    Notes
    -----
    w_i ← w_i · N_g / Σ_{j∈g} w_j for unit i in cell g.

    Examples
    --------
    >>> df = pd.DataFrame({"sex": ["m", "m", "f"]})
    >>> poststratify(df, "sex", pd.Series({"m": 10.0, "f": 20.0})).tolist()
    [5.0, 5.0, 20.0]
    """
    require_frame(frame)
    cols = as_column_list(cells, "cells")
    if not cols:
        raise ValueError("cells must name at least one column")
    require_columns(frame, cols)
    require_no_missing(frame, cols, "cells")
    tot = _population_totals(totals, "totals")
    if len(cols) > 1 and tot.index.nlevels != len(cols):
        raise ValueError(f"totals must have a MultiIndex with {len(cols)} levels for cells {cols}")
    w = weight_values(frame, weight)
    keys = frame[cols[0]] if len(cols) == 1 else pd.MultiIndex.from_frame(frame[cols])
    codes = _category_codes(keys, tot.index, f"cell(s) of {cols}")
    sums = np.bincount(codes, weights=w, minlength=len(tot))
    target = tot.to_numpy()
    empty = (sums <= 0) & (target > 0)
    if np.any(empty):
        raise ValueError(
            f"post-stratification cell(s) {list(tot.index[empty][:10])} have a positive population "
            "total but no sample weight"
        )
    factor = np.divide(target, sums, out=np.zeros_like(target), where=sums > 0)
    return pd.Series(w * factor[codes], index=frame.index, name="weight")


def _ipf(cell_w: np.ndarray, cell_codes: list[np.ndarray], targets: list[np.ndarray], tol: float,
         max_iter: int, g_bounds: tuple[float, float] | None, base: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Fit cell weights to the margins; optionally keep g = w/base inside *g_bounds* every step."""
    w = cell_w.copy()
    misfit = np.inf
    for it in range(1, max_iter + 1):
        for codes, target in zip(cell_codes, targets):
            sums = np.bincount(codes, weights=w, minlength=target.size)
            factor = np.divide(target, sums, out=np.zeros_like(target), where=sums > 0)
            w *= factor[codes]
            if g_bounds is not None:
                np.clip(w, g_bounds[0] * base, g_bounds[1] * base, out=w)
        misfit = _max_misfit(w, cell_codes, targets)
        if misfit < tol:
            return w, it, misfit
    return w, max_iter, misfit


def _max_misfit(w: np.ndarray, cell_codes: list[np.ndarray], targets: list[np.ndarray]) -> float:
    worst = 0.0
    for codes, target in zip(cell_codes, targets):
        sums = np.bincount(codes, weights=w, minlength=target.size)
        pos = target > 0
        rel = np.abs(sums[pos] / target[pos] - 1.0)
        worst = max(worst, float(rel.max(initial=0.0)),
                    float(np.inf if np.any(sums[~pos] > 0) else 0.0))
    return worst


def rake(
    frame: pd.DataFrame,
    margins: Mapping[Hashable, pd.Series],
    weight: Hashable | None = None,
    *,
    tol: float = 1e-8,
    max_iter: int = 1000,
    bounds: tuple[float, float] | None = None,
) -> pd.Series:
    """Rake weights to population margins by iterative proportional fitting (IPF).

    Parameters
    ----------
    frame : DataFrame
        One row per unit, with one column per margin.
    margins : dict
        Column name -> Series of population totals indexed by category. All margins must have the
        same grand total (relative 1e-9).
    weight : column name, optional
        Starting (design) weights w0; 1.0 when omitted.
    tol : float
        Convergence criterion on the largest relative misfit max |Σ_{i∈cat} w_i / N_cat − 1|.
    max_iter : int
        Maximum number of full sweeps over the margins.
    bounds : (lo, hi), optional
        Bounds on g = w / w0. When the unbounded solution violates them, the weights are clipped to
        the bounds after every margin step and the raking continues until the margins also hold.

    Returns
    -------
    Series
        Raked weights aligned to ``frame.index``, named ``"weight"``. ``result.attrs`` holds
        ``iterations`` and ``max_misfit``.

    Raises
    ------
    ValueError
        If the margin totals disagree, a sample category is not in its margin, a category with a
        positive total has no sample weight, or the fit (with bounds) does not converge.

    Notes
    -----
    Each sweep multiplies, margin after margin, the weights of category k by N_k / Σ_{i∈k} w_i. The
    fit is done on the cross-classified cell table (Σ w0 per cell) and each unit gets its cell's
    factor, w_i = w0_i · g_cell(i); this is exact because raking factors are constant within cells.
    The solution minimises the Kullback–Leibler distance Σ w log(w/w0) subject to the margins, so the
    order of the margins does not matter (up to *tol*). Categories with population total 0 get
    weight 0.

    References
    ----------
    Lumley T., R package ``survey``, ``rake()`` and ``calibrate(calfun="raking")``.

    Examples
    --------
    >>> df = pd.DataFrame({"a": ["x", "x", "y", "y"], "b": ["u", "v", "u", "v"]})
    >>> w = rake(df, {"a": pd.Series({"x": 30.0, "y": 70.0}), "b": pd.Series({"u": 40.0, "v": 60.0})})
    >>> [round(v, 6) for v in w]
    [12.0, 18.0, 28.0, 42.0]
    """
    require_frame(frame)
    if not isinstance(margins, Mapping) or not margins:
        raise TypeError("margins must be a non-empty dict: column name -> Series of population totals")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    require_positive_int(max_iter, "max_iter")
    cols = list(margins)
    require_columns(frame, cols)
    require_no_missing(frame, cols, "margin")
    w0 = weight_values(frame, weight)
    if len(frame) == 0:
        raise ValueError("frame has no rows to rake")
    tots = {c: _population_totals(margins[c], f"margins[{c!r}]") for c in cols}
    grand = {c: float(t.sum()) for c, t in tots.items()}
    ref = grand[cols[0]]
    for c in cols[1:]:
        if abs(grand[c] - ref) > _TOTAL_RTOL * max(abs(ref), abs(grand[c])):
            raise ValueError(f"margin totals disagree: {cols[0]!r} sums to {ref!r}, {c!r} sums to {grand[c]!r}")
    if bounds is not None:
        if len(bounds) != 2 or not (0 <= bounds[0] < bounds[1]):
            raise ValueError(f"bounds must be (lo, hi) with 0 <= lo < hi, got {bounds!r}")
        if not (bounds[0] * w0.sum() <= ref * (1 + _TOTAL_RTOL) and ref <= bounds[1] * w0.sum() * (1 + _TOTAL_RTOL)):
            raise ValueError(f"bounds {bounds!r} cannot be met: the total {ref!r} is outside "
                             f"[lo, hi] x sum of starting weights {w0.sum()!r}")

    # Cross-classified cell table: one entry per observed combination of categories.
    unit_codes = [_category_codes(frame[c], tots[c].index, f"category of {c!r}") for c in cols]
    sizes = [len(tots[c]) for c in cols]
    if np.prod([float(s) for s in sizes]) < 2**62:
        key = np.zeros(len(frame), dtype=np.int64)
        for codes, size in zip(unit_codes, sizes):
            key = key * size + codes
        cell_of_unit, uniq = pd.factorize(key)
        cell_codes, rest = [], uniq.astype(np.int64)
        for size in reversed(sizes):
            cell_codes.append(rest % size)
            rest = rest // size
        cell_codes.reverse()
    else:
        stacked = np.column_stack(unit_codes)
        uniq, cell_of_unit = np.unique(stacked, axis=0, return_inverse=True)
        cell_codes = [uniq[:, j] for j in range(len(cols))]
    cell_of_unit = np.asarray(cell_of_unit).ravel()
    base = np.bincount(cell_of_unit, weights=w0)
    targets = [tots[c].to_numpy() for c in cols]
    for c, codes, target in zip(cols, cell_codes, targets):
        sums = np.bincount(codes, weights=base, minlength=target.size)
        empty = (sums <= 0) & (target > 0)
        if np.any(empty):
            raise ValueError(f"margin {c!r}: categories {list(tots[c].index[empty][:10])} have a positive "
                             "population total but no sample weight")

    fitted, iters, misfit = _ipf(base, cell_codes, targets, tol, max_iter, None, base)
    if misfit >= tol:
        raise ValueError(f"raking did not converge in {max_iter} sweeps (largest relative misfit {misfit:.3g})")
    if bounds is not None:
        g = np.divide(fitted, base, out=np.ones_like(base), where=base > 0)
        slack = 1e-12
        if np.any(g < bounds[0] - slack) or np.any(g > bounds[1] + slack):
            fitted, more, misfit = _ipf(fitted, cell_codes, targets, tol, max_iter, bounds, base)
            iters += more
            if misfit >= tol:
                raise ValueError(f"raking with bounds {bounds!r} did not converge in {max_iter} sweeps "
                                 f"(largest relative misfit {misfit:.3g}); the bounds may be impossible")
    g = np.divide(fitted, base, out=np.zeros_like(base), where=base > 0)
    out = pd.Series(w0 * g[cell_of_unit], index=frame.index, name="weight")
    out.attrs.update(iterations=iters, max_misfit=misfit)
    return out


def trim(
    weights: pd.Series,
    *,
    upper: float | None = None,
    lower: float | None = None,
    strict: bool = True,
) -> pd.Series:
    """Trim weights to [lower, upper] and share the trimmed amount equally among the other units.

    Parameters
    ----------
    weights : Series
        Non-negative weights.
    upper, lower : float, optional
        Bounds in weight units; omitted bounds are infinite.
    strict : bool
        If True (default), repeat until no weight lies outside the bounds; units once trimmed stay at
        their bound. If False, a single pass exactly as R ``trimWeights(strict=FALSE)``.

    Returns
    -------
    Series
        Trimmed weights with the same index, name and total as *weights*.

    Raises
    ------
    ValueError
        If the bounds are inconsistent or cannot hold the total (n · upper < Σw or n · lower > Σw).

    Notes
    -----
    One pass: E = Σ (w_i − upper)_+ − Σ (lower − w_i)_+; clip every weight to [lower, upper]; add
    E / #untrimmed to every untrimmed unit (equal absolute shares, as R ``trimWeights``), so Σw is
    unchanged. Trimming breaks raking margins: re-rake afterwards if the margins must hold.

    Examples
    --------
    >>> trim(pd.Series([1.0, 1.0, 1.0, 1.0, 6.0]), upper=4.0).tolist()
    [1.5, 1.5, 1.5, 1.5, 4.0]
    """
    if not isinstance(weights, pd.Series):
        raise TypeError(f"weights must be a pandas Series, got {type(weights).__name__}")
    w = check_weight_array(weights.to_numpy(dtype=np.float64, na_value=np.nan), "weights").copy()
    hi = np.inf if upper is None else float(upper)
    lo = -np.inf if lower is None else float(lower)
    if lo > hi:
        raise ValueError(f"lower ({lo}) must not exceed upper ({hi})")
    total, n = w.sum(), w.size
    if n and (hi * n < total * (1 - 1e-12) or lo * n > total * (1 + 1e-12)):
        raise ValueError(f"cannot trim to [{lo}, {hi}]: {n} weights must keep their total {total}")
    fixed = np.zeros(n, dtype=bool)
    for _ in range(n + 1):
        outside = (w < lo) | (w > hi)
        if not outside.any():
            break
        fixed |= outside
        excess = np.sum(w[w > hi] - hi) - np.sum(lo - w[w < lo])
        np.clip(w, lo, hi, out=w)
        free = ~fixed if strict else ~outside
        if not free.any():
            raise ValueError(f"cannot trim to [{lo}, {hi}]: every weight hit a bound")
        w[free] += excess / free.sum()
        if not strict:
            break
    return pd.Series(w, index=weights.index, name=weights.name if weights.name is not None else "weight")


def weight_diagnostics(weights: pd.Series, by: pd.Series | pd.DataFrame | None = None) -> pd.DataFrame:
    """Summaries of a weight vector, overall or per group.

    Parameters
    ----------
    weights : Series
        Non-negative weights.
    by : Series or DataFrame, optional
        Grouping aligned to ``weights.index``.

    Returns
    -------
    DataFrame
        Columns ``n, sum, min, median, max, n_eff, deff_w``; one row per group (index = group keys)
        or a single row labelled ``"all"``.

    Notes
    -----
    Kish effective sample size n_eff = (Σw)² / Σw² and weighting design effect
    deff_w = n / n_eff = 1 + CV²(w) (population CV).

    Examples
    --------
    >>> weight_diagnostics(pd.Series([1.0, 1.0, 2.0]))[["n", "n_eff"]].round(4).to_dict("records")
    [{'n': 3, 'n_eff': 2.6667}]
    """
    if not isinstance(weights, pd.Series):
        raise TypeError(f"weights must be a pandas Series, got {type(weights).__name__}")
    w = check_weight_array(weights.to_numpy(dtype=np.float64, na_value=np.nan), "weights")
    frame = pd.DataFrame({"w": w, "w2": w * w}, index=weights.index)
    if by is None:
        grouped = frame.groupby(np.zeros(len(frame), dtype=int))
    else:
        if not isinstance(by, (pd.Series, pd.DataFrame)):
            raise TypeError("by must be a Series or DataFrame aligned to weights")
        if not by.index.equals(weights.index):
            raise ValueError("by must have the same index as weights")
        keys = [by[c] for c in by.columns] if isinstance(by, pd.DataFrame) else by
        grouped = frame.groupby(keys, sort=True, observed=True)
    out = grouped["w"].agg(["size", "sum", "min", "median", "max"]).rename(columns={"size": "n"})
    sq = grouped["w2"].sum()
    out["n_eff"] = np.where(sq > 0, out["sum"] ** 2 / sq.where(sq > 0, 1.0), np.nan)
    out["deff_w"] = out["n"] / out["n_eff"]
    if by is None:
        out.index = pd.Index(["all"])
    return out


#: calibration distances of :func:`calibrate` (R ``calibrate(calfun=)``)
CALFUNS = ("linear", "raking", "logit")
#: rescale the weights first when every population total exceeds its sample total this many times (R ``grake``)
_RESCALE_ABOVE = 20.0


def model_matrix(frame: pd.DataFrame, terms: Sequence[Hashable], *, intercept: bool = True) -> pd.DataFrame:
    """The calibration variables as R's ``model.matrix(~ a + b)`` builds them.

    A numeric column enters as it is; any other column as indicators of its categories except the
    first (R's treatment contrasts: sorted values, or the order of a pandas Categorical), named
    column + category as in R (``stypeH``). ``(Intercept)`` comes first unless *intercept* is False.
    """
    require_frame(frame)
    cols = as_column_list(terms, "terms")
    require_columns(frame, cols)
    require_no_missing(frame, cols, "calibration")
    parts = {"(Intercept)": np.ones(len(frame))} if intercept else {}
    for c in cols:
        s = frame[c]
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            parts[str(c)] = s.to_numpy(dtype=np.float64)
            continue
        cat = s if isinstance(s.dtype, pd.CategoricalDtype) else s.astype("category")
        for level in cat.cat.categories[1:]:
            parts[f"{c}{level}"] = (cat == level).to_numpy(dtype=np.float64)
    if not parts:
        raise ValueError("calibration needs at least one variable or the intercept")
    return pd.DataFrame(parts, index=frame.index)


def _population_vector(population, names: list[str]) -> np.ndarray:
    """The population totals in the order of the model matrix's columns *names*."""
    if isinstance(population, Mapping | pd.Series):
        keys = [str(k) for k in population.keys()]
        missing, extra = sorted(set(names) - set(keys)), sorted(set(keys) - set(names))
        if missing or extra:
            raise ValueError(f"population totals must name the calibration columns {names}: "
                             f"missing {missing}, unknown {extra}")
        lookup = dict(zip(keys, population.values() if isinstance(population, Mapping) else population.to_numpy()))
        values = [lookup[n] for n in names]
    else:
        values = list(population)
        if len(values) != len(names):
            raise ValueError(f"population has {len(values)} totals for the {len(names)} calibration columns {names}")
    out = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError("population totals must be finite numbers")
    return out


def _calfun(name: str, lo: float, hi: float):
    """F⁻¹(u) − 1 and its derivative for the distance *name* with g-bounds [lo, hi] (R's ``cal.*``)."""
    if name == "linear":
        return (lambda u: np.clip(u + 1, lo, hi) - 1,
                lambda u: ((u < hi - 1) & (u > lo - 1)).astype(np.float64))
    if name == "raking":
        def fm1(u):
            with np.errstate(over="ignore"):
                return np.clip(np.exp(u), lo, hi) - 1

        def df(u):
            with np.errstate(over="ignore"):
                return np.where((u < hi - 1) & (u > lo - 1), np.exp(u), 0.0)
        return fm1, df
    a = (hi - lo) / ((hi - 1) * (1 - lo))

    def logit_fm1(u):
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(a * u)
            return (lo * (hi - 1) + hi * (1 - lo) * e) / (hi - 1 + (1 - lo) * e) - 1

    def logit_df(u):
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(a * u)
            den = hi - 1 + (1 - lo) * e
            return hi * (1 - lo) * e * a / den - (lo * (hi - 1) + hi * (1 - lo) * e) * (1 - lo) * e * a / den**2
    return logit_fm1, logit_df


def calibration_g(mm: np.ndarray, w0: np.ndarray, population: np.ndarray, *, calfun: str = "linear",
                  bounds: tuple[float, float] | None = None, max_iter: int = 50, epsilon: float = 1e-7) -> np.ndarray:
    """The g-weights w/w0 that meet the *population* totals of the columns of *mm* (R ``calibrate``).

    Unbounded linear calibration is GREG's closed form g = 1 + x'T⁻¹(X − X̂), T = Σ w0 x x'. Any
    other distance (or bounds) is Deville and Särndal's Newton iteration as R's ``grake``: η ← η +
    T_η⁺ (X − Σ w0 x F(x'η)), with the generalised inverse, step halving while g is not finite, until
    every |misfit| / (1 + |X|) < *epsilon*; a fit that does not converge raises.
    """
    if calfun not in CALFUNS:
        raise ValueError(f"calfun must be one of {list(CALFUNS)}, got {calfun!r}")
    lo, hi = (-np.inf, np.inf) if bounds is None else (float(bounds[0]), float(bounds[1]))
    if not lo < 1 < hi:
        raise ValueError(f"bounds must satisfy lo < 1 < hi, got {bounds!r}")
    if calfun == "logit" and not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("logit calibration needs finite bounds (lo, hi)")
    require_positive_int(max_iter, "max_iter")
    sample = mm.T @ w0
    if calfun == "linear" and bounds is None:
        gap = np.linalg.solve((mm * w0[:, None]).T @ mm, population - sample)
        return 1 + mm @ gap
    ww = w0
    with np.errstate(divide="ignore", invalid="ignore"):
        scales = population / sample
    rescale = float(np.mean(scales)) if np.min(scales) > _RESCALE_ABOVE else None
    if rescale is not None:
        ww, sample = ww * rescale, sample * rescale
    fm1, dfun = _calfun(calfun, lo, hi)
    eta = np.zeros(mm.shape[1])
    xeta = mm @ eta
    deriv = dfun(xeta)
    it = 1
    while True:
        t = (mm * (ww * deriv)[:, None]).T @ mm
        misfit = population - sample - mm.T @ (ww * fm1(xeta))
        step = np.linalg.pinv(t, rcond=256 * np.finfo(float).eps) @ misfit
        eta = eta + step
        xeta = mm @ eta
        g, deriv = 1 + fm1(xeta), dfun(xeta)
        while it < max_iter and not (np.all(np.isfinite(g)) and np.all(np.isfinite(deriv))):
            it += 1
            step = step / 2
            eta = eta - step
            xeta = mm @ eta
            g, deriv = 1 + fm1(xeta), dfun(xeta)
        misfit = population - sample - mm.T @ (ww * fm1(xeta))
        worst = float(np.max(np.abs(misfit) / (1 + np.abs(population))))
        if worst < epsilon:
            break
        it += 1
        if it > max_iter:
            raise ValueError(f"calibration ({calfun}, bounds {bounds!r}) did not converge in {max_iter} "
                             f"iterations (largest relative misfit {worst:.3g}); the bounds may be impossible")
    return g * rescale if rescale is not None else g


def calibrate(frame: pd.DataFrame, terms: Sequence[Hashable], population, weight: Hashable | None = None, *,
              calfun: str = "linear", bounds: tuple[float, float] | None = None, intercept: bool = True,
              max_iter: int = 50, epsilon: float = 1e-7) -> pd.Series:
    """Calibrate weights to population totals of the model matrix of *terms* (R ``calibrate``).

    Parameters
    ----------
    frame : DataFrame
        One row per unit.
    terms : list of column names
        As in R's formula ``~ a + b``: numeric columns as they are, other columns as category
        indicators (see :func:`model_matrix`), with an intercept unless *intercept* is False.
    population : dict, Series or sequence
        Totals per model-matrix column, by name (``{"(Intercept)": 6194, "stypeH": 755, ...}``) or
        in the model matrix's order (R's unnamed vector).
    weight : column name, optional
        Starting weights w0 (1.0 when omitted).
    calfun : {"linear", "raking", "logit"}
        The distance: linear is GREG (weights may turn negative unless bounded), raking the
        multiplicative one (positive weights), logit keeps g = w/w0 inside *bounds*.
    bounds : (lo, hi), optional
        Bounds on g with lo < 1 < hi (required for logit).

    Returns
    -------
    Series
        The calibrated weights, aligned to ``frame.index``, named ``"weight"``.

    Examples
    --------
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    >>> calibrate(df, ["x"], {"(Intercept)": 8.0, "x": 24.0}).round(6).tolist()
    [0.8, 1.6, 2.4, 3.2]
    """
    mm = model_matrix(frame, terms, intercept=intercept)
    w0 = weight_values(frame, weight)
    g = calibration_g(mm.to_numpy(), w0, _population_vector(population, list(mm.columns)), calfun=calfun,
                      bounds=bounds, max_iter=max_iter, epsilon=epsilon)
    return pd.Series(w0 * g, index=frame.index, name="weight")
