"""Design-based domain means with Taylor-linearised standard errors (R ``survey`` conventions).

The estimator is the Hájek (ratio) mean of each value column within each domain, with the
variance of R's ``svymean``/``svyby``: rows outside the domain, and rows whose value is missing, stay
in the design with zero contribution, influence values are summed within PSUs, and each stratum
contributes (1 − f_h) · n_h/(n_h − 1) · Σ_i (Z_hi − Z̄_h)² with n_h counting every PSU of the stratum
in the whole design. Everything is computed from sums over PSU × domain cells, so the cost is a few
passes over the data whatever the number of domains.

Design conventions
------------------
* PSU identifiers are nested within strata (R ``nest=TRUE``): the same PSU id in two strata denotes
  two PSUs. Without ``psu`` every row is its own PSU; without ``strata`` there is one stratum.
* A stratum with a single PSU follows ``lonely_psu`` (R ``options(survey.lonely.psu=)``) with the rules of
  :class:`analysis.Design`: by default ``"certainty"`` (it contributes 0, as if sampled with certainty),
  or ``"remove"``, ``"adjust"``, ``"average"``.
* Rows with a missing domain value belong to no domain but stay in the design.
* Weights are treated as fixed here; :class:`analysis.Design` gives calibration-aware variances.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from analysis._checks import (
    as_column_list,
    check_weight_array,
    numeric_values,
    require_columns,
    require_frame,
    require_level,
    require_no_missing,
)

__all__ = ["domain_means", "mean_covariance"]

#: rules for strata with a single PSU that the vectorised engine supports
LONELY_RULES = ("certainty", "remove", "adjust", "average")


@dataclass(frozen=True)
class _Design:
    n: int
    psu: np.ndarray          # PSU code per row, 0..P-1 (unique across strata)
    psu_stratum: np.ndarray  # stratum code per PSU
    n_h: np.ndarray          # PSUs per stratum (whole design)
    c_h: np.ndarray          # (1 - f_h) n_h / (n_h - 1); 0 for single-PSU strata
    f_h: np.ndarray          # sampling fraction of PSUs per stratum (0 without fpc)
    df: int                  # #PSU - #strata
    row_psu: bool            # every row is its own PSU

    @property
    def lonely(self) -> np.ndarray:
        """Strata with a single PSU that need the lonely-PSU rule: a stratum sampled with certainty
        (f_h = 1) contributes nothing under every rule, as in R's ``svyrecvar``."""
        return (self.n_h == 1) & (1 - self.f_h >= 1e-7)


def _design(frame: pd.DataFrame, strata: Hashable | None, psu: Hashable | None,
            fpc: Hashable | None) -> _Design:
    n = len(frame)
    cols = [c for c in (strata, psu, fpc) if c is not None]
    require_columns(frame, cols)
    require_no_missing(frame, cols, "design")
    if strata is None:
        s_code, n_strata = np.zeros(n, dtype=np.int64), 1
    else:
        s_code, s_uniq = pd.factorize(frame[strata], sort=True)
        n_strata = len(s_uniq)
    if psu is None:
        psu_code = np.arange(n, dtype=np.int64)
        psu_stratum = s_code.astype(np.int64)
    else:
        p_raw, p_uniq = pd.factorize(frame[psu])
        psu_code, pairs = pd.factorize(s_code.astype(np.int64) * max(len(p_uniq), 1) + p_raw)
        psu_stratum = pairs // max(len(p_uniq), 1)
    n_h = np.bincount(psu_stratum, minlength=n_strata).astype(np.float64)
    if fpc is None:
        f_h = np.zeros(n_strata)
    else:
        fv = numeric_values(frame[fpc], str(fpc))
        lo = np.full(n_strata, np.inf)
        hi = np.full(n_strata, -np.inf)
        np.minimum.at(lo, s_code, fv)
        np.maximum.at(hi, s_code, fv)
        if np.any(lo != hi):
            raise ValueError(f"fpc column {fpc!r} must be constant within each stratum")
        if np.any(lo < 0):  # a fraction 0 is an infinite population (no correction), as in R
            raise ValueError(f"fpc column {fpc!r} must not be negative")
        with np.errstate(divide="ignore"):
            f_h = np.where(lo <= 1, lo, n_h / lo)
        if np.any(f_h > 1 + 1e-12):
            raise ValueError(f"fpc column {fpc!r}: a population size is smaller than the number of sampled PSUs")
    with np.errstate(divide="ignore", invalid="ignore"):
        c_h = np.where(n_h > 1, (1 - f_h) * n_h / (n_h - 1), 0.0)
    return _Design(n=n, psu=np.asarray(psu_code, dtype=np.int64), psu_stratum=np.asarray(psu_stratum),
                   n_h=n_h, c_h=c_h, f_h=f_h, df=int(len(psu_stratum) - n_strata),
                   row_psu=psu is None or len(psu_stratum) == n)


def _domains(frame: pd.DataFrame, by: list[Hashable]) -> tuple[np.ndarray, pd.DataFrame]:
    """Domain code per row (-1 = no domain) and the table of domain labels (sorted)."""
    if not by:
        return np.zeros(len(frame), dtype=np.int64), pd.DataFrame(index=range(1))
    require_columns(frame, by)
    if len(by) == 1:
        codes, uniq = pd.factorize(frame[by[0]], sort=True)
        labels = pd.DataFrame({by[0]: uniq})
    else:
        grouped = frame.groupby(by, sort=True, dropna=True, observed=True)
        codes = grouped.ngroup().to_numpy(dtype=np.float64, na_value=np.nan)
        codes = np.where(np.isnan(codes), -1, codes).astype(np.int64)
        labels = grouped.size().index.to_frame(index=False)
    return np.asarray(codes, dtype=np.int64), labels.reset_index(drop=True)


@dataclass(frozen=True)
class _DomainCore:
    wsum: np.ndarray     # D × K  Σ w m
    mean: np.ndarray     # D × K
    count: np.ndarray    # D × K  Σ m
    wsq: np.ndarray      # D × K  Σ w² m
    rss: np.ndarray      # D × K  Σ w m (y - ȳ)²
    g_psu: np.ndarray    # G: PSU of each PSU × domain cell
    g_dom: np.ndarray    # G: domain of each cell
    z: np.ndarray        # K × G  influence totals Z = Σ_{i in cell} w m (y - ȳ) / W
    cell_wpos: np.ndarray  # K × G: the cell has positive weight for the column

    @property
    def cell_pos(self) -> np.ndarray:
        """G: the cell has positive weight for some column (it counts for the domain's df)."""
        return self.cell_wpos.any(axis=0)


def _grouped_sum(codes: np.ndarray, n_groups: int, x: np.ndarray) -> np.ndarray:
    """Σ of *x* (K × n) within groups of *codes* (n), as K × n_groups; one bincount for all rows."""
    k = x.shape[0]
    key = (np.arange(k, dtype=np.int64)[:, None] * n_groups + codes[None, :]).ravel()
    return np.bincount(key, weights=x.ravel(), minlength=k * n_groups).reshape(k, n_groups)


def _block_starts(*keys: np.ndarray) -> np.ndarray:
    """Start positions of the runs of equal (key1, key2, ...) in sorted arrays."""
    n = keys[0].size
    change = np.zeros(n, dtype=bool)
    change[:1] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(change)


def _segment_sum(x: np.ndarray, starts: np.ndarray, x2: np.ndarray | None = None) -> np.ndarray:
    """Sums of *x* (or of x · x2) over the column blocks beginning at *starts*: K × len(starts).

    Few blocks: a Python loop of vectorised sums (no temporaries). Many blocks: one bincount.
    """
    k, n = x.shape[0], x.shape[1]
    if starts.size > 512:
        codes = np.cumsum(_mask_of(starts, n)) - 1
        return _grouped_sum(codes, starts.size, x if x2 is None else x * x2)
    ends = np.append(starts[1:], n)
    out = np.empty((k, starts.size))
    for j, (a, b) in enumerate(zip(starts, ends)):
        if x2 is None:
            out[:, j] = x[:, a:b].sum(axis=1, dtype=np.float64)
        elif x2.shape[0] == 1:
            out[:, j] = x[:, a:b] @ x2[0, a:b]
        else:
            out[:, j] = np.einsum("ij,ij->i", x[:, a:b], x2[:, a:b])
    return out


def _mask_of(starts: np.ndarray, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=np.int64)
    mask[starts] = 1
    return mask


def _core_order(design: _Design, dom: np.ndarray, n_dom: int) -> np.ndarray:
    """The rows in a domain, sorted by (domain, stratum, PSU): the order :func:`_core` works in."""
    keep = dom >= 0
    psu = design.psu[keep]  # rows in no domain may have no PSU of the design
    h = design.psu_stratum[psu]
    n_psu = np.int64(max(design.psu_stratum.size, 1))
    n_str = np.int64(max(design.n_h.size, 1))
    if float(n_dom) * n_str * n_psu < 2**62:
        order = np.argsort((dom[keep] * n_str + h) * n_psu + psu, kind="stable")
    else:
        order = np.lexsort((psu, h, dom[keep]))
    if not keep.all():
        order = np.flatnonzero(keep)[order]
    return order


def _core(design: _Design, dom: np.ndarray, n_dom: int, y: np.ndarray, w: np.ndarray,
          order: np.ndarray | None = None) -> _DomainCore:
    """Domain sums and PSU × domain influence totals; *y* is K × n (NaN = missing), *w* K × n or 1 × n.

    Rows are sorted once by (domain, stratum, PSU) so that domains, PSU × domain cells and
    stratum × domain pairs are contiguous blocks; temporaries are reused to limit memory traffic.
    A caller that already holds *y* and *w* in that order passes it as *order* (from
    :func:`_core_order`); its *y* and *w* are then used as work space.
    """
    if order is None:
        order = _core_order(design, dom, n_dom)
        y = np.take(y, order, axis=1)
        w = np.take(w, order, axis=1)
    dom, psu = dom[order], design.psu[order]
    valid = ~np.isnan(y)
    np.copyto(y, 0.0, where=~valid)
    wm = np.multiply(w, valid)
    d_starts = _block_starts(dom)
    wsq = _segment_sum(wm, d_starts, w)
    # w is not needed any more: w · m · y goes into its memory when the shapes allow
    wmy = np.multiply(wm, y, out=w if w.shape == y.shape else None)
    del w
    wsum = _segment_sum(wm, d_starts)
    t1 = _segment_sum(wmy, d_starts)
    count = _segment_sum(valid, d_starts)
    a2 = _segment_sum(wmy, d_starts, y)
    del valid, y
    pos = wsum > 0
    safe_w = np.where(pos, wsum, 1.0)
    mean = np.where(pos, t1 / safe_w, np.nan)
    rss = np.where(pos, np.maximum(a2 - t1 * t1 / safe_w, 0.0), np.nan)
    safe_mean = np.where(pos, mean, 0.0)
    # domain codes are 0..D-1 in sorted order and every domain has rows, so block j is domain j
    if design.row_psu:
        cell_starts = np.arange(dom.size)
        cell_wpos = wm > 0
        z = wmy
        ends = np.append(d_starts[1:], dom.size)
        for j, (a, b) in enumerate(zip(d_starts, ends)):
            z[:, a:b] -= safe_mean[:, j, None] * wm[:, a:b]
            z[:, a:b] /= safe_w[:, j, None]
    else:
        cell_starts = _block_starts(dom, psu)
        c0 = _segment_sum(wm, cell_starts)
        cell_wpos = c0 > 0
        c1 = _segment_sum(wmy, cell_starts)
        del wmy
        g = dom[cell_starts]
        z = (c1 - safe_mean[:, g] * c0) / safe_w[:, g]
    del wm
    return _DomainCore(wsum.T, mean.T, count.T, wsq.T, rss.T, psu[cell_starts], dom[cell_starts], z, cell_wpos)


def _variance(design: _Design, core: _DomainCore, n_dom: int, lonely_psu: str = "certainty") -> np.ndarray:
    """V[d, k] = Σ_h c_h (Σ_p Z² − (Σ_p Z)² / n_h) over the stratum × domain cells (sorted).

    Strata with a single PSU follow *lonely_psu* as in :class:`analysis.Design` (R's ``onestrat`` of
    survey 4.1): ``certainty`` and ``remove`` add nothing; ``adjust`` adds (1 − f_h) Z_p², the PSU total
    left uncentred; ``average`` scales the sum by the number of strata the estimate touches over the
    number of those with more than one PSU (R's ``svyby`` works on the domain's subset, which drops the
    strata it does not touch).
    """
    v, _ = _variance_and_lonely(design, core, n_dom, lonely_psu)
    return v


def _variance_and_lonely(design: _Design, core: _DomainCore, n_dom: int, lonely_psu: str):
    """:func:`_variance` and, per domain × column, whether the estimate touches a single-PSU stratum."""
    h = design.psu_stratum[core.g_psu]
    starts = _block_starts(core.g_dom, h)
    s1 = _segment_sum(core.z, starts)
    s2 = _segment_sum(core.z, starts, core.z)
    ph, pdom = h[starts], core.g_dom[starts]
    contrib = design.c_h[ph] * np.maximum(s2 - s1 * s1 / design.n_h[ph], 0.0)
    lonely_cell = design.lonely[ph]
    # an estimate touches a stratum when one of its cells there has weight for the column
    weighted = _segment_sum(core.cell_wpos.astype(np.float64), starts) > 0
    touched = _grouped_sum(pdom, n_dom, (weighted & lonely_cell).astype(np.float64)).T > 0
    if lonely_psu == "adjust":
        contrib = np.where(lonely_cell, (1 - design.f_h[ph]) * s1 * s1, contrib)
    v = _grouped_sum(pdom, n_dom, contrib)
    if lonely_psu == "average":
        v = v * _average_factor(pdom, n_dom, weighted, lonely_cell)
    return v.T, touched


def _average_factor(pdom: np.ndarray, n_dom: int, weighted: np.ndarray, lonely_cell: np.ndarray) -> np.ndarray:
    """K × D factor of the ``average`` rule: strata the estimate touches over those of them with more than
    one PSU (NaN when every stratum it touches is lonely, 1 when it touches none), from the stratum ×
    domain cells' domains *pdom*, whether each has weight for each column, and whether it is lonely."""
    n_all = _grouped_sum(pdom, n_dom, weighted.astype(np.float64))
    n_ok = _grouped_sum(pdom, n_dom, (weighted & ~lonely_cell).astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_ok > 0, n_all / np.where(n_ok > 0, n_ok, 1.0), np.where(n_all > 0, np.nan, 1.0))


def _prepare(frame, values, by, weight, strata, psu, fpc):
    require_frame(frame)
    vcols = as_column_list(values, "values")
    if not vcols:
        raise ValueError("values must name at least one column")
    bcols = as_column_list(by, "by")
    require_columns(frame, vcols + bcols)
    if isinstance(weight, (list, tuple)):
        if len(weight) != len(vcols):
            raise ValueError(f"weight lists {len(weight)} columns for {len(vcols)} value columns")
        wcols = list(weight)
    else:
        wcols = [weight] * len(vcols)
    require_columns(frame, [c for c in wcols if c is not None])
    w_by_col: dict[Hashable, np.ndarray] = {}
    for c in set(wcols):
        if c is None:
            w_by_col[c] = np.ones(len(frame))
        else:
            w_by_col[c] = check_weight_array(numeric_values(frame[c], str(c)), f"weight column {c!r}")
    y = np.empty((len(vcols), len(frame)))
    for j, c in enumerate(vcols):
        y[j] = numeric_values(frame[c], str(c))
    if np.any(np.isinf(y)):
        raise ValueError("value columns must not hold infinite values")
    if len(set(wcols)) == 1:
        w = w_by_col[wcols[0]][None, :]
    else:
        w = np.empty_like(y)
        for j, c in enumerate(wcols):
            w[j] = w_by_col[c]
    design = _design(frame, strata, psu, fpc)
    dom, labels = _domains(frame, bcols)
    return vcols, bcols, y, w, design, dom, labels


def domain_means(
    frame: pd.DataFrame,
    values: Hashable | Sequence[Hashable],
    by: Hashable | Sequence[Hashable] | None,
    weight: Hashable | Sequence[Hashable] | None = None,
    *,
    strata: Hashable | None = None,
    psu: Hashable | None = None,
    fpc: Hashable | None = None,
    proportion: bool = False,
    level: float = 0.95,
    deff: str = "wor",
    df: str = "design",
    lonely_psu: str = "certainty",
) -> pd.DataFrame:
    """Weighted (Hájek) means per domain with design-based standard errors.

    Parameters
    ----------
    frame : DataFrame
        One row per unit (or per unit × domain when a PSU rates several domains).
    values : column name or list of names
        Numeric value columns; NaN marks a missing answer (zero contribution, like R ``na.rm=TRUE``).
    by : column name, list of names, or None
        Domain columns; ``None`` for the whole sample.
    weight : column name, list of names, or None
        Sampling weights (1.0 when omitted). A list gives one weight column per value column.
    strata, psu : column name, optional
        Strata and primary sampling units (PSU ids are nested within strata).
    fpc : column name, optional
        Per row, the population number of PSUs N_h of its stratum, or the sampling fraction f_h if
        the value is <= 1 (0: no correction); constant within strata.
    proportion : bool
        Values are 0/1 indicators: the CI is the logit interval of R ``svyciprop`` (Korn–Graubard
        "beta" interval when p̂ is 0 or 1).
    level : float
        Confidence level.
    deff : {"wor", "replace"}
        SRS variance used in the design effect: without replacement (R ``deff=TRUE``) or with
        replacement (R ``deff="replace"``).
    df : {"design", "domain"}
        Degrees of freedom of the intervals: the whole design's (#PSU − #strata), or each domain's
        (the PSUs with positive weight it touches minus their strata, R's ``degf`` of the subset).
    lonely_psu : {"certainty", "remove", "adjust", "average"}
        Variance of strata with a single PSU (R ``survey.lonely.psu``; see :class:`analysis.Design`).

    Returns
    -------
    DataFrame
        Domain column(s), then ``variable, est, se, ci_lo, ci_hi, n, n_eff, deff, deff_w, cv, df``;
        domains sorted, variables in the given order. A domain without valid rows for a variable
        has NaN estimates and ``n = 0``.

    Notes
    -----
    With d_i the domain indicator and m_i the valid-value indicator:
    ȳ = Σ w d m y / Σ w d m; z_i = w_i d_i m_i (y_i − ȳ) / Σ w d m; Z_hp = Σ_{i∈PSU p} z_i;
    V = Σ_h (1 − f_h) · n_h/(n_h − 1) · Σ_p (Z_hp − Z̄_h)², n_h = all PSUs of stratum h (single-PSU
    strata contribute 0). CI for means: ȳ ± t_{df} · se with df = #PSU − #strata of the whole design.
    Proportions: expit(logit p̂ ± t_{df} · se / (p̂(1 − p̂))). n_eff = (Σw)²/Σw² over valid domain rows,
    deff_w = n / n_eff, deff = V / V_srs with V_srs = s²/n · (1 − n/N̂), N̂ = Σ w d m and
    s² = Σ w d m (y − ȳ)² / N̂ · n/(n − 1) (drop the bracket for ``deff="replace"``), cv = se/|ȳ|.

    References
    ----------
    Lumley T., R package ``survey``: ``svymean``, ``svyby``, ``svyrecvar``, ``svyciprop``.

    Examples
    --------
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "g": ["a", "a", "b", "b"]})
    >>> domain_means(df, "x", "g")[["g", "est", "n"]].to_dict("records")
    [{'g': 'a', 'est': 1.5, 'n': 2}, {'g': 'b', 'est': 3.5, 'n': 2}]
    """
    level = require_level(level)
    if deff not in ("wor", "replace"):
        raise ValueError(f"deff must be 'wor' or 'replace', got {deff!r}")
    if df not in ("design", "domain"):
        raise ValueError(f"df must be 'design' or 'domain', got {df!r}")
    if lonely_psu not in LONELY_RULES:
        raise ValueError(f"lonely_psu must be one of {list(LONELY_RULES)}, got {lonely_psu!r}")
    vcols, bcols, y, w, design, dom, labels = _prepare(frame, values, by, weight, strata, psu, fpc)
    if proportion:
        ok = np.isnan(y) | (y == 0) | (y == 1)
        if not ok.all():
            raise ValueError("proportion=True needs value columns holding only 0, 1 or missing")
    n_dom = len(labels)
    core = _core(design, dom, n_dom, y, w)
    var = _variance(design, core, n_dom, lonely_psu)
    dfs = (_domain_df(design, core.g_psu, core.g_dom, n_dom, core.cell_pos, unique_cells=True) if df == "domain"
           else design.df)
    return _table(core, var, dfs, labels, vcols, proportion, level, deff)


def _table(core: _DomainCore, var: np.ndarray, df: int, labels: pd.DataFrame, vcols: list,
           proportion: bool, level: float, deff_kind: str) -> pd.DataFrame:
    est = core.mean
    n = core.count
    se = np.where(np.isnan(est), np.nan, np.sqrt(var))
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = np.where(core.wsq > 0, core.wsum**2 / np.where(core.wsq > 0, core.wsq, 1.0), np.nan)
        deff_w = n / n_eff
        s2 = core.rss / core.wsum * n / (n - 1)
        v_srs = s2 / n
        if deff_kind == "wor":
            v_srs = v_srs * (1 - n / core.wsum)
        deff = var / v_srs
        cv = np.where(est != 0, se / np.abs(est), np.nan)
    alpha = 1 - level
    # one df for all, one per domain, or one per domain and variable (D × K)
    dfa = np.asarray(df, dtype=np.float64)
    dfa = dfa[:, None] if dfa.ndim == 1 else dfa
    if dfa.ndim:
        tq = np.where(dfa >= 1, stats.t.ppf(1 - alpha / 2, np.maximum(dfa, 1)), np.nan)
    else:
        tq = stats.t.ppf(1 - alpha / 2, df) if df >= 1 else np.nan
    if proportion:
        lo, hi = _logit_ci(est, se, tq)
        edge = (est == 0) | (est == 1)
        if np.any(edge):
            blo, bhi = _beta_ci(est, se, n, dfa if dfa.ndim else df, alpha)
            lo, hi = np.where(edge, blo, lo), np.where(edge, bhi, hi)
    else:
        lo, hi = est - tq * se, est + tq * se
    n_dom, k = est.shape
    out = labels.loc[np.repeat(np.arange(n_dom), k)].reset_index(drop=True)
    out["variable"] = np.tile(np.asarray(vcols, dtype=object), n_dom)
    cols = {"est": est, "se": se, "ci_lo": lo, "ci_hi": hi}
    for name, arr in cols.items():
        out[name] = arr.ravel()
    out["n"] = n.ravel().round().astype(np.int64)
    out["n_eff"] = n_eff.ravel()
    out["deff"] = deff.ravel()
    out["deff_w"] = deff_w.ravel()
    out["cv"] = cv.ravel()
    out["df"] = np.broadcast_to(dfa, est.shape).ravel() if dfa.ndim else df
    return out


def _logit_ci(p: np.ndarray, se: np.ndarray, tq: float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        logit = np.log(p / (1 - p))
        half = tq * se / (p * (1 - p))
        return 1 / (1 + np.exp(-(logit - half))), 1 / (1 + np.exp(-(logit + half)))


def _beta_ci(p, se, n, df, alpha):
    """Korn–Graubard interval; at p̂ ∈ {0, 1} (zero variance) the effective size is the domain n."""
    with np.errstate(invalid="ignore", divide="ignore"):
        var = se * se
        n_eff = np.where(var > 0, p * (1 - p) / np.where(var > 0, var, 1.0), n)
        dfa = np.asarray(df, dtype=np.float64)
        rat = np.where(dfa >= 1, (stats.t.ppf(alpha / 2, np.maximum(n - 1, 1))
                                  / stats.t.ppf(alpha / 2, np.maximum(dfa, 1))) ** 2, 1.0)
        n_eff = np.where(var > 0, n_eff * rat, n_eff)
        x = n_eff * p
        lo = np.where(x > 0, stats.beta.ppf(alpha / 2, np.maximum(x, 1e-300), n_eff - x + 1), 0.0)
        hi = np.where(n_eff - x > 0, stats.beta.ppf(1 - alpha / 2, x + 1, np.maximum(n_eff - x, 1e-300)), 1.0)
        bad = np.isnan(p) | (n < 1)
        return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def mean_covariance(
    frame: pd.DataFrame,
    value: Hashable,
    by: Hashable | Sequence[Hashable],
    weight: Hashable | None = None,
    *,
    strata: Hashable | None = None,
    psu: Hashable | None = None,
    fpc: Hashable | None = None,
) -> pd.DataFrame:
    """Design covariance matrix of the domain means of one value column.

    Parameters
    ----------
    frame, value, by, weight, strata, psu, fpc
        As in :func:`domain_means` (a single value column).

    Returns
    -------
    DataFrame
        D × D covariance, index and columns the domain labels (sorted; a MultiIndex for several
        *by* columns). Its diagonal equals ``domain_means(...)["se"] ** 2``.

    Notes
    -----
    Cov(ȳ_a, ȳ_b) = Σ_h (1 − f_h) n_h/(n_h − 1) [Σ_p Z_hpa Z_hpb − Z_h·a Z_h·b / n_h], with Z the
    PSU totals of the influence values of :func:`domain_means`. It is non-zero only when PSUs hold
    rows of several domains (e.g. one respondent rating several agencies); with disjoint domains the
    matrix is diagonal.

    Examples
    --------
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 5.0], "g": ["a", "b", "a", "b"], "r": [1, 1, 2, 2]})
    >>> mean_covariance(df, "x", "g", psu="r").round(3).to_numpy().tolist()
    [[1.0, 1.5], [1.5, 2.25]]
    """
    if isinstance(value, (list, tuple)):
        raise TypeError("mean_covariance takes a single value column")
    vcols, bcols, y, w, design, dom, labels = _prepare(frame, value, by, weight, strata, psu, fpc)
    if not bcols:
        raise ValueError("by must name at least one domain column")
    n_dom = len(labels)
    core = _core(design, dom, n_dom, y, w)
    cov = _psu_covariance(design, core.g_psu, core.g_dom, core.z[0], n_dom)
    cov[np.isnan(core.mean[:, 0]), :] = np.nan
    cov[:, np.isnan(core.mean[:, 0])] = np.nan
    index = pd.Index(labels.iloc[:, 0]) if len(bcols) == 1 else pd.MultiIndex.from_frame(labels)
    return pd.DataFrame(cov, index=index, columns=index)


def _psu_covariance(design: _Design, g_psu: np.ndarray, g_dom: np.ndarray, z: np.ndarray,
                    n_dom: int, lonely_psu: str = "certainty", cell_pos: np.ndarray | None = None) -> np.ndarray:
    """D × D covariance from PSU × domain influence totals *z* (one value per cell); single-PSU strata
    as in :func:`_variance`, with *cell_pos* (G, default all) the cells with weight for the estimate:
    under ``average`` a covariance takes the geometric mean of its two domains' factors, as
    :class:`analysis.Design` does."""
    n_psu = design.psu_stratum.size
    zmat = sp.csr_array((z, (g_psu, g_dom)), shape=(n_psu, n_dom))
    c_psu = design.c_h[design.psu_stratum]
    cross = (zmat.T @ (zmat.multiply(c_psu[:, None]))).toarray()
    n_strata = design.n_h.size
    hind = sp.csr_array((np.ones(n_psu), (design.psu_stratum, np.arange(n_psu))), shape=(n_strata, n_psu))
    s = (hind @ zmat).toarray()
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(design.n_h > 0, design.c_h / design.n_h, 0.0)
    cov = cross - s.T @ (s * scale[:, None])
    lonely = design.lonely
    if lonely_psu == "adjust" and lonely.any():
        cov = cov + s[lonely].T @ (s[lonely] * (1 - design.f_h[lonely])[:, None])   # left uncentred
    elif lonely_psu == "average":
        pos = np.ones(g_dom.size, bool) if cell_pos is None else cell_pos
        pair = np.unique(g_dom[pos].astype(np.int64) * n_strata + design.psu_stratum[g_psu[pos]])
        pdom, ph = pair // n_strata, pair % n_strata
        factor = np.sqrt(_average_factor(pdom, n_dom, np.ones((1, pair.size), bool), lonely[ph])[0])
        cov = cov * factor[:, None] * factor[None, :]
    # a domain whose influence values are all alike sums to a variance of 0 up to rounding, which can land
    # a hair below it
    np.fill_diagonal(cov, np.maximum(np.diag(cov), 0.0))
    return cov


def _domain_df(design: _Design, g_psu: np.ndarray, g_dom: np.ndarray, n_dom: int,
               cell_pos: np.ndarray | None = None, *, unique_cells: bool = False) -> np.ndarray:
    """R's degf of each domain: the distinct PSUs of its cells (with positive weight) minus their strata.

    *unique_cells*: every (PSU, domain) pair occurs once (the cells of :func:`_core`), so PSUs are
    counted without hashing.
    """
    if cell_pos is not None:
        g_psu, g_dom = g_psu[cell_pos], g_dom[cell_pos]
    n_psu, n_str = design.psu_stratum.size, design.n_h.size
    g_dom = g_dom.astype(np.int64)
    if unique_cells:
        n_psus = np.bincount(g_dom, minlength=n_dom)
    else:
        n_psus = np.bincount(np.unique(g_dom * n_psu + g_psu) // n_psu, minlength=n_dom)
    pair = g_dom * n_str + design.psu_stratum[g_psu]
    if n_dom * n_str <= 50_000_000:
        touched = np.bincount(pair, minlength=n_dom * n_str).reshape(n_dom, n_str) > 0
        n_strata = touched.sum(axis=1)
    else:
        n_strata = np.bincount(np.unique(pair) // n_str, minlength=n_dom)
    return (n_psus - n_strata).astype(np.int64)
